// The memory panel: what the machine has, what dormouse holds, and each model's state
// with Eject (warm), Eject cold and Load. Live from /api/events.
import { useEffect, useState } from 'preact/hooks';

import { bytes, duration } from './format.js';

function useTick() {
  const [, setT] = useState(0);
  useEffect(() => {
    const id = setInterval(() => setT((t) => t + 1), 1000);
    return () => clearInterval(id);
  }, []);
}

function Bar({ value, max, label }) {
  const pct = max ? Math.min(100, (100 * value) / max) : 0;
  return (
    <div class="bar" role="meter" aria-label={label} aria-valuemin="0" aria-valuemax={max}
      aria-valuenow={value}>
      <div class="bar-fill" style={{ width: `${pct.toFixed(1)}%` }} />
    </div>
  );
}

function Countdown({ model, receivedAt }) {
  if (model.state === 'unloaded') return null;
  if (model.keep_forever) return <span>kept loaded</span>;
  if (model.expires_in == null) return <span>in use</span>;
  const left = Math.max(0, model.expires_in - (Date.now() - receivedAt) / 1000);
  return <span>ejects in <span data-testid="countdown">{duration(left)}</span></span>;
}

function Transition({ t }) {
  if (!t) return <p class="muted">no transition yet</p>;
  return (
    <p class="transition" data-testid="last-transition">
      {t.from} → <b>{t.to}</b> ({t.reason.replace('_', ' ')}
      {t.seconds > 0 ? `, took ${duration(t.seconds)}` : ''}){t.detail ? `: ${t.detail}` : ''}
      {t.ago != null && <span class="ago">, {duration(t.ago)} ago</span>}
    </p>
  );
}

function ModelCard({ model, receivedAt, progress, busy, onEject, onLoad }) {
  const loading = model.state === 'loading';
  const p = progress[model.name];
  const loaded = model.state !== 'unloaded' && model.state !== 'ejecting';
  return (
    <li class="model-card" data-testid={`model-${model.name}`} aria-label={`model ${model.name}`}>
      <div class="model-head">
        <span class="model-name">{model.name}</span>
        <span class={`state state-${model.state}`} data-testid="model-state">{model.state}</span>
      </div>
      <dl class="figures">
        <dt>holds</dt>
        <dd data-testid="model-bytes" title="weights, KV caches and buffers, as budgeted at load">
          {bytes(model.bytes)}</dd>
        <dt>keep-alive</dt><dd><Countdown model={model} receivedAt={receivedAt} />
          {model.state === 'unloaded' ? '–' : ''}</dd>
      </dl>
      {loading && (
        <div class="progress" data-testid="load-progress">
          <progress aria-label={`loading ${model.name}`}
            max={p?.bytes_total || undefined} value={p?.bytes_total ? p.bytes_done : undefined} />
          <span>{p ? `${bytes(p.bytes_done)} of ${bytes(p.bytes_total)}` : 'starting'}</span>
        </div>
      )}
      <Transition t={model.last_transition} />
      <div class="buttons">
        <button type="button" disabled={!loaded || busy} onClick={() => onEject(model.name, 'warm')}
          aria-label={`Eject ${model.name}`}>Eject</button>
        <button type="button" disabled={!loaded || busy} onClick={() => onEject(model.name, 'cold')}
          aria-label={`Eject ${model.name} and drop its file cache`}
          title="Also drop the model file from the page cache">Eject cold</button>
        <button type="button" disabled={model.state !== 'unloaded' || busy}
          onClick={() => onLoad(model.name)} aria-label={`Load ${model.name}`}>Load</button>
      </div>
    </li>
  );
}

export function MemoryPanel({ status, receivedAt, progress, connected, current, busy, lastEject,
  onEject, onLoad }) {
  useTick();
  if (!status) {
    return (
      <section class="memory" aria-label="Memory">
        <h2>Memory</h2>
        <p class="muted">{connected ? 'waiting for the first sample…' : 'connecting…'}</p>
      </section>
    );
  }
  const sys = status.system;
  const used = sys.total - sys.available;
  const shown = status.models.filter((m) => m.name === current || m.state !== 'unloaded');
  return (
    <section class="memory" aria-label="Memory" data-testid="memory-panel">
      <h2>Memory <span class={`live ${connected ? 'on' : ''}`}
        title={connected ? 'live' : 'reconnecting'}>{connected ? 'live' : 'offline'}</span></h2>
      <div class="mem-row">
        <span>System RAM</span>
        <span data-testid="sys-available">{bytes(sys.available)} free of {bytes(sys.total)}</span>
      </div>
      <Bar value={used} max={sys.total} label="System RAM in use" />
      <div class="mem-row">
        <span>dormouse resident</span>
        <span data-testid="rss" data-bytes={status.process.rss}>{bytes(status.process.rss)}</span>
      </div>
      <div class="mem-split">
        <span>anon <b data-testid="rss-anon">{bytes(status.process.anon)}</b></span>
        <span>file <b data-testid="rss-file">{bytes(status.process.file)}</b></span>
        {sys.psi_some_avg10 != null && <span>PSI {sys.psi_some_avg10.toFixed(1)}%</span>}
      </div>
      {lastEject && (
        <p class="freed" role="status" data-testid="last-eject">
          {lastEject.model}: freed {bytes(Math.max(0, lastEject.anon_freed))} anon,{' '}
          {bytes(Math.max(0, lastEject.file_freed))} file in {duration(lastEject.seconds)}
        </p>
      )}
      <ul class="models" aria-label="Models">
        {shown.map((m) => (
          <ModelCard key={m.name} model={m} receivedAt={receivedAt} progress={progress}
            busy={busy} onEject={onEject} onLoad={onLoad} />
        ))}
      </ul>
    </section>
  );
}
