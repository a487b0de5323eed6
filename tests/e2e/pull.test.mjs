// POST /api/pull through the official `ollama` client's pull(), from a loopback stand-in
// for the Ollama registry (manifest and blob endpoints; plain http is allowed only to a
// loopback address, so no certificate is needed here; the C++ tests cover TLS).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import test from 'node:test';

import { Ollama } from 'ollama';

import { MODELS, removeDir, startServer, tempDir } from './server.mjs';

const sha256 = (b) => createHash('sha256').update(b).digest('hex');

// Serves `blob` as library/stories:260k; counts the model bytes it sends.
async function fakeRegistry(blob) {
  const digest = `sha256:${sha256(blob)}`;
  const template = Buffer.from('{{ .Prompt }}');
  const stats = { bytes: 0 };
  const server = createServer((req, res) => {
    if (req.url === '/v2/library/stories/manifests/260k') {
      res.setHeader('Content-Type', 'application/vnd.docker.distribution.manifest.v2+json');
      return res.end(JSON.stringify({
        schemaVersion: 2,
        layers: [
          { mediaType: 'application/vnd.ollama.image.model', digest, size: blob.length },
          { mediaType: 'application/vnd.ollama.image.template',
            digest: `sha256:${sha256(template)}`, size: template.length },
        ],
      }));
    }
    if (req.url === `/v2/library/stories/blobs/${digest}`) {
      stats.bytes += blob.length;
      res.setHeader('Content-Length', blob.length);
      return res.end(blob);
    }
    if (req.url === `/v2/library/stories/blobs/sha256:${sha256(template)}`) return res.end(template);
    res.statusCode = 404;
    res.end('{"errors":[{"code":"MANIFEST_UNKNOWN"}]}');
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${server.address().port}`, stats, digest,
           close: () => new Promise((resolve) => server.close(resolve)) };
}

test('pull() streams Ollama progress and the pulled model is listed and runs', async () => {
  const blob = readFileSync(join(MODELS, 'stories260K.gguf'));
  const registry = await fakeRegistry(blob);
  const dir = tempDir();
  const server = await startServer({
    dataDir: join(dir, 'data'),
    modelsDir: dir,
    args: ['--no-discover'],
    env: { DORMOUSE_REGISTRY: registry.url, HOME: dir },
  });
  try {
    const ollama = new Ollama({ host: server.url });
    const parts = [];
    for await (const part of await ollama.pull({ model: 'stories:260k', stream: true })) {
      parts.push(part);
    }
    assert.equal(parts[0].status, 'pulling manifest');
    assert.equal(parts.at(-1).status, 'success');
    const bytes = parts.filter((p) => p.digest === registry.digest);
    assert.ok(bytes.length > 0, JSON.stringify(parts));
    assert.equal(bytes.at(-1).total, blob.length);
    assert.equal(bytes.at(-1).completed, blob.length);
    assert.equal(registry.stats.bytes, blob.length);

    const tags = await ollama.list();
    assert.ok(tags.models.some((m) => m.name === 'stories:260k'), JSON.stringify(tags));
    const r = await ollama.generate({ model: 'stories:260k', prompt: 'Once upon a time',
                                      stream: false, options: { num_predict: 4 } });
    assert.equal(r.done, true);

    // Pulling again downloads nothing; stream: false answers once, with the final status.
    const again = await ollama.pull({ model: 'stories:260k', stream: false });
    assert.equal(again.status, 'success');
    assert.equal(registry.stats.bytes, blob.length);
    await assert.rejects(ollama.pull({ model: 'nosuch:1b', stream: false }), /not in the registry/);
  } finally {
    await server.stop();
    await registry.close();
    removeDir(dir);
  }
});
