// job.waiting comes before job.active, once, whoever publishes it: the enqueuer after adding the job, or the worker at
// the job's first start when the enqueuer has not (src/queue/job-waiting.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EventLog } from '../../src/events/event-log.js';
import { JobQueue } from '../../src/queue/job-queue.js';
import { waitingEventOf, waitingOnce } from '../../src/queue/job-waiting.js';
import type { DumpJobData } from '../../src/queue/schemas.js';
import { startCounter } from '../helpers/targets.js';
import { startHarness } from './harness.js';

/** An enqueuer whose connection is cut between adding a job and announcing it (a real timing cannot hit that gap). */
class CutBeforeAnnounce extends EventLog {
  override publishAll(): never {
    throw new Error('connection lost');
  }
}

test('a job whose enqueuer died between adding it and announcing it: the worker announces it before job.active, once', async (t) => {
  const h = await startHarness(t);
  if (!h) return;
  const target = await startCounter();
  t.after(() => target.kill());
  const dying = new JobQueue({
    connection: h.redis.url,
    prefix: 'ckpt',
    node: h.config.node,
    eventLog: new CutBeforeAnnounce(h.client, { key: 'ckpt:events' }),
    defaults: h.config.worker,
    signer: h.signer,
  });
  t.after(() => dying.close());
  await assert.rejects(dying.enqueueDump({ target: { pid: target.pid }, scheduleId: 'nightly' }, { jobId: 'half-announced' }), /connection lost/);
  const queued = await h.queue.getJob('half-announced');
  assert.equal(queued?.state, 'waiting', 'the job was added');
  assert.deepEqual(await h.eventsOf('half-announced'), [], 'and not announced');

  await h.startWorker();
  const done = await h.waitFinished('half-announced');
  assert.equal(done.state, 'completed', done.failedReason);
  const events = await h.eventsOf('half-announced');
  assert.deepEqual(events.slice(0, 2).map((e) => e.event), ['job.waiting', 'job.active']);
  assert.equal(events.filter((e) => e.event === 'job.waiting').length, 1);
  const data = queued.data as DumpJobData;
  assert.equal(events[0]!.scheduleId, 'nightly');
  assert.deepEqual(events[0]!.data, { node: h.config.node, target: { pid: target.pid }, checkpointId: data.checkpointId }, 'what the enqueuer would have said');
  assert.equal(done.result?.checkpointId, data.checkpointId);

  // The enqueuer's announcement, late (it stalled rather than died), adds nothing.
  const late = await h.eventLog.publishAll([waitingEventOf('dump', 'half-announced', data)], [waitingOnce('half-announced', 'enqueuer')]);
  assert.equal(late[0]!.id, events[0]!.id, 'the id of the one the worker published');
  assert.equal((await h.eventsOf('half-announced')).filter((e) => e.event === 'job.waiting').length, 1);
});

test('jobs enqueued while the worker runs: each job.waiting once, before its job.active', async (t) => {
  const h = await startHarness(t);
  if (!h) return;
  const target = await startCounter();
  t.after(() => target.kill());
  await h.startWorker();
  const ids: string[] = [];
  for (let i = 0; i < 5; i++) ids.push((await h.queue.enqueueDump({ target: { pid: target.pid }, ifBusy: 'wait' })).jobId);
  for (const id of ids) assert.equal((await h.waitFinished(id)).state, 'completed');
  for (const id of ids) {
    const names: string[] = (await h.eventsOf(id)).map((e) => e.event);
    assert.deepEqual(names.slice(0, 2), ['job.waiting', 'job.active'], id);
    assert.equal(names.filter((n) => n === 'job.waiting').length, 1, id);
  }
});
