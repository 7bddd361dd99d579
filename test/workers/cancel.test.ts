import assert from 'node:assert/strict';
import { test } from 'node:test';
import { JobStateError } from '../../src/queue/errors.js';
import { startCounter } from '../helpers/targets.js';
import { startHarness } from './harness.js';

test('cancelling a waiting job removes it and tells the feed; a finished job cannot be cancelled, only a failed one retried', async (t) => {
  const h = await startHarness(t);
  if (!h) return;
  const target = await startCounter();
  h.defer(() => target.kill());

  // No worker yet: the job waits.
  const waiting = await h.queue.enqueueDump({ target: { pid: target.pid } });
  assert.equal((await h.queue.getJob(waiting.jobId))!.state, 'waiting');
  assert.deepEqual(await h.queue.cancelJob(waiting.jobId), { id: waiting.jobId, outcome: 'removed' });
  assert.equal(await h.queue.getJob(waiting.jobId), null);
  const cancelled = (await h.eventsOf(waiting.jobId)).filter((e) => e.event === 'job.cancelled');
  assert.deepEqual(cancelled.map((e) => e.data), [{ node: 'node-a', state: 'waiting' }]);
  assert.equal(await h.queue.cancelJob(waiting.jobId), null, 'gone: nothing to cancel');
  assert.equal(await h.queue.cancelJob('no-such-job'), null);

  // A worker now: the removed job never runs; a new one completes.
  await h.startWorker();
  const done = await h.queue.enqueueDump({ target: { pid: target.pid } });
  assert.equal((await h.waitFinished(done.jobId)).state, 'completed');
  await assert.rejects(h.queue.cancelJob(done.jobId), (err: unknown) => err instanceof JobStateError && /completed already/.test(err.message));
  await assert.rejects(h.queue.retryJob(done.jobId), (err: unknown) => err instanceof JobStateError && /only a failed job/.test(err.message));
  assert.ok(!(await h.eventsOf(waiting.jobId)).some((e) => e.event === 'job.active'), 'the cancelled job never started');
  assert.equal((await h.catalog.list({ targetKey: `python3-${target.pid}` })).length, 1);
});
