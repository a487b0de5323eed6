// Starting and stopping real `dormouse serve` processes for the end-to-end tests.
// run.sh starts the shared server (DORMOUSE_URL); tests that need their own settings
// (a short keep-alive, a restart on the same data dir) start one here.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const BIN = process.env.DORMOUSE_BIN;
export const MODELS = process.env.DORMOUSE_MODELS;
export const SHARED_URL = process.env.DORMOUSE_URL;

export const CHAT_MODEL = 'qwen2-20m-q8_0';  // random weights, ChatML template
export const TEXT_MODEL = 'stories260K';     // writes real (tiny) stories, no template

if (!BIN || !MODELS || !SHARED_URL) {
  throw new Error('run these tests through tests/e2e/run.sh PATH/TO/dormouse');
}

export function tempDir(prefix = 'dormouse-e2e-') {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function removeDir(dir) {
  rmSync(dir, { recursive: true, force: true });
}

// Starts a server on a free loopback port; resolves once it listens.
export async function startServer({ dataDir, args = [], env = {}, modelsDir = MODELS }) {
  const proc = spawn(BIN, ['serve', '--port', '0', '--models-dir', modelsDir, '--data-dir', dataDir,
                           '-t', '2', ...args],
                     { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
  let log = '';
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${log}`)), 20000);
    proc.stderr.on('data', (d) => {
      log += d.toString();
      const m = log.match(/listening on (http:\/\/\S+)/);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    proc.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code}:\n${log}`));
    });
  });
  proc.removeAllListeners('exit');
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  return {
    url,
    log: () => log,
    // SIGTERM, as a service manager would; resolves with the exit status.
    async stop() {
      proc.kill('SIGTERM');
      let timer;
      const timeout = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`server did not stop:\n${log}`)), 20000);
      });
      try {
        return await Promise.race([exited, timeout]);
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

export async function getJson(base, path) {
  const res = await fetch(base + path);
  return { status: res.status, body: await res.json() };
}

export async function postJson(base, path, body) {
  const res = await fetch(base + path, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    // streaming bodies are not one JSON value
  }
  return { status: res.status, text, body: json };
}

// Polls until fn() is truthy (or throws after timeoutMs).
export async function waitFor(fn, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
