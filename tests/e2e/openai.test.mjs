// The OpenAI API through the official `openai` client library.
import assert from 'node:assert/strict';
import test from 'node:test';

import OpenAI from 'openai';

import { CHAT_MODEL, SHARED_URL, TEXT_MODEL, postJson } from './server.mjs';

const client = new OpenAI({ baseURL: `${SHARED_URL}/v1`, apiKey: 'unused', maxRetries: 0 });

async function collectChat(params) {
  const stream = await client.chat.completions.create({ ...params, stream: true });
  const out = { text: '', finish: null, usage: null, chunks: 0, roles: [] };
  for await (const chunk of stream) {
    out.chunks++;
    if (chunk.usage) out.usage = chunk.usage;
    for (const c of chunk.choices) {
      if (c.delta?.role) out.roles.push(c.delta.role);
      out.text += c.delta?.content ?? '';
      if (c.finish_reason) out.finish = c.finish_reason;
    }
  }
  return out;
}

test('GET /v1/models lists every model of the models directory', async () => {
  const page = await client.models.list();
  const ids = page.data.map((m) => m.id);
  assert.ok(ids.includes(CHAT_MODEL), ids.join(','));
  assert.ok(ids.includes(TEXT_MODEL), ids.join(','));
  assert.equal(page.data[0].object, 'model');
  const one = await client.models.retrieve(TEXT_MODEL);
  assert.equal(one.id, TEXT_MODEL);
});

test('chat completion answers with usage', async () => {
  const r = await client.chat.completions.create({
    model: CHAT_MODEL,
    messages: [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: 'Say hi' }],
    max_tokens: 8,
    temperature: 0,
  });
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.model, CHAT_MODEL);
  assert.equal(r.choices.length, 1);
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(typeof r.choices[0].message.content, 'string');
  assert.ok(['stop', 'length'].includes(r.choices[0].finish_reason));
  assert.ok(r.usage.prompt_tokens > 0);
  assert.ok(r.usage.completion_tokens <= 8);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
  assert.equal(typeof r.usage.prompt_tokens_details.cached_tokens, 'number');
});

test('chat streaming gives the same greedy text, a finish reason and a usage chunk', async () => {
  const params = {
    model: CHAT_MODEL,
    messages: [{ role: 'user', content: 'Tell me about dormice.' }],
    max_tokens: 6,
    temperature: 0,
  };
  const whole = await client.chat.completions.create(params);
  const s = await collectChat({ ...params, stream_options: { include_usage: true } });
  assert.equal(s.text, whole.choices[0].message.content);
  assert.equal(s.finish, whole.choices[0].finish_reason);
  assert.deepEqual(s.roles, ['assistant']);
  assert.ok(s.usage, 'include_usage sends a usage chunk');
  assert.equal(s.usage.completion_tokens, whole.usage.completion_tokens);
});

test('completion of a story prompt', async () => {
  const r = await client.completions.create({
    model: TEXT_MODEL,
    prompt: 'Once upon a time',
    max_tokens: 16,
    temperature: 0,
  });
  assert.equal(r.object, 'text_completion');
  assert.match(r.choices[0].text, /^, there was a little girl named Lily/);
  assert.equal(r.choices[0].finish_reason, 'length');
  assert.equal(r.usage.completion_tokens, 16);
});

test('completion streaming matches the non-streaming text', async () => {
  const params = { model: TEXT_MODEL, prompt: 'Once upon a time', max_tokens: 24, temperature: 0 };
  const whole = await client.completions.create(params);
  const stream = await client.completions.create({ ...params, stream: true });
  let text = '';
  let finish = null;
  for await (const chunk of stream) {
    text += chunk.choices[0]?.text ?? '';
    finish = chunk.choices[0]?.finish_reason ?? finish;
  }
  assert.equal(text, whole.choices[0].text);
  assert.equal(finish, 'length');
});

test('a stop string ends the completion with finish_reason stop', async () => {
  const r = await client.completions.create({
    model: TEXT_MODEL,
    prompt: 'Once upon a time',
    max_tokens: 32,
    temperature: 0,
    stop: ['girl'],
  });
  assert.equal(r.choices[0].text, ', there was a little ');
  assert.equal(r.choices[0].finish_reason, 'stop');
});

test('a seed makes sampling reproducible', async () => {
  const params = { model: TEXT_MODEL, prompt: 'The cat', max_tokens: 24, temperature: 1, seed: 42 };
  const a = await client.completions.create(params);
  const b = await client.completions.create(params);
  assert.equal(a.choices[0].text, b.choices[0].text);
});

test('an unknown model is a 404 in OpenAI\'s error shape', async () => {
  await assert.rejects(
    client.chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] }),
    (e) => e instanceof OpenAI.NotFoundError && e.status === 404 && e.code === 'model_not_found');
});

test('out-of-range parameters are 400s naming the parameter', async () => {
  const base = { model: CHAT_MODEL, messages: [{ role: 'user', content: 'x' }] };
  for (const [extra, param] of [
    [{ temperature: 5 }, 'temperature'],
    [{ top_p: 0 }, 'top_p'],
    [{ max_tokens: -1 }, 'max_tokens'],
    [{ max_tokens: 100000000 }, 'max_tokens'],
    [{ n: 2 }, 'n'],
    [{ seed: 1.5 }, 'seed'],
    [{ stop: ['a', 'b', 'c', 'd', 'e'] }, 'stop'],
  ]) {
    await assert.rejects(client.chat.completions.create({ ...base, ...extra }),
      (e) => e instanceof OpenAI.BadRequestError && e.param === param,
      JSON.stringify(extra));
  }
});

test('a prompt longer than the context is a 413', async () => {
  await assert.rejects(
    client.completions.create({ model: TEXT_MODEL, prompt: 'Once upon a time '.repeat(1200), max_tokens: 1 }),
    (e) => e instanceof OpenAI.APIError && e.status === 413);
});

test('malformed JSON is a 400 with a message', async () => {
  const r = await postJson(SHARED_URL, '/v1/chat/completions', '{"model": ');
  assert.equal(r.status, 400);
  assert.equal(r.body.error.type, 'invalid_request_error');
  assert.match(r.body.error.message, /malformed JSON/);
});
