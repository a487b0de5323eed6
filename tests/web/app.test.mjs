// The browser app end to end (issue 9, "Done when"): headless Debian chromium against a
// real `dormouse serve` on loopback. Every figure the page shows is checked against the
// server's own endpoints or /proc.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'node:test';

import { getJson, postJson, removeDir, startServer, tempDir, TEXT_MODEL } from '../e2e/server.mjs';
import { openBrowser, screenshot } from './browser.mjs';

const MAX_TOKENS = 24;

// The page's state, read the way a person would: what is on the screen.
const lastReply = (page) => page.locator('[data-testid="reply"]').last();
const modelCard = (page, name) => page.locator(`[data-testid="model-${name}"]`);

async function openApp(page, url) {
  await page.goto(url);
  await page.locator('#model').waitFor();
  await page.locator('[data-testid="memory-panel"]').waitFor();
}

async function pickGreedy(page, model = TEXT_MODEL) {
  await page.selectOption('#model', model);
  await page.locator('summary', { hasText: 'Conversation options' }).click();
  await page.fill('#o-temp', '0');
  await page.fill('#o-max', String(MAX_TOKENS));
}

// Types a message, sends it with Enter and waits for the reply to finish streaming.
async function sendMessage(page, text) {
  const before = await page.locator('[data-testid="reply"]').count();
  await page.locator('#prompt').fill(text);
  await page.locator('#prompt').press('Enter');
  await page.locator('[data-testid="reply"]').nth(before).waitFor();
  await page.locator('.messages[aria-busy="false"]').waitFor({ timeout: 60000 });
  return (await lastReply(page).innerText()).trim();
}

async function serverReply(url, messages) {
  const r = await postJson(url, '/v1/chat/completions',
    { model: TEXT_MODEL, messages, temperature: 0, max_tokens: MAX_TOKENS });
  assert.equal(r.status, 200, r.text);
  return r.body.choices[0].message.content;
}

// Markdown turns single newlines into line breaks; compare the words.
const words = (s) => s.replace(/\s+/g, ' ').trim();

function vmRss(pid) {
  const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+) kB/);
  return Number(m[1]) * 1024;
}

