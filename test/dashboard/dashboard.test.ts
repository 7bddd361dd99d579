import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { requireCriu } from '../helpers/criu.js';
import { startCounter, waitGone } from '../helpers/targets.js';
import { waitUntil } from '../helpers/wait.js';
import { startCkptUp } from '../cli/server.js';
import { openBrowser, watchedPage } from './browser.js';

// The dashboard in a real (headless) Chromium, served by a real `ckpt up`, driving real dumps and restores.

export const SCREENSHOT = path.join(os.tmpdir(), 'ckpt-dashboard.png');

test('the dashboard dumps a process live, shows the checkpoint and its log, and restores it', async (t) => {
  if (!(await requireCriu(t))) return;
  // A server that requires tokens: the page takes its token from ?token= (and drops it from the address bar).
  const token = randomBytes(16).toString('hex');
  const srv = await startCkptUp({ tokens: { operate: token, read: randomBytes(16).toString('hex') } });
  t.after(() => srv.stop());
  const api = async (p: string) => (await fetch(srv.url + p, { headers: { authorization: `Bearer ${token}` } })).json();
  const counter = await startCounter(32);
  t.after(() => counter.kill());

  const browser = await openBrowser(t);
  const { page, pageErrors, outside } = await watchedPage(browser, srv.url);

  await page.goto(`${srv.url}/?token=${token}`);
  await page.waitForSelector('#conn.conn-live');
  assert.equal(page.url(), `${srv.url}/`, 'the token is not left in the address bar');

  // Every state the job's row shows, as the page renders it (rows are re-rendered on each change).
  // (Browser-side code is given as text: this project's TypeScript has no DOM types.)
  await page.evaluate(`
    window.seenStates = {};
    new MutationObserver(() => {
      for (const row of document.querySelectorAll('#jobs-body tr[data-job-id]')) {
        const list = (window.seenStates[row.dataset.jobId] ??= []);
        if (list.at(-1) !== row.dataset.state) list.push(row.dataset.state);
      }
    }).observe(document.getElementById('jobs-body'), { childList: true, subtree: true, attributes: true });
  `);
  const logIncludes = (text: string) => page.waitForSelector(`#log:has-text(${JSON.stringify(text)})`);

  // A bad pid: the API's reason is shown next to the form.
  await page.fill('#dump-pid', '0');
  await page.click('#dump-submit');
  await page.waitForSelector('#dump-message.error');
  assert.match((await page.textContent('#dump-message'))!, /body\.target\.pid: /);

  // Dump the counter from the page; the job goes to completed in the table without a reload.
  await page.fill('#dump-pid', String(counter.pid));
  await page.click('#dump-submit');
  await page.waitForSelector('#dump-message.ok');
  const dumpJob = /dump job (\S+) queued/.exec((await page.textContent('#dump-message'))!)![1]!;
  await page.waitForSelector(`#jobs-body tr[data-job-id="${dumpJob}"][data-state="completed"]`, { timeout: 60_000 });
  const states = (await page.evaluate(`window.seenStates[${JSON.stringify(dumpJob)}]`)) as string[] | undefined;
  assert.equal(states?.at(-1), 'completed');
  assert.ok(states!.length >= 2 && states![0] !== 'completed', `the row changed live: ${states}`);
  assert.ok(counter.alive(), 'the dump left it running');

  const job = (await api(`/api/v1/jobs/${dumpJob}`)) as { result: { checkpointId: string } };
  const checkpointRow = `#targets tr[data-checkpoint-id="${job.result.checkpointId}"]`;
  await page.waitForSelector(checkpointRow);
  const row = (await page.textContent(`#jobs-body tr[data-job-id="${dumpJob}"]`))!;
  assert.match(row, /dump/);
  assert.match(row, new RegExp(job.result.checkpointId));
  assert.match(row, /frozen /);

  // Its CRIU log, shown for the selected job (selected when dumped from the page).
  await logIncludes('Dumping finished successfully');
  await page.waitForSelector(`#events li[data-event="checkpoint.created"]`);

  // Dump-and-stop, then restore from the checkpoint's button: the process is back and counts on.
  await page.check('#dump-stop');
  await page.click('#dump-submit');
  await page.waitForSelector('#dump-message.ok >> text=/dump job (?!' + dumpJob + ')/');
  const stopJob = /dump job (\S+) queued/.exec((await page.textContent('#dump-message'))!)![1]!;
  await page.waitForSelector(`#jobs-body tr[data-job-id="${stopJob}"][data-state="completed"]`, { timeout: 60_000 });
  await waitGone(counter.pid);
  const dumpedAt = counter.read();
  const stopped = (await api(`/api/v1/jobs/${stopJob}`)) as { result: { checkpointId: string } };
  // Restore asks first: cancelled, nothing happens; confirmed, the restore is queued (one restore job in all).
  const restoreButton = `#targets tr[data-checkpoint-id="${stopped.result.checkpointId}"] button[data-action="restore"]`;
  await page.click(restoreButton);
  await page.waitForSelector('#confirm[open]');
  assert.match((await page.textContent('#confirm-text'))!, new RegExp(stopped.result.checkpointId));
  await page.click('#confirm-cancel');
  await page.waitForSelector('#confirm:not([open])', { state: 'attached' });
  await page.click(restoreButton);
  await page.click('#confirm-ok');
  await page.waitForSelector('#dump-message.ok >> text=/restore job/');
  const restoreJob = /restore job (\S+) queued/.exec((await page.textContent('#dump-message'))!)![1]!;
  await page.waitForSelector(`#jobs-body tr[data-job-id="${restoreJob}"][data-state="completed"]`, { timeout: 60_000 });
  assert.match((await page.textContent(`#jobs-body tr[data-job-id="${restoreJob}"]`))!, new RegExp(`pid ${counter.pid}`));
  await waitUntil(`the restored counter (pid ${counter.pid}) to count past ${dumpedAt + 5}`, () => counter.alive() && counter.read() > dumpedAt + 5);

  const restores = (await api('/api/v1/jobs?type=restore')) as { items: unknown[] };
  assert.equal(restores.items.length, 1, 'the cancelled confirmation queued nothing');
  await page.click(`#jobs-body tr[data-job-id="${restoreJob}"]`);
  await logIncludes('Restore finished successfully');

  // A workload started through the API appears live in the Workloads panel, and its end too.
  const started = await fetch(srv.url + '/api/v1/workloads', {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'panel', command: ['sleep', '300'] }),
  });
  assert.equal(started.status, 201, await started.text());
  const { hostPid } = (await api('/api/v1/workloads/panel')) as { hostPid: number };
  await page.waitForSelector('#workloads-body tr[data-workload="panel"][data-state="running"]');
  assert.match((await page.textContent('#workloads-body tr[data-workload="panel"]'))!, new RegExp(`${hostPid}.*ckpt run`));
  await fetch(srv.url + '/api/v1/workloads/panel', { method: 'DELETE', headers: { authorization: `Bearer ${token}` } });
  await page.waitForSelector('#workloads-body tr[data-workload="panel"]', { state: 'detached' });

  await page.screenshot({ path: SCREENSHOT, fullPage: true });

  assert.deepEqual(pageErrors, [], 'no script errors');
  assert.deepEqual(outside, [], 'nothing loaded from elsewhere');
});
