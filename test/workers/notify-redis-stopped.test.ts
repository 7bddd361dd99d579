import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readProcStat, readProcStatus } from '../../src/common/proc.js';
import { criuWorkersOf, holdCriuWorkersWhen, waitEnded } from '../helpers/criu.js';
import { startCounter } from '../helpers/targets.js';
import { countsOn, waitUntil } from '../helpers/wait.js';
import { startHarness } from './harness.js';

test('CRIU NOTIFYs are answered without Redis: with Redis stopped mid-dump CRIU finishes and the target runs on; after SIGCONT the job completes once', async (t) => {
  // A lock long enough that the stopped Redis cannot make the job look stalled: what is tested is CRIU's wait, not lock expiry.
  const h = await startHarness(t, { lockDurationMs: 60_000 });
  if (!h) return;
  await h.startWorker();
  const target = await startCounter();
  h.defer(() => target.kill());

  const { jobId } = await h.queue.enqueueDump({ target: { pid: target.pid } });
  // CRIU's worker for the dump is held still once the job says it is dumping: Redis is stopped before CRIU sends its
  // first NOTIFY, however fast the machine.
  const servicePid = h.criu.pid!;
  const releaseCriu = await holdCriuWorkersWhen(servicePid, `CRIU's worker for dump ${jobId}`, async () => (await h.queue.getJob(jobId))?.progress?.stage === 'dumping');
  const criuWorkers = criuWorkersOf(servicePid);
  h.redis.freeze();
  h.defer(() => h.redis.thaw());
  const redisPid = h.redis.pid!;
  await waitUntil('redis-server to stop', async () => (await readProcStat(redisPid))?.state === 'T', { pollMs: 1 });
  releaseCriu();

  // Every NOTIFY (pre-dump, post-dump) needs the ckpt worker's answer: CRIU ends only if it got them all.
  await waitEnded(criuWorkers, "CRIU's worker for the dump, while Redis is stopped,");
  const status = await readProcStatus(target.pid);
  assert.ok(status, 'the target is alive');
  assert.equal(status.tracerPid, 0, 'CRIU let go of the target');
  assert.ok(!['T', 't'].includes(status.state), `the target is not stopped: State ${status.state}`);
  await countsOn(target);
  assert.equal((await readProcStat(redisPid))?.state, 'T', 'Redis was stopped all along');

  h.redis.thaw();
  const job = await h.waitFinished(jobId, 60_000);
  assert.equal(job.state, 'completed', job.failedReason);
  assert.equal(job.attemptsMade, 1, 'one attempt');
  const checkpoints = await h.catalog.list();
  assert.deepEqual(checkpoints.map((c) => c.id), [job.result!.checkpointId], 'exactly one checkpoint, the job\'s');

  // The stages went out afterwards, in CRIU's order, each once, before the completion.
  const events = (await h.eventsOf(jobId)).map((e) => (e.event === 'job.progress' ? String(e.data.stage) : e.event));
  const ofInterest = events.filter((e) => ['pre-dump', 'post-dump', 'job.completed', 'checkpoint.created'].includes(e));
  assert.deepEqual(ofInterest.filter((e) => e !== 'checkpoint.created'), ['pre-dump', 'post-dump', 'job.completed'], events.join(' '));
  assert.equal(ofInterest.filter((e) => e === 'checkpoint.created').length, 1, events.join(' '));
});