test('chat, eject, restore, reload and continue (one conversation)', async (t) => {
  const data = tempDir();
  const server = await startServer({ dataDir: data });
  // Reference replies come from a second server that never ejects: asking the app's own
  // server would add conversations and move its contexts.
  const plainData = tempDir();
  const plain = await startServer({ dataDir: plainData });
  const b = await openBrowser();
  try {
    const { page } = b;
    await openApp(page, server.url);
    await pickGreedy(page);
    // Empty option fields show what the server then uses (OpenAI's defaults).
    for (const [id, shown] of [['#o-temp', '1'], ['#o-top-p', '1'], ['#o-max', 'no limit']]) {
      assert.equal(await page.getAttribute(id, 'placeholder'), shown, id);
    }
    const q1 = 'Once upon a time there was a little dormouse';
    let reply1 = '';

    await t.test('the picker shows each model\'s architecture, size, quantization, memory and state', async () => {
      const option = await page.locator(`#model option[value="${TEXT_MODEL}"]`).innerText();
      const m = (await getJson(server.url, '/api/models')).body.models.find((x) => x.name === TEXT_MODEL);
      for (const part of [m.architecture, m.parameters, m.quantization, 'MiB file', 'needs', m.state]) {
        assert.ok(option.includes(part), `"${option}" lacks ${part}`);
      }
    });

    await t.test('the streamed text equals the server\'s greedy reply', async () => {
      const shown = await sendMessage(page, q1);
      const expected = await serverReply(plain.url, [{ role: 'user', content: q1 }]);
      assert.ok(expected.length > 0);
      reply1 = expected;
      assert.equal(words(shown), words(expected));
      await screenshot(page, 'chat');
    });

    await t.test('Eject: within 2 s the panel shows it unloaded, RSS within 5% of /proc', async () => {
      const card = modelCard(page, TEXT_MODEL);
      await card.getByRole('button', { name: `Eject ${TEXT_MODEL}`, exact: true }).click();
      const t0 = Date.now();
      await card.locator('[data-testid="model-state"]', { hasText: 'unloaded' }).waitFor({ timeout: 2000 });
      assert.ok(Date.now() - t0 <= 2000);
      const { pid } = (await getJson(server.url, '/api/status')).body;
      // The next memory sample (about a second) after the eject is what the panel shows.
      const shownAfter = async () => Number(await page.locator('[data-testid="rss"]').getAttribute('data-bytes'));
      const first = await shownAfter();
      await page.waitForFunction((v) => Number(document.querySelector('[data-testid="rss"]').dataset.bytes) !== v,
        first, { timeout: 5000 }).catch(() => {});
      const shown = await shownAfter();
      const real = vmRss(pid);
      assert.ok(Math.abs(shown - real) <= 0.05 * real, `panel ${shown} B, /proc VmRSS ${real} B`);
      await page.locator('[data-testid="last-eject"]').waitFor();
      await screenshot(page.locator('[data-testid="memory-panel"]'), 'memory-panel');
    });

    const q2 = 'Then the dormouse found a nut';
    await t.test('the next message restores with 0 tokens recomputed, same reply as without eject', async () => {
      // No request in between: the UI's turn is the one that finds the model unloaded.
      const history = [{ role: 'user', content: q1 }, { role: 'assistant', content: reply1 }];
      const shown = await sendMessage(page, q2);
      const note = await page.locator('[data-testid="restore-note"]').last().innerText();
      assert.match(note, /context restored: [\d,]+ tokens in \d+ ms/);
      assert.match(note, /recomputed 0 tokens/);
      const expected = await serverReply(plain.url, [...history, { role: 'user', content: q2 }]);
      assert.equal(words(shown), words(expected));
    });

    await t.test('after a reload the conversation is listed; open it and continue', async () => {
      await page.reload();
      await openApp(page, server.url);
      const item = page.locator('[data-testid="conversation"]').first();
      await item.waitFor();
      assert.match(await item.innerText(), /Once upon a time/);
      assert.equal(await page.locator('[data-testid="conversation"]').count(), 1);
      await item.locator('.conv-open').click();
      await page.locator('[data-testid="msg-user"]').nth(1).waitFor();
      assert.equal(await page.inputValue('#o-temp'), '0');  // the conversation's own options
      assert.equal(await page.inputValue('#o-max'), String(MAX_TOKENS));
      assert.equal(await page.locator('[data-testid="msg-user"]').count(), 2);
      const before = await page.locator('[data-testid="reply"]').count();
      await sendMessage(page, 'And they lived happily');
      assert.equal(await page.locator('[data-testid="reply"]').count(), before + 1);
      assert.ok((await lastReply(page).innerText()).trim().length > 0);
    });
    assert.deepEqual(b.errors, []);
  } finally {
    await b.close();
    await server.stop();
    await plain.stop();
    removeDir(data);
    removeDir(plainData);
  }
});

