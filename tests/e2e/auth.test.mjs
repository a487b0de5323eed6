// --api-key with the real clients: both send `Authorization: Bearer`, /health stays open.
import assert from 'node:assert/strict';
import test from 'node:test';

import OpenAI from 'openai';
import { Ollama } from 'ollama';

import { TEXT_MODEL, removeDir, startServer, tempDir } from './server.mjs';

test('an API key is required everywhere but /health', async () => {
  const dataDir = tempDir();
  const server = await startServer({ dataDir, args: ['--api-key', 'k-123'] });
  try {
    assert.equal((await fetch(`${server.url}/health`)).status, 200);
    const good = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'k-123', maxRetries: 0 });
    const r = await good.completions.create({ model: TEXT_MODEL, prompt: 'Once', max_tokens: 2 });
    assert.equal(r.usage.completion_tokens, 2);
    const bad = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'wrong', maxRetries: 0 });
    await assert.rejects(bad.models.list(), (e) => e instanceof OpenAI.AuthenticationError);
    const ollama = new Ollama({ host: server.url, headers: { Authorization: 'Bearer k-123' } });
    assert.ok((await ollama.list()).models.length > 0);
    await assert.rejects(new Ollama({ host: server.url }).list(), (e) => e.status_code === 401);
  } finally {
    await server.stop();
    removeDir(dataDir);
  }
});
