import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { test } from 'node:test';
import { isAlive, killAndReap, startCounter, waitGone, type Counter } from '../helpers/targets.js';
import { countsOn } from '../helpers/wait.js';
import { startHarness, type Harness } from './harness.js';

async function dumpOf(h: Harness, target: Counter): Promise<string> {
  const { jobId } = await h.queue.enqueueDump({ target: { pid: target.pid } });
  const job = await h.waitFinished(jobId);
  assert.equal(job.state, 'completed', job.failedReason);
  return job.result!.checkpointId!;
}

test('batch restore: every checkpoint restored, one failing child does not stop the others, the parent lists each', async (t) => {
  // The worker could run all four at once: only the batch's own concurrency (2) may hold them back.
  const h = await startHarness(t, { concurrency: 4 });
  if (!h) return;
  await h.startWorker();
  const targets = await Promise.all([startCounter(), startCounter(), startCounter(), startCounter()]);
  h.defer(() => Promise.all(targets.map((c) => c.kill())));
  const ids: string[] = [];
  for (const target of targets) ids.push(await dumpOf(h, target));
  for (const target of targets) {
    await killAndReap(target.pid);
    await waitGone(target.pid);
  }
  // The last checkpoint's images vanish: its restore fails at once, the others go on.
  const broken = await h.catalog.get(ids[3]!);
  await rm(h.store.pathOf(broken), { recursive: true });

  const { batchId, jobIds } = await h.queue.enqueueBatchRestore({ checkpointIds: ids, concurrency: 2 });
  assert.equal(jobIds.length, 4);
  const parent = await h.waitFinished(batchId, 60_000);
  assert.equal(parent.state, 'completed', parent.failedReason);
  assert.equal(parent.type, 'restore-batch');
  const items = parent.result!.items!;
  assert.deepEqual(
    items.map((i) => [i.jobId, i.checkpointId, i.state]),
    [
      [jobIds[0], ids[0], 'completed'],
      [jobIds[1], ids[1], 'completed'],
      [jobIds[2], ids[2], 'completed'],
      [jobIds[3], ids[3], 'failed'],
    ],
  );
  assert.equal(parent.result!.succeeded, 3);
  assert.equal(parent.result!.failed, 1);
  assert.match(items[3]!.reason!, /images are not on this node/);
  for (const [i, target] of targets.slice(0, 3).entries()) {
    assert.equal(items[i]!.restoredPid, target.pid);
    assert.ok(isAlive(target.pid), `restored pid ${target.pid} alive`);
    await countsOn(target);
  }
  assert.equal((await h.queue.getJob(jobIds[3]!))!.attemptsMade, 1, 'an unrecoverable child fails after one attempt');

  // Exactly `concurrency` children restored at once: the three good ones were all taken by the worker together, two ran
  // side by side, the third waited for a place. Counted from 'restoring' (a place held) to 'done' (before it is given back).
  const events = await h.eventLog.readAfter('0', 100_000);
  let running = 0;
  let most = 0;
  let started = 0;
  for (const e of events) {
    if (!jobIds.includes(e.jobId!) || e.event !== 'job.progress') continue;
    if (e.data.stage === 'restoring') {
      started++;
      most = Math.max(most, ++running);
    }
    if (e.data.stage === 'done') running--;
  }
  assert.equal(started, 3, 'each good child reported its restore');
  assert.equal(most, 2, `${most} restores ran at once (batch concurrency 2, worker concurrency 4)`);
});
