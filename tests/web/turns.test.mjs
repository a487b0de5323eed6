// What the app says about a turn's context, from the server's reply metadata.
import assert from 'node:assert/strict';
import test from 'node:test';

import { restoreNote } from '../../web/src/turns.js';

test('a restore from a snapshot reports tokens, time and what was recomputed', () => {
  const meta = { restored_from_snapshot: true, cached_tokens: 1512, restore_seconds: 0.009 };
  assert.equal(restoreNote(meta, 1512), 'context restored: 1,512 tokens in 9 ms · recomputed 0 tokens');
  assert.equal(restoreNote(meta, 1520), 'context restored: 1,512 tokens in 9 ms · recomputed 8 tokens');
});

test('a turn that recomputed earlier tokens says how many and why', () => {
  assert.equal(restoreNote({ cached_tokens: 0, load_seconds: 0.2 }, 300),
    'recomputed 300 tokens (the model was reloaded and no snapshot matched)');
  assert.equal(restoreNote({ cached_tokens: 100, load_seconds: 0 }, 300),
    'recomputed 200 tokens (the conversation no longer matched its saved context)');
});

test('a live continuation or a first turn says nothing', () => {
  assert.equal(restoreNote({ cached_tokens: 300 }, 300), '');
  assert.equal(restoreNote({ cached_tokens: 0 }, 0), '');
  assert.equal(restoreNote(null, 10), '');
});
