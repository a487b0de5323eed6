// Talking to the dormouse server through its public endpoints only. The API key (when
// the server asks for one) lives in sessionStorage: gone when the tab closes.
const KEY = 'dormouse.apiKey';

export const auth = {
  get: () => sessionStorage.getItem(KEY) || '',
  set: (k) => sessionStorage.setItem(KEY, k),
  clear: () => sessionStorage.removeItem(KEY),
};

export class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function headers(extra = {}) {
  const h = { ...extra };
  const k = auth.get();
  if (k) h.Authorization = `Bearer ${k}`;
  return h;
}

async function check(res) {
  if (res.ok) return res;
  let msg = `HTTP ${res.status}`;
  try {
    const j = await res.json();
    msg = typeof j.error === 'string' ? j.error : j.error?.message || msg;
  } catch { /* not JSON */ }
  throw new HttpError(res.status, msg);
}

export async function get(path) {
  return (await check(await fetch(path, { headers: headers() }))).json();
}

export async function send(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: headers({ 'Content-Type': 'application/json' }),
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return (await check(res)).json();
}

// Splits a byte stream into server-sent events: calls onEvent(name, data) per event.
async function readSse(res, onEvent) {
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += dec.decode(value, { stream: true });
    let at;
    while ((at = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, at);
      buf = buf.slice(at + 2);
      let name = 'message';
      const data = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event: ')) name = line.slice(7);
        else if (line.startsWith('data: ')) data.push(line.slice(6));
      }
      if (data.length) onEvent(name, data.join('\n'));
    }
  }
}

// /api/events through fetch (EventSource cannot send the API key); reconnects.
export function subscribeEvents(onEvent, onState) {
  let stopped = false;
  let ctrl;
  (async () => {
    while (!stopped) {
      ctrl = new AbortController();
      try {
        const res = await check(await fetch('/api/events', { headers: headers(), signal: ctrl.signal }));
        onState(true);
        await readSse(res, (name, data) => onEvent(name, JSON.parse(data)));
      } catch (e) {
        if (e instanceof HttpError && e.status === 401) {
          onState(false, e);
          return;
        }
      }
      onState(false);
      if (!stopped) await new Promise((r) => setTimeout(r, 2000));
    }
  })();
  return () => {
    stopped = true;
    ctrl?.abort();
  };
}

// One streamed chat turn: onText(piece) per piece; resolves with the usage chunk's
// dormouse metadata (session id, cached/prefilled tokens, restore time).
export async function streamChat(body, onText, signal) {
  const res = await check(await fetch('/v1/chat/completions', {
    method: 'POST',
    headers: headers({ 'Content-Type': 'application/json' }),
    body: JSON.stringify({ ...body, stream: true, stream_options: { include_usage: true } }),
    signal,
  }));
  let meta = null;
  let usage = null;
  let finish = null;
  await readSse(res, (_, data) => {
    if (data === '[DONE]') return;
    const j = JSON.parse(data);
    if (j.error) throw new HttpError(500, j.error.message || String(j.error));
    const c = j.choices?.[0];
    if (c?.delta?.content) onText(c.delta.content);
    if (c?.finish_reason) finish = c.finish_reason;
    if (j.dormouse) meta = j.dormouse;
    if (j.usage) usage = j.usage;
  });
  return { meta, usage, finish };
}