test('rename, search and delete a conversation; delete removes transcript and snapshot', async () => {
  const data = tempDir();
  const server = await startServer({ dataDir: data });
  const b = await openBrowser();
  try {
    const { page } = b;
    await openApp(page, server.url);
    await pickGreedy(page);
    await sendMessage(page, 'A hedgehog named Bramble');
    const item = page.locator('[data-testid="conversation"]').first();
    await item.waitFor();
    const id = await item.getAttribute('data-id');
    // Eject, so the conversation has a snapshot on disk.
    await modelCard(page, TEXT_MODEL).getByRole('button', { name: `Eject ${TEXT_MODEL}`, exact: true }).click();
    await modelCard(page, TEXT_MODEL).locator('[data-testid="model-state"]', { hasText: 'unloaded' }).waitFor();
    const snapshots = () => readdirSync(join(data, 'snapshots')).filter((f) => f.startsWith(id));
    assert.equal(snapshots().length, 1);

    await item.getByRole('button', { name: /^Rename/ }).click();
    await page.locator(`#rename-${id}`).fill('Bramble story');
    await page.locator(`#rename-${id}`).press('Enter');
    await page.locator('.conv-title', { hasText: 'Bramble story' }).waitFor();

    await page.fill('#search', 'hedgehog');
    await page.locator('.conv-snippet', { hasText: 'hedgehog' }).waitFor();
    await page.fill('#search', 'no such words anywhere');
    await page.locator('.convs', { hasText: 'No match' }).waitFor();
    await page.fill('#search', '');

    page.once('dialog', (d) => d.accept());
    await page.locator('[data-testid="conversation"]').first()
      .getByRole('button', { name: 'Delete Bramble story' }).click();
    await page.locator('.convs', { hasText: 'No conversations yet' }).waitFor();
    assert.equal((await getJson(server.url, `/api/sessions/${id}`)).status, 404);
    assert.equal(snapshots().length, 0);
    const search = await getJson(server.url, '/api/search?q=hedgehog');
    assert.deepEqual(search.body.results, []);
    assert.deepEqual(b.errors, []);
  } finally {
    await b.close();
    await server.stop();
    removeDir(data);
  }
});

test('a reply with <script> or <img onerror> shows as text and nothing runs', async () => {
  const data = tempDir();
  const server = await startServer({ dataDir: data });
  const b = await openBrowser();
  try {
    const hostile = 'Here: <script>window.__pwned = 1</script> and <img src=x onerror="window.__pwned = 2"> '
      + '[link](javascript:window.__pwned=3)';
    // A stateless client stores the assistant turn it sends: the transcript now holds it.
    const r = await postJson(server.url, '/v1/chat/completions', {
      model: TEXT_MODEL, temperature: 0, max_tokens: 4,
      messages: [{ role: 'user', content: 'Say something' }, { role: 'assistant', content: hostile },
        { role: 'user', content: 'Go on' }],
    });
    assert.equal(r.status, 200, r.text);
    const { page } = b;
    await openApp(page, server.url);
    await page.locator('[data-testid="conversation"] .conv-open').first().click();
    const reply = page.locator('[data-testid="reply"]').first();
    await reply.waitFor();
    const text = await reply.innerText();
    assert.match(text, /<script>window.__pwned = 1<\/script>/);
    assert.match(text, /<img src=x onerror=/);
    await page.locator('[data-testid="reply"] a').first().click({ trial: true }).catch(() => {});
    assert.equal(await page.evaluate(() => window.__pwned), undefined);
    assert.equal(await page.locator('.messages img, .messages script').count(), 0);
    assert.equal(await page.locator('.messages a[href^="javascript"]').count(), 0);
  } finally {
    await b.close();
    await server.stop();
    removeDir(data);
  }
});

test('with --api-key the page asks for the key and keeps it only in session storage', async () => {
  const data = tempDir();
  const server = await startServer({ dataDir: data, args: ['--api-key', 'hazel-secret'] });
  const b = await openBrowser();
  try {
    const { page } = b;
    await page.goto(server.url);
    await page.locator('#api-key').fill('wrong');
    await page.locator('#api-key').press('Enter');
    await page.locator('[role="alert"]', { hasText: 'refused' }).waitFor();
    await page.locator('#api-key').fill('hazel-secret');
    await page.locator('#api-key').press('Enter');
    await page.locator('[data-testid="memory-panel"]').waitFor();
    await page.locator('.live.on').waitFor();  // the event stream authenticated too
    const stored = await page.evaluate(() => ({
      session: sessionStorage.getItem('dormouse.apiKey'),
      local: JSON.stringify(localStorage),
      cookie: document.cookie,
    }));
    assert.equal(stored.session, 'hazel-secret');
    assert.ok(!stored.local.includes('hazel-secret'));
    assert.equal(stored.cookie, '');
    // A new tab (new session storage) asks again.
    const other = await b.context.newPage();
    await other.goto(server.url);
    await other.locator('#api-key').waitFor();
  } finally {
    await b.close();
    await server.stop();
    removeDir(data);
  }
});

