import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Page } from 'playwright-core';
import { startCkptUp } from '../cli/server.js';
import { requireCriu } from '../helpers/criu.js';
import { startCounter } from '../helpers/targets.js';
import { openBrowser, watchedPage } from './browser.js';

// The target panel and the schedules panel in a real Chromium against a real `ckpt up`: a schedule's next runs and
// last success as the API has them, uPlot plots with one point per checkpoint that a new dump extends live, delete, pin
// and unpin, pause and resume, run now; a read-only token sees the same figures, none of the buttons, and the events
// from history.

const PLOT_KINDS = ['size', 'frozen', 'dump', 'pages'];

/** Polls `probe` until it returns true; fails with what it saw last. */
async function until(what: string, probe: () => Promise<boolean | string>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: boolean | string = false;
  while (Date.now() < deadline) {
    last = await probe();
    if (last === true) return;
    await sleep(100);
  }
  throw new Error(`${what}: not within ${timeoutMs} ms (last seen: ${last})`);
}

/** The point count of each of a target's plots, as uPlot holds its data. */
async function plotPoints(page: Page, target: string): Promise<number[]> {
  return Promise.all(PLOT_KINDS.map(async (k) => Number(await page.getAttribute(`[data-target="${target}"] figure[data-plot="${k}"]`, 'data-points'))));
}

