// Prefix reuse for stateless clients: an OpenAI client resends the whole conversation
// every turn, and the server must prefill only what is new, also after an idle eject
// and after a restart (the context comes back from a snapshot on disk).
import assert from 'node:assert/strict';
import test from 'node:test';

import OpenAI from 'openai';
import { Ollama } from 'ollama';

import {
  CHAT_MODEL, SHARED_URL, TEXT_MODEL, getJson, removeDir, startServer, tempDir, waitFor,
} from './server.mjs';

function clientFor(url) {
  return new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0 });
}

const QUESTIONS = [
  'Where do dormice live?',
  'What do they eat in autumn?',
  'How long do they hibernate?',
  'Why are they called sleepers?',
];

// One stateless chat turn: the whole history goes out, the reply is appended.
async function chatTurn(client, history, question) {
  history.push({ role: 'user', content: question });
  const r = await client.chat.completions.create({
    model: CHAT_MODEL, messages: history, max_tokens: 12, temperature: 0,
  });
  history.push({ role: 'assistant', content: r.choices[0].message.content });
  return r;
}

// A later turn must reuse at least the whole previous prompt: only the previous reply
// and the new question are prefilled.
function assertOnlyNewTokens(turn, previous, what) {
  const cached = turn.usage.prompt_tokens_details.cached_tokens;
  const prefilled = turn.usage.prompt_tokens - cached;
  const added = turn.usage.prompt_tokens - previous.usage.prompt_tokens;
  assert.ok(cached >= previous.usage.prompt_tokens,
    `${what}: cached ${cached} of ${turn.usage.prompt_tokens}, the previous prompt had ` +
    `${previous.usage.prompt_tokens}`);
  assert.ok(prefilled <= added, `${what}: prefilled ${prefilled}, only ${added} are new`);
  assert.equal(turn.dormouse.prefilled_tokens, prefilled);
}

function uniqueSystem() {
  return { role: 'system', content: `You are a naturalist. Conversation ${Math.random()}.` };
}

test('a stateless chat of four turns prefills only the new tokens each turn', async () => {
  const client = clientFor(SHARED_URL);
  const history = [uniqueSystem()];
  const turns = [];
  for (const q of QUESTIONS) turns.push(await chatTurn(client, history, q));
  assert.ok(turns[0].usage.prompt_tokens_details.cached_tokens < turns[0].usage.prompt_tokens);
  for (let i = 1; i < turns.length; i++) assertOnlyNewTokens(turns[i], turns[i - 1], `turn ${i + 1}`);
  const session = turns.at(-1).dormouse.session_id;
  assert.ok(turns.every((t) => t.dormouse.session_id === session), 'one session throughout');
  const s = await getJson(SHARED_URL, `/api/sessions/${session}`);
  assert.equal(s.status, 200);
  assert.equal(s.body.model, CHAT_MODEL);
  assert.ok(s.body.messages.length >= 2 * QUESTIONS.length, JSON.stringify(s.body.messages));
});

test('a growing /v1/completions prompt prefills only its new text', async () => {
  const client = clientFor(SHARED_URL);
  let prompt = `Once upon a time, in a wood number ${Math.floor(Math.random() * 1e6)},`;
  let previous = null;
  for (let i = 0; i < 3; i++) {
    const r = await client.completions.create({ model: TEXT_MODEL, prompt, max_tokens: 8, temperature: 0 });
    if (previous) assertOnlyNewTokens(r, previous, `completion turn ${i + 1}`);
    prompt += r.choices[0].text + ' And then';
    previous = r;
  }
});

test('ollama chat turns report prompt_eval_count of the new tokens only', async () => {
  const ollama = new Ollama({ host: SHARED_URL });
  const messages = [uniqueSystem(), { role: 'user', content: QUESTIONS[0] }];
  const first = await ollama.chat({ model: CHAT_MODEL, messages, stream: false, options: { num_predict: 8, temperature: 0 } });
  messages.push(first.message, { role: 'user', content: QUESTIONS[1] });
  const second = await ollama.chat({ model: CHAT_MODEL, messages, stream: false, options: { num_predict: 8, temperature: 0 } });
  const promptTokens = (r) => r.dormouse.cached_tokens + r.prompt_eval_count;
  const added = promptTokens(second) - promptTokens(first);
  assert.ok(second.prompt_eval_count <= added,
    `second turn evaluated ${second.prompt_eval_count} prompt tokens; ${added} are new`);
});

test('after an idle eject the next turn is restored from the snapshot', async () => {
  const dataDir = tempDir();
  const server = await startServer({ dataDir, args: ['--keep-alive', '1s'] });
  try {
    const client = clientFor(server.url);
    const history = [uniqueSystem()];
    const turns = [];
    for (const q of QUESTIONS.slice(0, 3)) turns.push(await chatTurn(client, history, q));
    assertOnlyNewTokens(turns[1], turns[0], 'warm turn 2');
    assertOnlyNewTokens(turns[2], turns[1], 'warm turn 3');
    // Idle: the keep-alive ejects the model (saving the conversation's KV to disk).
    await waitFor(async () => (await getJson(server.url, '/api/ps')).body.models.length === 0,
      10000, 'the keep-alive eject');
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    assert.match(metrics, new RegExp(`dormouse_model_ejects_total\\{model="${CHAT_MODEL}",reason="keep_alive"\\} [1-9]`));
    const after = await chatTurn(client, history, QUESTIONS[3]);
    assertOnlyNewTokens(after, turns[2], 'turn after the idle eject');
    assert.equal(after.dormouse.restored_from_snapshot, true);
    assert.ok(after.dormouse.load_seconds > 0, 'the model was loaded again');
  } finally {
    await server.stop();
    removeDir(dataDir);
  }
});

test('after a restart (SIGTERM, exit 0) the conversation continues from disk', async () => {
  const dataDir = tempDir();
  const history = [uniqueSystem()];
  let last;
  let server = await startServer({ dataDir });
  try {
    const client = clientFor(server.url);
    await chatTurn(client, history, QUESTIONS[0]);
    last = await chatTurn(client, history, QUESTIONS[1]);
  } finally {
    const exit = await server.stop();
    assert.deepEqual(exit, { code: 0, signal: null }, server.log());
  }
  server = await startServer({ dataDir });
  try {
    const client = clientFor(server.url);
    const next = await chatTurn(client, history, QUESTIONS[2]);
    assertOnlyNewTokens(next, last, 'turn after the restart');
    assert.equal(next.dormouse.restored_from_snapshot, true);
    const sessions = await getJson(server.url, '/api/sessions');
    assert.ok(sessions.body.sessions.some((s) => s.id === next.dormouse.session_id));
  } finally {
    await server.stop();
    removeDir(dataDir);
  }
});
