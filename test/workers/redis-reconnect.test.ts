import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startCounter } from '../helpers/targets.js';
import { startHarness } from './harness.js';

test('the worker reconnects by itself after Redis went away and came back', async (t) => {
  const h = await startHarness(t);
  if (!h) return;
  await h.startWorker();
  const target = await startCounter();
  h.defer(() => target.kill());

  const before = await h.queue.enqueueDump({ target: { pid: target.pid } });
  assert.equal((await h.waitFinished(before.jobId)).state, 'completed');

  await h.redis.pause(); // a crash: the in-memory test server loses everything
  await sleep(1500);
  await h.redis.resume();

  const after = await h.queue.enqueueDump({ target: { pid: target.pid } });
  const job = await h.waitFinished(after.jobId);
  assert.equal(job.state, 'completed', job.failedReason);
  assert.deepEqual(
    (await h.eventsOf(after.jobId)).map((e) => e.event).filter((e) => e !== 'job.progress' && e !== 'job.log'),
    ['job.waiting', 'job.active', 'checkpoint.created', 'job.completed'],
  );
});
