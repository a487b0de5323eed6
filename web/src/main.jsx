import { render } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';

import { auth, get, HttpError, send, streamChat, subscribeEvents } from './api.js';
import { Chat } from './chat.jsx';
import { bytes } from './format.js';
import { MemoryPanel } from './memory.jsx';
import { ConversationOptions, Settings } from './settings.jsx';
import { Sidebar } from './sidebar.jsx';
import { restoreNote } from './turns.js';

// Skip links move the keyboard focus, not only the scroll position.
const focusTarget = (id) => (e) => {
  e.preventDefault();
  document.getElementById(id)?.focus();
};

const emptyConv = () => ({ id: null, messages: [], options: {}, contextTokens: 0 });

function KeyForm({ error, onKey }) {
  const [key, setKey] = useState('');
  return (
    <main class="keyform">
      <form onSubmit={(e) => { e.preventDefault(); onKey(key); }} aria-labelledby="key-title">
        <h1 id="key-title">dormouse needs its API key</h1>
        <p>This server was started with <code>--api-key</code>. The key stays in this tab only
          (session storage) and is forgotten when the tab closes.</p>
        <label for="api-key">API key</label>
        <input id="api-key" type="password" autoComplete="off" value={key} autoFocus
          onInput={(e) => setKey(e.currentTarget.value)} />
        {error && <p class="error" role="alert">{error}</p>}
        <button type="submit" class="primary">Continue</button>
      </form>
    </main>
  );
}

function ModelPicker({ models, value, onChange }) {
  return (
    <div class="picker">
      <label for="model">Model</label>
      <select id="model" value={value} onChange={(e) => onChange(e.currentTarget.value)}>
        {models.map((m) => (
          <option key={m.name} value={m.name}>
            {m.name} · {m.architecture || '?'} {m.parameters || ''} {m.quantization || ''} ·{' '}
            {bytes(m.file_size)} file, needs {bytes(m.memory_estimate)} · {m.state}
          </option>
        ))}
      </select>
    </div>
  );
}