test('keyboard only: send a message and eject, without the mouse', async () => {
  const data = tempDir();
  const server = await startServer({ dataDir: data });
  const b = await openBrowser();
  try {
    const { page } = b;
    await openApp(page, server.url);
    await page.selectOption('#model', TEXT_MODEL);  // the remembered choice, as a person's
    await page.reload();
    await openApp(page, server.url);
    // The reload keeps the pick (it is stored when chosen, not after a later render).
    await page.waitForFunction((n) => document.querySelector('#model')?.value === n, TEXT_MODEL,
                               { timeout: 10000 });
    await page.keyboard.press('Tab');  // the first stop is the skip link
    assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Skip to the message box');
    await page.keyboard.press('Enter');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'prompt');
    await page.keyboard.type('The owl said hello');
    await page.keyboard.press('Enter');
    // Once the reply is streaming, Escape stops it (no length limit was set).
    await page.waitForFunction(() => document.querySelector('[data-testid="reply"]')?.textContent.length > 3);
    await page.keyboard.press('Escape');
    await page.locator('.messages[aria-busy="false"]').waitFor({ timeout: 60000 });
    assert.equal(await page.locator('[data-testid="restore-note"]').first().innerText(), 'stopped');
    const card = modelCard(page, TEXT_MODEL);
    await page.waitForFunction((n) => {
      const b = document.querySelector(`[aria-label="Eject ${n}"]`);
      return b && !b.disabled;
    }, TEXT_MODEL, { timeout: 30000 })
      .catch(async (e) => {
        await screenshot(page, 'keyboard-failure');
        throw new Error(`${e.message}\nstatus: ${JSON.stringify((await getJson(server.url, '/api/status')).body.models.find((m) => m.name === TEXT_MODEL))}`);
      });
    let found = false;
    for (let i = 0; i < 80 && !found; i++) {
      await page.keyboard.press('Tab');
      found = await page.evaluate((n) => document.activeElement.getAttribute('aria-label') === `Eject ${n}`, TEXT_MODEL);
    }
    assert.ok(found, 'the Eject button is reachable with Tab');
    await page.keyboard.press('Enter');
    await card.locator('[data-testid="model-state"]', { hasText: 'unloaded' }).waitFor({ timeout: 5000 });
  } finally {
    await b.close();
    await server.stop();
    removeDir(data);
  }
});

test('screenshots: settings, narrow window, dark theme; first-token time', async () => {
  const data = tempDir();
  const server = await startServer({ dataDir: data });
  try {
    const wide = await openBrowser();
    try {
      const { page } = wide;
      await openApp(page, server.url);
      await page.getByRole('button', { name: 'Settings' }).click();
      await page.locator('[data-testid="settings"]').waitFor();
      await page.fill('#s-hidden', '10');
      await screenshot(page, 'settings');
      await page.getByRole('button', { name: 'Save', exact: true }).click();
      await page.locator('[data-testid="notice"]', { hasText: 'Settings saved' }).waitFor();
      assert.equal((await getJson(server.url, '/api/settings')).body.hidden_tab_eject_minutes, 10);
      assert.ok(existsSync(join(data, 'settings.json')));
    } finally {
      await wide.close();
    }
    // From opening the page to the first token on screen (printed, not asserted).
    const narrow = await openBrowser({ viewport: { width: 390, height: 844 }, colorScheme: 'dark' });
    try {
      const { page } = narrow;
      const t0 = Date.now();
      await openApp(page, server.url);
      await pickGreedy(page);
      await page.locator('#prompt').fill('Once upon a time');
      await page.locator('#prompt').press('Enter');
      await page.waitForFunction(() => {
        const r = document.querySelectorAll('[data-testid="reply"]');
        return r.length && r[r.length - 1].textContent.trim().length > 1;
      });
      console.log(`# first token on screen ${Date.now() - t0} ms after opening the page (cold model load included)`);
      await page.locator('.messages[aria-busy="false"]').waitFor({ timeout: 60000 });
      await screenshot(page, 'narrow-dark');
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
      assert.equal(overflow, false, 'no horizontal scrolling at 390 px');
    } finally {
      await narrow.close();
    }
  } finally {
    await server.stop();
    removeDir(data);
  }
});

