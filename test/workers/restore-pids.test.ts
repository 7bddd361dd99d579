import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FeedEvent } from '../../src/events/types.js';
import { isAlive, killAndReap, startCounter, startSleepOnPid, waitGone } from '../helpers/targets.js';
import { startHarness, type Harness } from './harness.js';

async function dumpOf(h: Harness, pid: number, leaveRunning = true): Promise<string> {
  const job = await h.waitFinished((await h.queue.enqueueDump({ target: { pid }, leaveRunning })).jobId);
  assert.equal(job.state, 'completed', job.failedReason);
  return job.result!.checkpointId!;
}

async function waitEvent(h: Harness, jobId: string, name: string, timeoutMs = 30_000): Promise<FeedEvent> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const e = (await h.eventsOf(jobId)).find((x) => x.event === name);
    if (e) return e;
    if (Date.now() > deadline) throw new Error(`no ${name} for job ${jobId} within ${timeoutMs} ms`);
    await sleep(25);
  }
}

test('a checkpoint whose pid an unrelated process holds fails at once, 1 attempt, naming it; replace leaves that process alone', async (t) => {
  const h = await startHarness(t);
  if (!h) return;
  await h.startWorker();
  const target = await startCounter();
  t.after(() => target.kill());
  const checkpointId = await dumpOf(h, target.pid);
  await killAndReap(target.pid);
  await waitGone(target.pid);
  const other = await startSleepOnPid(target.pid);
  t.after(() => other.kill());

  const restore = await h.waitFinished((await h.queue.enqueueRestore({ checkpointId })).jobId);
  assert.equal(restore.state, 'failed');
  assert.equal(restore.attemptsMade, 1, 'not retried: retrying cannot free a pid a live process holds');
  assert.match(restore.failedReason!, new RegExp(`pid ${target.pid} is taken by process 'sleep' \\(pid ${target.pid}, sleeping\\)`));
  const failed = (await h.eventsOf(restore.id)).find((e) => e.event === 'job.failed')!;
  assert.equal(failed.data.code, 'EPID_TAKEN');
  assert.equal(failed.data.final, true);

  // replace stops only the checkpointed process (same pid and start time): this one started later, so it is refused.
  const replace = await h.waitFinished((await h.queue.enqueueRestore({ checkpointId, replace: true })).jobId);
  assert.equal(replace.state, 'failed');
  assert.equal(replace.attemptsMade, 1);
  assert.match(replace.failedReason!, new RegExp(`pid ${target.pid} is taken by process 'sleep'.*replace stops only the checkpointed process`));
  assert.ok(isAlive(other.pid), 'the unrelated process was not touched');
  assert.ok(!(await h.eventsOf(replace.id)).some((e) => e.event === 'job.progress' && e.data.stage === 'stopping-original'));
});

test('a restore completes when CRIU has restored the process; an exit afterwards is its own event, restore.exited', async (t) => {
  const h = await startHarness(t);
  if (!h) return;
  await h.startWorker();
  const target = await startCounter();
  t.after(() => target.kill());
  const checkpointId = await dumpOf(h, target.pid, false);
  // No waiting for the dumped process to be reaped: a pid held by a zombie is the one thing a restore waits for.

  const { jobId } = await h.queue.enqueueRestore({ checkpointId });
  const restore = await h.waitFinished(jobId);
  assert.equal(restore.state, 'completed', restore.failedReason);
  assert.equal(restore.attemptsMade, 1);
  assert.equal(restore.result!.restoredPid, target.pid);
  const stages = (await h.eventsOf(jobId)).filter((e) => e.event === 'job.progress').map((e) => e.data.stage);
  assert.ok(!stages.includes('checking'), `no alive check after CRIU's answer: ${stages.join(', ')}`);
  assert.equal(stages.at(-1), 'done');

  // The restored process ends later: the worker that restored it says so.
  const counted = target.read();
  await waitFor(() => target.read() > counted);
  process.kill(target.pid, 'SIGKILL');
  const exited = await waitEvent(h, jobId, 'restore.exited');
  assert.deepEqual({ ...exited.data, afterMs: undefined }, { checkpointId, jobId, pid: target.pid, afterMs: undefined });
  assert.ok(typeof exited.data.afterMs === 'number' && exited.data.afterMs >= 0);
  assert.equal(exited.jobType, 'restore');
  const names = (await h.eventsOf(jobId)).map((e) => e.event);
  assert.ok(names.indexOf('job.completed') < names.indexOf('restore.exited'), names.join(', '));
  assert.equal(names.filter((n) => n === 'restore.exited').length, 1);
});

async function waitFor(check: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await sleep(20);
  }
}
