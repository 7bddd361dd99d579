import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { startCounter } from '../helpers/targets.js';
import { waitUntil } from '../helpers/wait.js';
import { startHarness } from './harness.js';

test('a dump retries while the CRIU service is down and completes once it is back', async (t) => {
  const h = await startHarness(t, { attempts: 10 });
  if (!h) return;
  await h.startWorker();
  const target = await startCounter();
  h.defer(() => target.kill());

  await h.criu.stop();
  const { jobId } = await h.queue.enqueueDump({ target: { pid: target.pid } });
  // Wait for a failed attempt that will be retried, then bring CRIU back.
  await waitUntil('a failed attempt that will be retried', async () => {
    const events = await h.eventsOf(jobId);
    assert.ok(!events.some((e) => e.event === 'job.failed' && e.data.final), 'must not fail for good');
    return events.some((e) => e.event === 'job.retrying');
  }, { timeoutMs: 30_000, pollMs: 50 });
  await h.criu.start();

  const job = await h.waitFinished(jobId);
  assert.equal(job.state, 'completed', job.failedReason);
  assert.ok(job.attemptsMade >= 2, `attemptsMade ${job.attemptsMade}`);
  const failed = (await h.eventsOf(jobId)).filter((e) => e.event === 'job.failed');
  assert.ok(failed.length >= 1);
  assert.equal(failed[0]!.data.code, 'ECRIU_NO_SOCKET');
  assert.equal(failed[0]!.data.final, false);
  assert.equal((await h.catalog.list({ targetKey: `python3-${target.pid}` })).length, 1, 'one checkpoint, from the last attempt');
  assert.ok(target.alive());
});

test('a dump of a pid that does not exist fails after one attempt, naming the pid', async (t) => {
  const h = await startHarness(t);
  if (!h) return;
  await h.startWorker();
  const pidMax = Number(readFileSync('/proc/sys/kernel/pid_max', 'utf8'));
  let pid = pidMax - 1;
  while (existsSync(`/proc/${pid}`)) pid--;

  const { jobId } = await h.queue.enqueueDump({ target: { pid } });
  const job = await h.waitFinished(jobId);
  assert.equal(job.state, 'failed');
  assert.equal(job.attemptsMade, 1);
  assert.match(job.failedReason!, new RegExp(`pid ${pid}\\b`));
  const events = await h.eventsOf(jobId);
  assert.deepEqual(
    events.filter((e) => e.event === 'job.failed').map((e) => [e.data.code, e.data.final]),
    [['ETARGET_GONE', true]],
  );
  assert.ok(!events.some((e) => e.event === 'job.retrying'));
  assert.deepEqual(await h.catalog.list(), []);
});
