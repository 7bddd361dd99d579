import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { repoRoot } from '../../src/common/paths.js';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FeedEvent } from '../../src/events/types.js';
import { isAlive, killAndReap, startCounter, startSleepOnPid, waitGone } from '../helpers/targets.js';
import { waitUntil } from '../helpers/wait.js';
import { startHarness, type Harness } from './harness.js';

async function dumpOf(h: Harness, pid: number, leaveRunning = true): Promise<string> {
  const job = await h.waitFinished((await h.queue.enqueueDump({ target: { pid }, leaveRunning })).jobId);
  assert.equal(job.state, 'completed', job.failedReason);
  return job.result!.checkpointId!;
}

function waitEvent(h: Harness, jobId: string, name: string, timeoutMs = 30_000): Promise<FeedEvent> {
  return waitUntil(`${name} of job ${jobId}`, async () => (await h.eventsOf(jobId)).find((x) => x.event === name), { timeoutMs });
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

test('a pid held by a zombie is waited for, bounded: the restore fails when it is never reaped, and goes on once it is', async (t) => {
  const h = await startHarness(t);
  if (!h) return;
  await h.startWorker();
  // A counter whose parent reaps it only when told: once the dump stops it, its pid stays taken by a zombie.
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ckpt-zombie-'));
  const release = path.join(dir, 'release');
  const parent = spawn('python3', [path.join(repoRoot(), 'test/fixtures/lazy-parent.py'), path.join(dir, 'count'), release], {
    detached: true,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const pid = await new Promise<number>((resolve) => parent.stdout.setEncoding('utf8').once('data', (c: string) => resolve(Number(c.trim()))));
  t.after(async () => {
    await writeFile(release, '');
    await killAndReap(pid);
    await rm(dir, { recursive: true, force: true });
  });
  await waitFor(() => existsSync(path.join(dir, 'count')) && Number(readFileSync(path.join(dir, 'count'), 'utf8')) >= 2);
  const checkpointId = await dumpOf(h, pid, false);
  const zombie = () => readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]![0] === 'Z';
  assert.ok(zombie(), 'the dumped counter is a zombie its parent has not reaped');

  const never = await h.waitFinished((await h.queue.enqueueRestore({ checkpointId })).jobId);
  assert.equal(never.state, 'failed');
  assert.equal(never.attemptsMade, 1);
  assert.match(never.failedReason!, new RegExp(`pid ${pid} is taken by process 'python3' \\(pid ${pid}, zombie\\).*still after 3000 ms`));

  const { jobId } = await h.queue.enqueueRestore({ checkpointId });
  await waitFor(async () => (await h.eventsOf(jobId)).some((e) => e.event === 'job.progress' && e.data.stage === 'waiting-pids'));
  await writeFile(release, '');
  const restored = await h.waitFinished(jobId);
  assert.equal(restored.state, 'completed', restored.failedReason);
  assert.equal(restored.attemptsMade, 1);
  assert.equal(restored.result!.restoredPid, pid);
  assert.ok(isAlive(pid));
});

async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('timed out');
    await sleep(20);
  }
}
