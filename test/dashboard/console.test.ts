import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import type { Page } from 'playwright-core';
import { EventLog } from '../../src/events/event-log.js';
import { JobQueue } from '../../src/queue/job-queue.js';
import { loadSigner } from '../../src/security/key-file.js';
import { startCkptUp } from '../cli/server.js';
import { requireCriu } from '../helpers/criu.js';
import { startTcpPair } from '../helpers/targets.js';
import { openBrowser, watchedPage } from './browser.js';

// The operator's console in a real Chromium against a real `ckpt up`: header counts, the failed view, options of a
// dump, read-only mode, 2,000 jobs, and how it looks at 800 and 1920 px.

const HEADER: [string, string][] = [
  ['#count-waiting', 'waiting'],
  ['#count-active', 'active'],
  ['#count-delayed', 'delayed'],
  ['#count-failed-hour', 'failedLastHour'],
  ['#count-completed', 'completed'],
];

/** Waits until the header shows what the API counts (both read again each round; the page follows the feed). */
async function headerMatchesApi(page: Page, overview: () => Promise<any>): Promise<Record<string, number>> {
  let last = '';
  for (let i = 0; i < 300; i++) {
    const counts = (await overview()).counts;
    const shown: Record<string, number> = {};
    for (const [sel, key] of HEADER) shown[key] = Number(await page.textContent(sel));
    const wanted = Object.fromEntries(HEADER.map(([, k]) => [k, counts[k]]));
    if (JSON.stringify(shown) === JSON.stringify(wanted)) return shown;
    last = `page ${JSON.stringify(shown)} api ${JSON.stringify(wanted)}`;
    await sleep(100);
  }
  throw new Error(`header never matched the API: ${last}`);
}