function App() {
  const [needKey, setNeedKey] = useState(null);  // null: not asked; '' or an error text
  const [models, setModels] = useState([]);
  const [model, setModel] = useState(localStorage.getItem('dormouse.model') || '');
  const [live, setLive] = useState({ status: null, at: 0, progress: {}, connected: false });
  const [settings, setSettings] = useState(null);
  const [showSettings, setShowSettings] = useState(false);
  const [convs, setConvs] = useState([]);
  const [query, setQuery] = useState('');
  const [results, setResults] = useState(null);
  const [conv, setConv] = useState(emptyConv);
  const [streaming, setStreaming] = useState(false);
  const [error, setError] = useState('');
  const [notice, setNotice] = useState('');
  const [busy, setBusy] = useState(false);
  const [lastEject, setLastEject] = useState(null);
  const [navOpen, setNavOpen] = useState(false);
  const abortRef = useRef(null);

  const fail = (e) => {
    if (e instanceof HttpError && e.status === 401) setNeedKey(auth.get() ? 'That key was refused.' : '');
    else if (e?.name !== 'AbortError') setError(e.message || String(e));
  };
  const refreshConvs = useCallback(() => get('/api/conversations').then((j) => setConvs(j.conversations)).catch(fail), []);
  const refreshModels = useCallback(() => get('/api/models').then((j) => {
    setModels(j.models);
    setModel((cur) => (j.models.some((m) => m.name === cur) ? cur : j.models[0]?.name || ''));
  }).catch(fail), []);

  const start = useCallback(async () => {
    try {
      const [models, s, list] = await Promise.all(
        [get('/api/models'), get('/api/settings'), get('/api/conversations')]);
      setModels(models.models);
      setModel((cur) => (models.models.some((m) => m.name === cur) ? cur : models.models[0]?.name || ''));
      setSettings(s);
      setConvs(list.conversations);
      setNeedKey(null);
    } catch (e) { fail(e); }
  }, []);
  useEffect(() => { start(); }, []);

  useEffect(() => {
    if (needKey !== null) return undefined;
    return subscribeEvents((name, data) => {
      if (name === 'status') setLive((l) => ({ ...l, status: data, at: Date.now() }));
      else if (name === 'progress') setLive((l) => ({ ...l, progress: { ...l.progress, [data.model]: data } }));
      else if (name === 'transition' && data.to === 'ready') refreshModels();
    }, (connected, e) => {
      if (e) fail(e);
      setLive((l) => ({ ...l, connected }));
    });
  }, [needKey]);

  useEffect(() => { if (model) localStorage.setItem('dormouse.model', model); }, [model]);
  // A person's pick is remembered at once, not after the next render: a reload right
  // after choosing must not fall back to the first model.
  const chooseModel = useCallback((name) => {
    if (name) localStorage.setItem('dormouse.model', name);
    setModel(name);
  }, []);

  // Search as one types (debounced); an empty box shows every conversation.
  useEffect(() => {
    if (!query.trim()) { setResults(null); return undefined; }
    const id = setTimeout(() => {
      get(`/api/search?q=${encodeURIComponent(query.trim())}`).then((j) => {
        const byId = new Map(convs.map((c) => [c.id, c]));
        setResults(j.results.map((r) => ({ ...(byId.get(r.id) || {}), ...r })));
      }).catch(fail);
    }, 200);
    return () => clearTimeout(id);
  }, [query, convs]);

  // "Eject when this tab has been hidden for N minutes" (Page Visibility API).
  useEffect(() => {
    const minutes = settings?.hidden_tab_eject_minutes || 0;
    if (!minutes || !model) return undefined;
    let timer = null;
    const onChange = () => {
      clearTimeout(timer);
      if (document.visibilityState === 'hidden') {
        timer = setTimeout(() => eject(model, 'warm', 'the tab was hidden'), minutes * 60000);
      }
    };
    document.addEventListener('visibilitychange', onChange);
    onChange();
    return () => { clearTimeout(timer); document.removeEventListener('visibilitychange', onChange); };
  }, [settings, model]);

  async function eject(name, level, why = '') {
    setBusy(true);
    try {
      const r = await send('POST', '/api/eject', { model: name, level });
      setLastEject(r);
      setNotice(`${name} ejected${why ? ` (${why})` : ''}${r.was_loaded ? '' : ': it was not loaded'}`);
    } catch (e) { fail(e); }
    setBusy(false);
  }
  async function load(name) {
    setBusy(true);
    try {
      await send('POST', '/api/generate', { model: name, prompt: '' });
    } catch (e) { fail(e); }
    setBusy(false);
  }

  async function runTurn(history, base) {
    setError('');
    setNotice('');
    const o = base.options;
    const messages = [...(o.system ? [{ role: 'system', content: o.system }] : []),
      ...history.map(({ role, content }) => ({ role, content }))];
    const body = { model, messages };
    for (const k of ['temperature', 'top_p', 'max_tokens']) if (o[k] != null) body[k] = o[k];
    let reply = '';
    setConv({ ...base, messages: [...history, { role: 'assistant', content: '' }] });
    setStreaming(true);
    const ctrl = new AbortController();
    abortRef.current = ctrl;
    try {
      const r = await streamChat(body, (piece) => {
        reply += piece;
        setConv((c) => ({ ...c, messages: [...history, { role: 'assistant', content: reply }] }));
      }, ctrl.signal);
      const note = restoreNote(r.meta, base.contextTokens);
      const id = r.meta?.session_id || base.id;
      if (base.id && id !== base.id && base.replaces) {
        await send('DELETE', `/api/sessions/${base.id}`).catch(() => {});  // the discarded branch
      }
      if (id && (Object.keys(o).length || base.title)) {
        await send('POST', `/api/sessions/${id}`, { options: o, ...(base.title ? { title: base.title } : {}) }).catch(() => {});
      }
      setConv({ id, options: o, title: base.title, model,
        contextTokens: r.usage ? r.usage.prompt_tokens + r.usage.completion_tokens : base.contextTokens,
        messages: [...history, { role: 'assistant', content: reply, note }] });
    } catch (e) {
      if (e.name === 'AbortError') {
        setConv((c) => ({ ...c, messages: [...history, { role: 'assistant', content: reply, note: 'stopped' }] }));
      } else {
        setConv((c) => ({ ...c, messages: history }));
        fail(e);
      }
    }
    setStreaming(false);
    abortRef.current = null;
    refreshConvs();
  }

  const sendText = (text) => runTurn([...conv.messages, { role: 'user', content: text }], conv);
  const regenerate = () => {
    const history = conv.messages.slice(0, -1);
    runTurn(history, { ...conv, replaces: true });
  };
  const editLast = (text) => {
    const at = conv.messages.map((m) => m.role).lastIndexOf('user');
    runTurn([...conv.messages.slice(0, at), { role: 'user', content: text }], { ...conv, replaces: true });
  };

  async function open(id) {
    setError('');
    setNotice('');
    try {
      const s = await get(`/api/sessions/${id}`);
      const c = convs.find((x) => x.id === id) || {};
      const options = { ...(c.options || {}) };
      const messages = [];
      for (const m of s.messages) {
        if (m.role === 'system') options.system = m.content;
        else if (m.role === 'user' || m.role === 'prompt') messages.push({ role: 'user', content: m.content });
        else messages.push({ role: 'assistant', content: m.content });
      }
      if (s.model) setModel(s.model);
      setConv({ id, messages, options, contextTokens: s.n_tokens || 0, title: null });
      setNavOpen(false);
      document.getElementById('prompt')?.focus();
    } catch (e) { fail(e); }
  }
  async function rename(id, title) {
    try {
      await send('POST', `/api/sessions/${id}`, { title });
      refreshConvs();
    } catch (e) { fail(e); }
  }
  async function remove(c) {
    if (!window.confirm(`Delete "${c.title}"? Its transcript and snapshot are removed.`)) return;
    try {
      await send('DELETE', `/api/sessions/${c.id}`);
      if (conv.id === c.id) setConv(emptyConv());
      setResults(null);
      setQuery('');
      refreshConvs();
    } catch (e) { fail(e); }
  }
  async function saveSettings(s) {
    try {
      setSettings(await send('POST', '/api/settings', s));
      setNotice('Settings saved');
      setShowSettings(false);
    } catch (e) { setError(e.message); }
  }
  async function resetSettings() {
    try {
      setSettings(await send('DELETE', '/api/settings'));
      setShowSettings(false);
    } catch (e) { setError(e.message); }
  }
  const setOptions = (options) => {
    setConv((c) => ({ ...c, options }));
    if (conv.id) send('POST', `/api/sessions/${conv.id}`, { options }).catch(() => {});
  };

  // Escape stops a reply; Alt+E ejects the current model.
  useEffect(() => {
    const onKey = (e) => {
      if (e.key === 'Escape' && abortRef.current) abortRef.current.abort();
      if (e.altKey && (e.key === 'e' || e.key === 'E') && model) { e.preventDefault(); eject(model, 'warm'); }
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [model]);

  if (needKey !== null) {
    return <KeyForm error={needKey} onKey={(k) => { auth.set(k); start(); }} />;
  }
  return (
    <div class="layout">
      <a class="skip" href="#prompt" onClick={focusTarget('prompt')}>Skip to the message box</a>
      <a class="skip" href="#memory" onClick={focusTarget('memory')}>Skip to the memory panel</a>
      <header class="top">
        <button type="button" class="nav-toggle" aria-expanded={navOpen ? 'true' : 'false'}
          aria-controls="sidebar" onClick={() => setNavOpen(!navOpen)}>Conversations</button>
        <h1><img src="/assets/icon.svg" alt="" width="22" height="22" /> dormouse</h1>
        <ModelPicker models={models} value={model} onChange={chooseModel} />
        <button type="button" onClick={() => setShowSettings(!showSettings)}
          aria-expanded={showSettings ? 'true' : 'false'}>Settings</button>
      </header>
      <div id="sidebar" class={`side ${navOpen ? 'open' : ''}`}>
        <Sidebar conversations={convs} activeId={conv.id} query={query} results={results}
          onQuery={setQuery} onOpen={open} onNew={() => { setConv(emptyConv()); setNavOpen(false); }}
          onRename={rename} onDelete={remove} />
      </div>
      <main class="main">
        <ConversationOptions options={conv.options} onChange={setOptions} />
        <Chat messages={conv.messages} streaming={streaming} error={error} notice={notice}
          onSend={sendText} onStop={() => abortRef.current?.abort()} onRegenerate={regenerate}
          onEditLast={editLast} canSend={!!model} modelName={model} />
      </main>
      {showSettings && settings && (
        <div class="overlay">
          <Settings settings={settings} onSave={saveSettings} onReset={resetSettings}
            onClose={() => setShowSettings(false)} />
        </div>
      )}
      <aside id="memory" class="side-right" tabIndex={-1}>
        <MemoryPanel status={live.status} receivedAt={live.at} progress={live.progress}
          connected={live.connected} current={model} busy={busy} lastEject={lastEject}
          onEject={eject} onLoad={load} />
      </aside>
    </div>
  );
}

render(<App />, document.getElementById('app'));
