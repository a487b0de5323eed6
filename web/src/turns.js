// What the server's reply metadata says about the conversation's context: restored from
// a snapshot, continued live, or recomputed (and why).
import { count } from './format.js';

export function restoreNote(meta, previousTokens) {
  if (!meta) return '';
  const cached = meta.cached_tokens || 0;
  const recomputed = Math.max(0, previousTokens - cached);
  const ms = Math.round((meta.restore_seconds || 0) * 1000);
  if (meta.restored_from_snapshot) {
    return `context restored: ${count(cached)} tokens in ${ms} ms · recomputed ${count(recomputed)} tokens`;
  }
  if (previousTokens > 0 && recomputed > 0) {
    const why = meta.load_seconds > 0 ? 'the model was reloaded and no snapshot matched'
      : 'the conversation no longer matched its saved context';
    return `recomputed ${count(recomputed)} tokens (${why})`;
  }
  return '';
}
