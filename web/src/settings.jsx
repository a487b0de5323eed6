// Server settings (applied at once, kept in the data dir) and this conversation's options.
import { useEffect, useRef, useState } from 'preact/hooks';

const MiB = 1024 * 1024;

function Field({ id, label, hint, children }) {
  return (
    <div class="field">
      <label for={id}>{label}</label>
      {children}
      {hint && <small id={`${id}-hint`}>{hint}</small>}
    </div>
  );
}

export function Settings({ settings, onSave, onReset, onClose }) {
  const [form, setForm] = useState({
    keep_alive_minutes: settings.keep_alive_seconds < 0 ? -1 : settings.keep_alive_seconds / 60,
    memory_budget_mib: Math.round(settings.memory_budget / MiB),
    min_available_mib: Math.round(settings.min_available / MiB),
    psi_threshold: settings.psi_threshold,
    hidden_tab_eject_minutes: settings.hidden_tab_eject_minutes,
  });
  const set = (k) => (e) => setForm({ ...form, [k]: Number(e.currentTarget.value) });
  const first = useRef(null);
  useEffect(() => { first.current?.focus(); }, []);
  const save = (e) => {
    e.preventDefault();
    onSave({
      keep_alive_seconds: form.keep_alive_minutes < 0 ? -1 : form.keep_alive_minutes * 60,
      memory_budget: form.memory_budget_mib * MiB,
      min_available: form.min_available_mib * MiB,
      psi_threshold: form.psi_threshold,
      hidden_tab_eject_minutes: form.hidden_tab_eject_minutes,
    });
  };
  return (
    <form class="settings" onSubmit={save} aria-labelledby="settings-title" data-testid="settings"
      role="dialog" aria-modal="true" onKeyDown={(e) => e.key === 'Escape' && onClose()}>
      <h2 id="settings-title">Settings</h2>
      <Field id="s-keep" label="Keep a model loaded after its last reply (minutes)"
        hint="-1 keeps it loaded; 0 ejects right after each reply.">
        <input id="s-keep" ref={first} type="number" step="any" min="-1" value={form.keep_alive_minutes}
          onInput={set('keep_alive_minutes')} aria-describedby="s-keep-hint" />
      </Field>
      <Field id="s-budget" label="Memory budget for all models (MiB)" hint="0: no limit.">
        <input id="s-budget" type="number" min="0" value={form.memory_budget_mib}
          onInput={set('memory_budget_mib')} aria-describedby="s-budget-hint" />
      </Field>
      <Field id="s-floor" label="Eject idle models when free memory falls below (MiB)"
        hint="MemAvailable floor. The default, a tenth of RAM (0.5 to 2 GiB), frees memory before the system starts swapping.">
        <input id="s-floor" type="number" min="0" value={form.min_available_mib}
          onInput={set('min_available_mib')} aria-describedby="s-floor-hint" />
      </Field>
      <Field id="s-psi" label="…or when memory pressure (PSI, % stalled) exceeds"
        hint="0 turns it off.">
        <input id="s-psi" type="number" step="any" min="0" max="100" value={form.psi_threshold}
          onInput={set('psi_threshold')} aria-describedby="s-psi-hint" />
      </Field>
      <Field id="s-hidden" label="Eject when this tab has been hidden for (minutes)" hint="0: never.">
        <input id="s-hidden" type="number" step="any" min="0" value={form.hidden_tab_eject_minutes}
          onInput={set('hidden_tab_eject_minutes')} aria-describedby="s-hidden-hint" />
      </Field>
      <div class="buttons">
        <button type="submit" class="primary">Save</button>
        <button type="button" onClick={onReset}>Defaults</button>
        <button type="button" onClick={onClose}>Close</button>
      </div>
    </form>
  );
}

export function ConversationOptions({ options, onChange }) {
  const set = (k, num) => (e) => {
    const v = e.currentTarget.value;
    onChange({ ...options, [k]: num ? (v === '' ? undefined : Number(v)) : v });
  };
  return (
    <details class="conv-options">
      <summary>Conversation options</summary>
      <div class="field">
        <label for="o-system">System prompt</label>
        <textarea id="o-system" rows={2} value={options.system || ''} onInput={set('system', false)} />
      </div>
      <div class="row">
        <div class="field"><label for="o-temp">Temperature</label>
          <input id="o-temp" type="number" step="0.05" min="0" max="2" placeholder="1"
            value={options.temperature ?? ''}
            onInput={set('temperature', true)} /></div>
        <div class="field"><label for="o-top-p">Top-p</label>
          <input id="o-top-p" type="number" step="0.05" min="0" max="1" placeholder="1"
            value={options.top_p ?? ''}
            onInput={set('top_p', true)} /></div>
        <div class="field"><label for="o-max">Max tokens</label>
          <input id="o-max" type="number" min="1" placeholder="no limit"
            value={options.max_tokens ?? ''}
            onInput={set('max_tokens', true)} /></div>
      </div>
    </details>
  );
}
