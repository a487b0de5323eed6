// The Ollama API through the official `ollama` client library.
import assert from 'node:assert/strict';
import test from 'node:test';

import { Ollama } from 'ollama';

import { CHAT_MODEL, SHARED_URL, TEXT_MODEL, postJson, waitFor } from './server.mjs';

const ollama = new Ollama({ host: SHARED_URL });
const LIFECYCLE_MODEL = 'qwen3-15m-q8_0';  // used only here, so its load state is ours

async function loaded(name) {
  const ps = await ollama.ps();
  return ps.models.find((m) => m.name === name);
}

test('version, tags and show describe the models', async () => {
  const v = await ollama.version();
  assert.equal(typeof v.version, 'string');
  const tags = await ollama.list();
  const qwen = tags.models.find((m) => m.name === CHAT_MODEL);
  assert.ok(qwen, JSON.stringify(tags));
  assert.ok(qwen.size > 0);
  assert.equal(qwen.details.family, 'qwen2');
  assert.equal(qwen.details.quantization_level, 'Q8_0');
  const show = await ollama.show({ model: CHAT_MODEL });
  assert.equal(show.details.family, 'qwen2');
  assert.equal(show.model_info['general.architecture'], 'qwen2');
  assert.match(show.template, /im_start/);
});

test('chat without streaming returns the message and Ollama\'s timings', async () => {
  const r = await ollama.chat({
    model: CHAT_MODEL,
    messages: [{ role: 'user', content: 'Hello!' }],
    stream: false,
    options: { num_predict: 8, temperature: 0 },
  });
  assert.equal(r.done, true);
  assert.equal(r.message.role, 'assistant');
  assert.equal(typeof r.message.content, 'string');
  assert.ok(['stop', 'length'].includes(r.done_reason));
  assert.ok(r.eval_count <= 8);
  assert.ok(r.prompt_eval_count > 0);
  for (const k of ['total_duration', 'load_duration', 'prompt_eval_duration', 'eval_duration']) {
    assert.equal(typeof r[k], 'number', k);
  }
  assert.ok(r.total_duration > 0);
});

test('chat streaming (the default) gives the same greedy text', async () => {
  const params = {
    model: CHAT_MODEL,
    messages: [{ role: 'user', content: 'Count to three.' }],
    options: { num_predict: 6, temperature: 0 },
  };
  const whole = await ollama.chat({ ...params, stream: false });
  const parts = [];
  for await (const part of await ollama.chat({ ...params, stream: true })) parts.push(part);
  const last = parts.at(-1);
  assert.equal(last.done, true);
  assert.ok(parts.slice(0, -1).every((p) => p.done === false));
  assert.equal(parts.map((p) => p.message.content).join(''), whole.message.content);
  assert.equal(last.eval_count, whole.eval_count);
  assert.equal(last.done_reason, whole.done_reason);
});

test('generate with a model without a chat template uses the prompt as is', async () => {
  const r = await ollama.generate({
    model: TEXT_MODEL,
    prompt: 'Once upon a time',
    stream: false,
    options: { num_predict: 12, temperature: 0 },
  });
  assert.match(r.response, /^, there was a little girl/);
  assert.equal(r.done_reason, 'length');
  assert.equal(r.eval_count, 12);
  let streamed = '';
  const stream = await ollama.generate({
    model: TEXT_MODEL, prompt: 'Once upon a time', stream: true,
    options: { num_predict: 12, temperature: 0 },
  });
  for await (const part of stream) streamed += part.response;
  assert.equal(streamed, r.response);
});

test('options.stop and seed work as in Ollama', async () => {
  const r = await ollama.generate({
    model: TEXT_MODEL, prompt: 'Once upon a time', stream: false,
    options: { num_predict: 32, temperature: 0, stop: ['girl'] },
  });
  assert.equal(r.response, ', there was a little ');
  assert.equal(r.done_reason, 'stop');
  const opts = { num_predict: 16, temperature: 1, seed: 7 };
  const a = await ollama.generate({ model: TEXT_MODEL, prompt: 'A dog', stream: false, options: opts });
  const b = await ollama.generate({ model: TEXT_MODEL, prompt: 'A dog', stream: false, options: opts });
  assert.equal(a.response, b.response);
});

test('/api/ps before and after keep_alive 0 unloads', async () => {
  const load = await ollama.generate({ model: LIFECYCLE_MODEL, prompt: '', keep_alive: '5m' });
  assert.equal(load.done_reason, 'load');
  const before = await loaded(LIFECYCLE_MODEL);
  assert.ok(before, 'loaded after the load request');
  assert.ok(before.size > 0);
  assert.equal(before.size_vram, 0);
  assert.ok(['ready', 'busy'].includes(before.state), before.state);
  assert.ok(before.rss_bytes > 0);
  const expires = new Date(before.expires_at).getTime() - Date.now();
  assert.ok(expires > 4 * 60e3 && expires <= 5 * 60e3 + 5e3, `expires in ${expires} ms`);

  const unload = await ollama.generate({ model: LIFECYCLE_MODEL, prompt: '', keep_alive: 0 });
  assert.equal(unload.done, true);
  assert.equal(unload.done_reason, 'unload');
  assert.equal(await loaded(LIFECYCLE_MODEL), undefined);
});

test('keep_alive 0 with a prompt unloads right after the answer', async () => {
  const r = await ollama.chat({
    model: LIFECYCLE_MODEL, messages: [{ role: 'user', content: 'hi' }], stream: false,
    keep_alive: 0, options: { num_predict: 2 },
  });
  assert.equal(r.done, true);
  await waitFor(async () => (await loaded(LIFECYCLE_MODEL)) === undefined, 5000, 'the unload');
});

test('negative keep_alive keeps the model loaded forever', async () => {
  await ollama.chat({ model: LIFECYCLE_MODEL, messages: [], keep_alive: -1 });
  const m = await loaded(LIFECYCLE_MODEL);
  assert.ok(m);
  assert.ok(new Date(m.expires_at).getUTCFullYear() > 2200, m.expires_at);
  await ollama.chat({ model: LIFECYCLE_MODEL, messages: [], keep_alive: 0 });
  assert.equal(await loaded(LIFECYCLE_MODEL), undefined);
});

test('errors come back as {"error": message} with a 4xx status', async () => {
  await assert.rejects(
    ollama.chat({ model: 'no-such-model', messages: [{ role: 'user', content: 'x' }], stream: false }),
    (e) => e.name === 'ResponseError' && e.status_code === 404 && /no-such-model/.test(e.error));
  await assert.rejects(
    ollama.generate({ model: TEXT_MODEL, prompt: 'x', stream: false, keep_alive: 'soon' }),
    (e) => e.status_code === 400 && /keep_alive/.test(e.error));
  await assert.rejects(
    ollama.generate({ model: TEXT_MODEL, prompt: 'x', stream: false, options: { temperature: 'hot' } }),
    (e) => e.status_code === 400 && /options\.temperature/.test(e.error));
  const r = await postJson(SHARED_URL, '/api/chat', '[1, 2]');
  assert.equal(r.status, 400);
  assert.equal(typeof r.body.error, 'string');
});