test('console: header counts match the API, a failed dump is shown folded until dismissed and retried from the page, a waiting job cancelled from it, tcpEstablished from the page, read-only sees no actions, 2,000 jobs, 800 and 1920 px', async (t) => {
  if (!(await requireCriu(t))) return;
  const tokens = { operate: randomBytes(16).toString('hex'), read: randomBytes(16).toString('hex') };
  const srv = await startCkptUp({ tokens });
  t.after(() => srv.stop());
  const get = async (p: string): Promise<any> => (await fetch(srv.url + p, { headers: { authorization: `Bearer ${tokens.operate}` } })).json();
  const pair = await startTcpPair();
  t.after(() => pair.kill());

  const browser = await openBrowser(t);
  const { page, pageErrors, outside } = await watchedPage(browser, srv.url);
  await page.goto(`${srv.url}/?token=${tokens.operate}`);
  await page.waitForSelector('#conn.conn-live');
  await page.waitForSelector('body[data-role="operate"]');
  await page.waitForSelector('#health-criu.ok');
  await page.waitForSelector('#health-redis.ok');
  await page.waitForSelector('#health-nodes.ok');

  // A dump CRIU refuses (an established TCP connection): it shows under "Needs attention", its reason folded.
  await page.fill('#dump-pid', String(pair.pid));
  await page.click('#dump-submit');
  await page.waitForSelector('#dump-message.ok');
  const failedId = /dump job (\S+) queued/.exec((await page.textContent('#dump-message'))!)![1]!;
  const item = `#attention li[data-job-id="${failedId}"]`;
  await page.waitForSelector(item, { timeout: 60_000 });
  const reason: string = (await get(`/api/v1/jobs/${failedId}`)).failedReason;
  assert.match(reason, /tcp-established/);
  // One line (issue 11.5), pointing at the job's log: shown whole, nothing to unfold.
  assert.ok(!reason.includes('\n'), reason);
  assert.match(reason, new RegExp(`CRIU's log: GET /api/v1/jobs/${failedId}/log$`));
  assert.equal((await page.textContent(`${item} div.reason`))!.trim(), reason);

  // The same process, dumped from the page with "TCP connections": completes.
  await page.check('#dump-tcp');
  await page.click('#dump-submit');
  await page.waitForSelector(`#dump-message.ok >> text=/dump job (?!${failedId})/`);
  const tcpJob = /dump job (\S+) queued/.exec((await page.textContent('#dump-message'))!)![1]!;
  await page.waitForSelector(`#jobs-body tr[data-job-id="${tcpJob}"][data-state="completed"]`, { timeout: 60_000 });
  assert.equal((await get(`/api/v1/jobs/${tcpJob}`)).data.criu.tcpEstablished, true);
  await page.waitForSelector(`#targets [data-target="python3-${pair.pid}"] figure[data-plot="frozen"][data-points="1"] canvas`, { state: 'attached' });

  const overview = () => get('/api/v1/overview');
  const counts = await headerMatchesApi(page, overview);
  assert.equal(counts.completed, 1);
  assert.equal(counts.failedLastHour, 1);

  // Retried from the page: the same job runs again from its first attempt (and fails again: still no tcpEstablished).
  const firstFinish: number = (await get(`/api/v1/jobs/${failedId}`)).finishedAt;
  await page.click(`${item} button[data-action="retry"]`);
  for (let i = 0; ; i++) {
    const j = await get(`/api/v1/jobs/${failedId}`);
    if (j.state === 'failed' && j.finishedAt > firstFinish) break;
    assert.ok(i < 600, `the retried job failed again: ${JSON.stringify({ state: j.state, finishedAt: j.finishedAt, firstFinish })}`);
    await sleep(100);
  }
  const history = (await get('/api/v1/events?limit=1000')).items as { event: string; jobId?: string; data: { retried?: boolean } }[];
  assert.equal(history.filter((e) => e.event === 'job.waiting' && e.jobId === failedId && e.data.retried).length, 1, 'one retry');
  await page.waitForSelector(`${item}`);
  await headerMatchesApi(page, overview);

  // Dismissed, the failure leaves the attention list (and stays in the jobs list).
  await page.click(`${item} button[data-action="dismiss"]`);
  await page.waitForSelector(item, { state: 'detached' });
  await page.waitForSelector(`#jobs-body tr[data-job-id="${failedId}"][data-state="failed"]`);

  // A read-only token: the same data, no action buttons, no dump form.
  const reader = await watchedPage(browser, srv.url, true);
  await reader.page.goto(`${srv.url}/?token=${tokens.read}`);
  await reader.page.waitForSelector('body[data-role="read"]');
  await reader.page.waitForSelector(`#jobs-body tr[data-job-id="${tcpJob}"][data-state="completed"]`);
  await reader.page.waitForSelector(`#targets [data-target="python3-${pair.pid}"]`);
  assert.equal(await reader.page.locator('button[data-action]:not([data-action="dismiss"])').count(), 0, 'no action buttons');
  assert.equal(await reader.page.isVisible('#dump-form'), false);
  await reader.page.close();

  // 2,000 jobs (queued for a node no worker serves, so they stay waiting): the page loads, filters and pages them.
  const redis = new Redis(srv.redisUrl, { maxRetriesPerRequest: null });
  const queue = new JobQueue({
    connection: srv.redisUrl,
    prefix: 'ckpt',
    node: 'elsewhere',
    eventLog: new EventLog(redis, { key: 'ckpt:events' }),
    defaults: { attempts: 1, keepCompleted: 10, keepFailed: 10 },
    // The server's key (next to its storage root), as its API would sign them.
    signer: loadSigner(path.join(path.dirname(srv.storageRoot), 'job.key')),
  });
  redis.on('error', () => undefined);
  const bench: string[] = [];
  try {
    for (let i = 0; i < 1998; i++) bench.push((await queue.enqueueDump({ target: { pid: 1 }, node: 'elsewhere' })).jobId);
  } finally {
    await queue.close();
    redis.disconnect();
  }
  const apiStarted = Date.now();
  assert.equal((await get('/api/v1/jobs?limit=2000')).items.length, 2000);
  const apiMs = Date.now() - apiStarted;
  const loadStarted = Date.now();
  await page.reload();
  await page.waitForSelector('#jobs-info >> text=/of 2000 jobs/', { timeout: 60_000 });
  const loadMs = Date.now() - loadStarted;
  assert.equal(await page.locator('#jobs-body tr').count(), 50, 'one page of rows');
  const filterStarted = Date.now();
  await page.fill('#search', bench[1234]!);
  await page.waitForSelector('#jobs-info >> text="1–1 of 1 jobs (2000 loaded)"');
  const searchMs = Date.now() - filterStarted;
  await page.fill('#search', '');
  const nodeStarted = Date.now();
  await page.selectOption('#filter-node', 'elsewhere');
  await page.waitForSelector('#jobs-info >> text="1–50 of 1998 jobs (2000 loaded)"');
  const nodeMs = Date.now() - nodeStarted;
  await page.click('#page-next');
  await page.waitForSelector('#jobs-info >> text="51–100 of 1998 jobs (2000 loaded)"');
  // Measured, not asserted (the machine is shared): reload to 2,000 rows loaded, a search, a filter (wall time seen
  // from the test, including a frame), and the page's own time to filter, sort and draw the list (its longest).
  const renders = (await page.evaluate(
    `performance.getEntriesByName('ckpt:render-jobs').filter((m) => m.detail.jobs >= 2000).map((m) => m.duration)`,
  )) as number[];
  const slowest = Math.max(...renders).toFixed(1);
  console.log(
    `# console: 2000 jobs: page load ${loadMs} ms (GET /api/v1/jobs?limit=2000 alone: ${apiMs} ms), search by id ${searchMs} ms, ` +
      `filter by node ${nodeMs} ms; in the page, filter + sort + draw of 2000 jobs: slowest ${slowest} ms of ${renders.length} renders`,
  );
  // Cancelled from the page, confirmed: the waiting job is gone from the queue, the row and the count.
  const cancelled = bench[1997]!;
  await page.fill('#search', cancelled);
  await page.click(`#jobs-body tr[data-job-id="${cancelled}"] button[data-action="cancel"]`);
  await page.waitForSelector('#confirm[open]');
  await page.click('#confirm-ok');
  await page.waitForSelector(`#jobs-body tr[data-job-id="${cancelled}"]`, { state: 'detached' });
  assert.equal((await fetch(`${srv.url}/api/v1/jobs/${cancelled}`, { headers: { authorization: `Bearer ${tokens.operate}` } })).status, 404);
  await page.fill('#search', '');
  const after = await headerMatchesApi(page, overview);
  assert.equal(after.waiting, 1997);
  await page.selectOption('#filter-node', '');

  // 800 and 1920 px wide: nothing scrolls sideways. Screenshots for people to look at.
  const shots = await mkdtemp(path.join(os.tmpdir(), 'ckpt-console-shots-'));
  for (const width of [800, 1920]) {
    await page.setViewportSize({ width, height: 1100 });
    await page.waitForSelector('#jobs-body tr');
    const overflow = (await page.evaluate('document.documentElement.scrollWidth - document.documentElement.clientWidth')) as number;
    assert.ok(overflow <= 0, `no horizontal scroll at ${width} px (${overflow} px too wide)`);
    await page.screenshot({ path: path.join(shots, `console-${width}.png`), fullPage: true });
  }
  console.log(`# console: screenshots in ${shots}`);

  assert.deepEqual(pageErrors, [], 'no script errors');
  assert.deepEqual(outside, [], 'nothing loaded from elsewhere');
});
