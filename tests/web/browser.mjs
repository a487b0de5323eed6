// Debian's chromium, driven by playwright-core: never a downloaded browser. Each test
// gets a fresh profile; screenshots go to DORMOUSE_ARTIFACTS (the build folder).
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.DORMOUSE_CHROMIUM || '/usr/bin/chromium';
export const ARTIFACTS = process.env.DORMOUSE_ARTIFACTS || join(tmpdir(), 'dormouse-web-artifacts');
mkdirSync(ARTIFACTS, { recursive: true });

const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run'];

// A browser context on a fresh profile; close() removes the profile.
export async function openBrowser({ viewport = { width: 1360, height: 860 }, colorScheme = 'light' } = {}) {
  const profile = mkdtempSync(join(tmpdir(), 'dormouse-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: FLAGS,
    viewport,
    colorScheme,
  });
  const page = context.pages()[0] || await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  return {
    context,
    page,
    errors,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

export async function screenshot(target, name) {
  await target.screenshot({ path: join(ARTIFACTS, `${name}.png`) });
}