test('target panel: next runs and last success of its schedule as the API says, uPlot plots a new dump extends live, jobs found by checkpoint id, target, schedule and state; delete / pin / pause / run now from the page; read-only sees no buttons and events from history', async (t) => {
  if (!(await requireCriu(t))) return;
  const tokens = { operate: randomBytes(16).toString('hex'), read: randomBytes(16).toString('hex') };
  const srv = await startCkptUp({ tokens });
  t.after(() => srv.stop());
  const call = async (method: string, p: string, body?: unknown): Promise<any> => {
    const res = await fetch(srv.url + p, {
      method,
      headers: { authorization: `Bearer ${tokens.operate}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const data = await res.json();
    assert.ok(res.ok, `${method} ${p}: ${res.status} ${JSON.stringify(data)}`);
    return data;
  };
  const counter = await startCounter(8);
  t.after(() => counter.kill());

  // Once a year, in a zone that is not the browser's: its runs stay put for the whole test.
  const scheduleId = 'yearly';
  await call('POST', '/api/v1/schedules', { id: scheduleId, cron: '0 3 1 1 *', timezone: 'Asia/Tokyo', target: { pid: counter.pid } });

  const browser = await openBrowser(t);
  const { page, pageErrors, outside } = await watchedPage(browser, srv.url);
  await page.goto(`${srv.url}/?token=${tokens.operate}`);
  await page.waitForSelector('#conn.conn-live');
  const scheduleRow = `#schedules-body tr[data-schedule-id="${scheduleId}"]`;
  await page.waitForSelector(scheduleRow);

  // "Run now" from the schedules panel: a dump of the schedule's target, whose checkpoint opens the target's panel.
  await page.click(`${scheduleRow} button[data-action="trigger"]`);
  let first: any;
  await until('the triggered dump made a checkpoint', async () => {
    first = (await call('GET', `/api/v1/checkpoints?schedule=${scheduleId}`)).items[0];
    return first !== undefined;
  }, 60_000);
  const key: string = first.target.key;
  const panel = `#targets [data-target="${key}"]`;
  const line = `${panel} .target-schedule[data-schedule-id="${scheduleId}"]`;
  await page.waitForSelector(line);

  // Next runs: the three the scheduler's cron code gives, in UTC on the element, as the API lists them.
  const wantedRuns = (await call('GET', `/api/v1/schedules/${scheduleId}/next-runs?n=3`)).items.map((r: { at: string }) => r.at);
  assert.equal(wantedRuns.length, 3);
  assert.deepEqual(await page.$$eval(`${line} .next-runs li`, (lis) => lis.map((li) => li.getAttribute('data-at'))), wantedRuns);
  assert.deepEqual((await call('GET', `/api/v1/schedules/${scheduleId}`)).nextRuns.map((r: { at: string }) => r.at), wantedRuns);
  // Last success: the schedule's newest checkpoint, for the schedule and for the target.
  const created = new Date(first.created).toISOString();
  assert.equal(await page.getAttribute(`${line} .last-success time`, 'datetime'), created);
  assert.equal(await page.getAttribute(`${panel} .target-head .last-success time`, 'datetime'), created);
  await until('the scheduler recorded the success', async () => {
    const at = (await call('GET', `/api/v1/schedules/${scheduleId}`)).state.lastCheckpointAt;
    return typeof at === 'number' && at >= Date.parse(first.created) ? true : String(at);
  });

  // Plots: uPlot charts, one point per checkpoint of the target.
  await until('one point in each plot', async () => JSON.stringify(await plotPoints(page, key)) === '[1,1,1,1]' || JSON.stringify(await plotPoints(page, key)));
  assert.equal(await page.locator(`${panel} figure[data-plot] canvas`).count(), PLOT_KINDS.length);
  // Marked, so that the next check proves the same charts were updated, not the page reloaded or the charts remade.
  await page.$$eval(`${panel} figure[data-plot] canvas`, (cs) => cs.forEach((c) => c.setAttribute('data-marked', '1')));

  // A dump through the API: the feed brings it, each plot gets one more point.
  const { jobId } = await call('POST', '/api/v1/dumps', { target: { pid: counter.pid } });
  await page.waitForSelector(`#jobs-body tr[data-job-id="${jobId}"][data-state="completed"]`, { timeout: 60_000 });
  const second = (await call('GET', `/api/v1/jobs/${jobId}`)).result.checkpointId;
  await page.waitForSelector(`${panel} tr[data-checkpoint-id="${second}"]`);
  const ofTarget = (await call('GET', '/api/v1/checkpoints')).items.filter((c: any) => c.target.key === key);
  assert.equal(ofTarget.length, 2);
  await until('two points in each plot', async () => JSON.stringify(await plotPoints(page, key)) === '[2,2,2,2]' || JSON.stringify(await plotPoints(page, key)));
  assert.equal(await page.locator(`${panel} figure[data-plot] canvas[data-marked="1"]`).count(), PLOT_KINDS.length, 'the same charts, updated live');
  // The target's last success moved to the new checkpoint; the schedule's did not (the dump was not the schedule's).
  assert.equal(await page.getAttribute(`${panel} .target-head .last-success time`, 'datetime'), new Date(ofTarget[0].created).toISOString());
  assert.equal(await page.getAttribute(`${line} .last-success time`, 'datetime'), created);

  // The jobs list found by checkpoint id, by target, by schedule, by state.
  const shownJobs = async (info: string) => page.waitForSelector(`#jobs-info >> text="${info}"`);
  await page.fill('#search', first.id);
  await shownJobs('1–1 of 1 jobs (2 loaded)');
  assert.match((await page.getAttribute('#jobs-body tr', 'data-job-id'))!, new RegExp(`^sched-${scheduleId}-manual-`));
  await page.fill('#search', key);
  await shownJobs('1–2 of 2 jobs');
  await page.fill('#search', '');
  await page.selectOption('#filter-schedule', scheduleId);
  await shownJobs('1–1 of 1 jobs (2 loaded)');
  await page.selectOption('#filter-schedule', '');
  await page.selectOption('#filter-state', 'failed');
  await page.waitForSelector('#jobs-empty >> text="No job matches."');
  await page.selectOption('#filter-state', '');
  await shownJobs('1–2 of 2 jobs');

  // Delete the newest from the page, confirmed: the API no longer has it, the plots are back to one point.
  await page.click(`${panel} tr[data-checkpoint-id="${second}"] button[data-action="delete"]`);
  await page.waitForSelector('#confirm[open]');
  assert.match((await page.textContent('#confirm-text'))!, new RegExp(second));
  await page.click('#confirm-ok');
  await until('deleted in the API', async () => (await fetch(`${srv.url}/api/v1/checkpoints/${second}`, { headers: { authorization: `Bearer ${tokens.operate}` } })).status === 404);
  await page.waitForSelector(`${panel} tr[data-checkpoint-id="${second}"]`, { state: 'detached' });
  await until('one point in each plot again', async () => JSON.stringify(await plotPoints(page, key)) === '[1,1,1,1]' || JSON.stringify(await plotPoints(page, key)));
  assert.equal(await page.getAttribute(`${panel} .target-head .last-success time`, 'datetime'), created);

  // Pin from the page: the API says pinned; unpin: it says not.
  const pinRow = `${panel} tr[data-checkpoint-id="${first.id}"]`;
  await page.click(`${pinRow} button[data-action="pin"]`);
  await until('pinned in the API', async () => (await call('GET', `/api/v1/checkpoints/${first.id}`)).pinned === true);
  await page.waitForSelector(`${pinRow} button[data-action="unpin"]`);
  await page.waitForSelector(`${pinRow} .badge:text("pinned")`);
  await page.click(`${pinRow} button[data-action="unpin"]`);
  await until('unpinned in the API', async () => (await call('GET', `/api/v1/checkpoints/${first.id}`)).pinned === false);
  await page.waitForSelector(`${pinRow} button[data-action="pin"]`);
  await page.click(`${pinRow} button[data-action="pin"]`);
  await until('pinned again', async () => (await call('GET', `/api/v1/checkpoints/${first.id}`)).pinned === true);
  await page.waitForSelector(`${pinRow} button[data-action="unpin"]`);

  // Pause from the schedules panel: the API says paused, the target panel has no next runs; resume brings them back.
  await page.click(`${scheduleRow} button[data-action="pause"]`);
  await until('paused in the API', async () => (await call('GET', `/api/v1/schedules/${scheduleId}`)).state.paused === true);
  await page.waitForSelector(`${scheduleRow} .badge.paused`);
  await page.waitForSelector(`${line} .next-runs:has-text("none (paused or disabled)")`);
  await page.click(`${scheduleRow} button[data-action="resume"]`);
  await until('resumed in the API', async () => (await call('GET', `/api/v1/schedules/${scheduleId}`)).state.paused === false);
  await page.waitForSelector(`${line} .next-runs li[data-at="${wantedRuns[0]}"]`);

  // A read-only token: the same panel and figures, no pin, drill, restore, delete, pause or run-now button.
  const reader = await watchedPage(browser, srv.url, true);
  await reader.page.goto(`${srv.url}/?token=${tokens.read}`);
  await reader.page.waitForSelector('body[data-role="read"]');
  await reader.page.waitForSelector(`${line} .next-runs li[data-at="${wantedRuns[2]}"]`);
  await reader.page.waitForSelector(`${panel} tr[data-checkpoint-id="${first.id}"] .badge:text("pinned")`);
  assert.deepEqual(await plotPoints(reader.page, key), [1, 1, 1, 1]);
  // Its events panel is filled from history (everything happened before it loaded).
  for (const id of [first.id, second]) await reader.page.waitForSelector(`#events li[data-event="checkpoint.created"]:has-text("${id}")`);
  assert.equal(await reader.page.locator('#targets button, #schedules button').count(), 0, 'no buttons in the target and schedules panels');
  assert.deepEqual(reader.pageErrors, []);
  await reader.page.close();

  // 800 and 1920 px: the plots and schedule lines fit, nothing scrolls sideways.
  const shots = await mkdtemp(path.join(os.tmpdir(), 'ckpt-targets-shots-'));
  for (const width of [800, 1920]) {
    await page.setViewportSize({ width, height: 1100 });
    await until(`plots resized to ${width} px`, async () => {
      const overflow = (await page.evaluate('document.documentElement.scrollWidth - document.documentElement.clientWidth')) as number;
      return overflow <= 0 || `${overflow} px too wide`;
    }, 5_000);
    await page.screenshot({ path: path.join(shots, `targets-${width}.png`), fullPage: true });
  }
  console.log(`# targets: screenshots in ${shots}`);

  assert.deepEqual(pageErrors, [], 'no script errors');
  assert.deepEqual(outside, [], 'nothing loaded from elsewhere');
});
