import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** A real headless Chromium with its own profile folder, closed (and the folder removed) after the test. */
export async function openBrowser(t: TestContext, viewport = { width: 1400, height: 1000 }): Promise<BrowserContext> {
  const userDataDir = await mkdtemp(path.join(os.tmpdir(), 'ckpt-chromium-'));
  const browser = await chromium.launchPersistentContext(userDataDir, { executablePath: CHROMIUM, args: CHROMIUM_ARGS, viewport });
  // The profile folder goes once Chromium has stopped writing to it.
  t.after(async () => {
    await browser.close();
    await rm(userDataDir, { recursive: true, force: true });
  });
  return browser;
}

/** A page that records script errors and any request that leaves `origin`. */
export async function watchedPage(browser: BrowserContext, origin: string, fresh = false): Promise<{ page: Page; pageErrors: string[]; outside: string[] }> {
  const page = (!fresh && browser.pages()[0]) || (await browser.newPage());
  const pageErrors: string[] = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  const outside: string[] = [];
  page.on('request', (r) => {
    if (!r.url().startsWith(origin) && !r.url().startsWith('data:')) outside.push(r.url());
  });
  page.on('websocket', (ws) => {
    if (!ws.url().startsWith(origin.replace('http:', 'ws:'))) outside.push(ws.url());
  });
  return { page, pageErrors, outside };
}