test('Load from the panel; the tab hidden for the set time ejects the model (Page Visibility API)', async () => {
  const data = tempDir();
  const server = await startServer({ dataDir: data });
  const b = await openBrowser();
  try {
    // A fraction of a minute, so the test does not wait minutes.
    const set = await postJson(server.url, '/api/settings', { hidden_tab_eject_minutes: 0.005 });
    assert.equal(set.status, 200, set.text);
    const { page } = b;
    await openApp(page, server.url);
    await page.selectOption('#model', TEXT_MODEL);
    const card = modelCard(page, TEXT_MODEL);
    await card.getByRole('button', { name: `Load ${TEXT_MODEL}` }).click();  // the panel's Load
    await card.locator('[data-testid="model-state"]', { hasText: 'ready' }).waitFor();
    await page.evaluate(() => {
      Object.defineProperty(document, 'visibilityState', { value: 'hidden', configurable: true });
      document.dispatchEvent(new Event('visibilitychange'));
    });
    await card.locator('[data-testid="model-state"]', { hasText: 'unloaded' }).waitFor({ timeout: 10000 });
    await page.locator('[data-testid="notice"]', { hasText: 'the tab was hidden' }).waitFor();
  } finally {
    await b.close();
    await server.stop();
    removeDir(data);
  }
});

test('regenerate, edit and resend the last message, copy a reply', async () => {
  const data = tempDir();
  const server = await startServer({ dataDir: data });
  const b = await openBrowser();
  try {
    const { page, context } = b;
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.url });
    await openApp(page, server.url);
    await pickGreedy(page);
    const first = await sendMessage(page, 'The rabbit hopped');
    await page.getByRole('button', { name: 'Regenerate' }).click();
    await page.locator('.messages[aria-busy="false"]').waitFor({ timeout: 60000 });
    assert.equal(words(await lastReply(page).innerText()), words(first), 'greedy: the same reply again');
    assert.equal(await page.locator('[data-testid="msg-assistant"]').count(), 1);

    await page.getByRole('button', { name: 'Edit' }).click();
    assert.equal(await page.inputValue('#prompt'), 'The rabbit hopped');
    await page.fill('#prompt', 'The fox slept');
    await page.locator('#prompt').press('Enter');
    await page.locator('[data-testid="msg-user"]', { hasText: 'The fox slept' }).waitFor();
    await page.locator('.messages[aria-busy="false"]').waitFor({ timeout: 60000 });
    assert.equal(await page.locator('[data-testid="msg-user"]').count(), 1);
    const edited = (await lastReply(page).innerText()).trim();
    // The discarded branches are gone: one conversation, holding the edited turn.
    await page.locator('[data-testid="conversation"]', { hasText: 'The fox slept' }).waitFor();
    const list = (await getJson(server.url, '/api/conversations')).body.conversations;
    assert.equal(list.length, 1, JSON.stringify(list));
    const expected = await serverReply(server.url, [{ role: 'user', content: 'The fox slept' }]);
    assert.equal(words(edited), words(expected));

    await page.locator('[data-testid="msg-assistant"]').last()
      .getByRole('button', { name: /^Copy/ }).click();
    assert.equal(words(await page.evaluate(() => navigator.clipboard.readText())), words(edited));
    assert.deepEqual(b.errors, []);
  } finally {
    await b.close();
    await server.stop();
    removeDir(data);
  }
});
