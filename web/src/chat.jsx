// The conversation: messages (replies rendered as sanitized Markdown), the composer,
// and per-message actions: copy, regenerate, edit and resend.
import { useEffect, useRef, useState } from 'preact/hooks';

import { renderMarkdown } from './markdown.js';

function Message({ m, index, last, streaming, onCopy, onRegenerate, onEdit }) {
  const isUser = m.role === 'user';
  return (
    <li class={`msg msg-${m.role}`} data-testid={`msg-${m.role}`} aria-label={isUser ? 'You' : 'Model'}>
      <div class="msg-who" aria-hidden="true">{isUser ? 'You' : 'Model'}</div>
      {isUser
        ? <div class="msg-body plain">{m.content}</div>
        : <div class="msg-body md" data-testid="reply"
            dangerouslySetInnerHTML={{ __html: renderMarkdown(m.content || (streaming && last ? '…' : '')) }} />}
      {m.note && <p class="msg-note" data-testid="restore-note">{m.note}</p>}
      {!streaming && (
        <div class="msg-actions">
          <button type="button" class="link" onClick={() => onCopy(m.content)}
            aria-label={`Copy message ${index + 1}`}>Copy</button>
          {last && !isUser && <button type="button" class="link" onClick={onRegenerate}>Regenerate</button>}
          {isUser && onEdit && <button type="button" class="link" onClick={onEdit}>Edit</button>}
        </div>
      )}
    </li>
  );
}

export function Chat({ messages, streaming, error, notice, onSend, onStop, onRegenerate, onEditLast,
  canSend, modelName }) {
  const [text, setText] = useState('');
  const [editing, setEditing] = useState(false);
  const listRef = useRef(null);
  const inputRef = useRef(null);
  useEffect(() => {
    const el = listRef.current;
    if (el) el.scrollTop = el.scrollHeight;
  }, [messages]);

  const lastUser = messages.map((m) => m.role).lastIndexOf('user');
  const submit = (e) => {
    e.preventDefault();
    if (!text.trim() || streaming || !canSend) return;
    if (editing) onEditLast(text);
    else onSend(text);
    setText('');
    setEditing(false);
  };
  const copy = (t) => navigator.clipboard?.writeText(t).catch(() => {});
  const edit = () => {
    setText(messages[lastUser].content);
    setEditing(true);
    inputRef.current?.focus();
  };
  return (
    <section class="chat" aria-label="Conversation">
      <ol class="messages" ref={listRef} aria-live="polite" aria-busy={streaming ? 'true' : 'false'}>
        {messages.length === 0 && (
          <li class="empty">
            <p>Ask {modelName || 'a model'} something. Replies stream here; press Eject in the
              memory panel any time: the conversation picks up where it stopped.</p>
          </li>
        )}
        {messages.map((m, i) => (
          <Message key={i} m={m} index={i} last={i === messages.length - 1}
            streaming={streaming} onCopy={copy} onRegenerate={onRegenerate}
            onEdit={i === lastUser ? edit : undefined} />
        ))}
      </ol>
      {notice && <p class="notice" role="status" data-testid="notice">{notice}</p>}
      {error && <p class="error" role="alert" data-testid="error">{error}</p>}
      <form class="composer" onSubmit={submit}>
        <label for="prompt" class="sr-only">Message</label>
        <textarea id="prompt" ref={inputRef} value={text} rows={2}
          placeholder={editing ? 'Edit your last message, then send' : 'Message (Enter sends, Shift+Enter for a new line)'}
          onInput={(e) => setText(e.currentTarget.value)}
          onKeyDown={(e) => {
            if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) submit(e);
            if (e.key === 'Escape' && editing) { setEditing(false); setText(''); }
          }} />
        {streaming
          ? <button type="button" class="stop" onClick={onStop}>Stop</button>
          : <button type="submit" class="primary" disabled={!canSend || !text.trim()}>
              {editing ? 'Resend' : 'Send'}</button>}
      </form>
    </section>
  );
}
