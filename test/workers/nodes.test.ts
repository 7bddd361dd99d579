import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { FeedEvent } from '../../src/events/types.js';
import { startCounter } from '../helpers/targets.js';
import { startHarness } from './harness.js';

test('two workers with different node names on one Redis: every job runs on its own node, none on the other', async (t) => {
  const h = await startHarness(t);
  if (!h) return;
  await h.startWorker(h.configFor('node-a'));
  await h.startWorker(h.configFor('node-b'));
  const targets = await Promise.all([startCounter(), startCounter()]);
  h.defer(() => Promise.all(targets.map((c) => c.kill())));

  // No worker serves node-c: its job, enqueued before all others, stays waiting while both workers take the later ones.
  const orphan = await h.queue.enqueueDump({ target: { pid: targets[0]!.pid }, node: 'node-c' });
  // Like two hosts: each node dumps its own process (one process, one node).
  const own = { 'node-a': targets[0]!, 'node-b': targets[1]! };
  const jobs: { jobId: string; node: string }[] = [];
  for (const node of ['node-a', 'node-b', 'node-a', 'node-b', 'node-b'] as const) {
    jobs.push(await h.queue.enqueueDump({ target: { pid: own[node].pid }, node }));
  }
  // The queue's own node (node-a) is the default.
  jobs.push(await h.queue.enqueueDump({ target: { pid: targets[0]!.pid } }));
  assert.equal(jobs.at(-1)!.node, 'node-a');

  for (const { jobId, node } of jobs) {
    const job = await h.waitFinished(jobId);
    assert.equal(job.state, 'completed', job.failedReason);
    assert.equal(job.node, node);
    const events: FeedEvent[] = await h.eventsOf(jobId);
    const active = events.filter((e) => e.event === 'job.active');
    assert.deepEqual(active.map((e) => e.data.node), [node], `job ${jobId} ran on ${node} only`);
    assert.equal((await h.catalog.get(job.result!.checkpointId!)).node, node, 'the checkpoint records its node');
  }
  assert.equal((await h.queue.getJob(orphan.jobId))!.state, 'waiting');
  assert.deepEqual((await h.eventsOf(orphan.jobId)).map((e) => e.event), ['job.waiting'], 'no worker took the node-c job');
  assert.deepEqual(await h.queue.nodes(), ['node-a', 'node-b', 'node-c']);
  // Any node's jobs are listed and found by id from one JobQueue.
  const listed = await h.queue.listJobs({ type: 'dump', limit: 100 });
  assert.equal(listed.length, jobs.length + 1);
  assert.deepEqual(new Set(listed.map((j) => j.node)), new Set(['node-a', 'node-b', 'node-c']));
});
