// Stored conversations: open, rename, delete, full-text search.
import { useState } from 'preact/hooks';

import { ago, bytes, count } from './format.js';

function Item({ c, active, onOpen, onRename, onDelete }) {
  const [renaming, setRenaming] = useState(false);
  const [title, setTitle] = useState(c.title);
  if (renaming) {
    return (
      <li class="conv active">
        <form onSubmit={(e) => { e.preventDefault(); onRename(c.id, title); setRenaming(false); }}>
          <label class="sr-only" for={`rename-${c.id}`}>New title</label>
          <input id={`rename-${c.id}`} value={title} onInput={(e) => setTitle(e.currentTarget.value)}
            onKeyDown={(e) => e.key === 'Escape' && setRenaming(false)} autoFocus />
          <button type="submit">Save</button>
        </form>
      </li>
    );
  }
  return (
    <li class={`conv ${active ? 'active' : ''}`} data-testid="conversation" data-id={c.id}>
      <button type="button" class="conv-open" onClick={() => onOpen(c.id)}
        aria-current={active ? 'true' : undefined}>
        <span class="conv-title">{c.title}</span>
        <span class="conv-meta">{c.model} · {ago(c.updated_at)} · {count(c.n_tokens)} tokens
          {c.has_snapshot ? ` · snapshot ${bytes(c.snapshot_bytes)}` : ''}</span>
        {c.snippet && <span class="conv-snippet">{c.snippet}</span>}
      </button>
      <div class="conv-actions">
        <button type="button" class="link" onClick={() => { setTitle(c.title); setRenaming(true); }}
          aria-label={`Rename ${c.title}`}>Rename</button>
        <button type="button" class="link danger" onClick={() => onDelete(c)}
          aria-label={`Delete ${c.title}`}>Delete</button>
      </div>
    </li>
  );
}

export function Sidebar({ conversations, activeId, query, results, onQuery, onOpen, onNew, onRename,
  onDelete }) {
  const list = results ?? conversations;
  return (
    <nav class="sidebar" aria-label="Conversations">
      <button type="button" class="primary new" onClick={onNew}>New conversation</button>
      <div class="search">
        <label for="search" class="sr-only">Search conversations</label>
        <input id="search" type="search" placeholder="Search conversations" value={query}
          onInput={(e) => onQuery(e.currentTarget.value)} />
      </div>
      <ul class="convs">
        {list.length === 0 && <li class="muted">{results ? 'No match' : 'No conversations yet'}</li>}
        {list.map((c) => (
          <Item key={c.id} c={c} active={c.id === activeId} onOpen={onOpen} onRename={onRename}
            onDelete={onDelete} />
        ))}
      </ul>
    </nav>
  );
}
