import assert from 'node:assert/strict';
import { readdir, stat, truncate, utimes } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { Job, Queue } from 'bullmq';
import { CriuClient } from '../../src/criu/client.js';
import { signJobData } from '../../src/queue/job-signature.js';
import { queueNameFor } from '../../src/queue/keys.js';
import type { AttemptTarget, DumpJobData } from '../../src/queue/schemas.js';
import { readProcessSnapshot } from '../../src/targets/process-snapshot.js';
import { bootTimeMs, readProcStatus } from '../../src/common/proc.js';
import { criuWorkersOf, holdCriuWorkersWhen } from '../helpers/criu.js';
import { startCounter, type Counter } from '../helpers/targets.js';
import { countsOn, waitUntil } from '../helpers/wait.js';
import { startHarness, type Harness } from './harness.js';
import { spawnWorkerProcess } from './worker-process.js';

test('a worker SIGKILLed mid-dump: the next worker finishes the job, one checkpoint, target running and not stopped', async (t) => {
  const h = await startHarness(t);
  if (!h) return;
  const ballast = 128 * 1024 * 1024;
  const target = await startCounter(ballast / 1024 / 1024);
  h.defer(() => target.kill());
  const first = await spawnWorkerProcess(h.config, h.root);
  h.defer(() => first.child.kill('SIGKILL'));

  const { jobId } = await h.queue.enqueueDump({ target: { pid: target.pid } });
  const { checkpointId } = (await h.queue.getJob(jobId))!.data as { checkpointId: string };
  const pagesFile = path.join(h.root, `python3-${target.pid}`, `.tmp-${checkpointId}`, 'pages-1.img');
  const pagesWritten = async () => (await stat(pagesFile).catch(() => null))?.size ?? 0;
  // Kill the worker while CRIU writes the target's memory: CRIU is held with some pages written and no reply sent.
  let releaseCriu = await holdCriuWorkersWhen(h.criu.pid!, `CRIU to write pages into ${pagesFile}`, async () => (await pagesWritten()) > 0);
  h.defer(releaseCriu);
  first.child.kill('SIGKILL');
  await first.exited;
  releaseCriu();

  // Without its client, CRIU gives up (or finishes) and lets the target go: it runs on, not stopped, not traced.
  await waitUntil('the target to run on, not stopped, not traced', async () => {
    const st = await readProcStatus(target.pid);
    assert.ok(st, 'the target still exists');
    return st.state !== 'T' && st.state !== 't' && st.tracerPid === 0;
  });
  await waitUntil('the CRIU worker of the killed client to end', () => criuWorkersOf(h.criu.pid!).length === 0);

  // A new worker of the node takes the stalled job back. Its CRIU is held again between 5 % and 90 % of the ballast
  // written: the progress it reports meanwhile is real, bytes of page images against the target's memory.
  await h.startWorker();
  releaseCriu = await holdCriuWorkersWhen(h.criu.pid!, 'the retry to write part of the pages', async () => {
    const written = await pagesWritten();
    return written > ballast * 0.05 && written < ballast * 0.9;
  });
  h.defer(releaseCriu);
  const held = await pagesWritten();
  const partial = await waitUntil(`progress of the ${held} bytes written while CRIU is held`, async () =>
    (await h.eventsOf(jobId)).find((e) => e.event === 'job.progress' && e.data.bytesWritten === held),
  );
  assert.ok((partial.data.percent as number) > 0 && (partial.data.percent as number) < 99, `percent ${partial.data.percent}`);
  assert.ok((partial.data.bytesExpected as number) > ballast);
  releaseCriu();

  const job = await h.waitFinished(jobId, 45_000);
  assert.equal(job.state, 'completed', job.failedReason);
  assert.equal(job.result!.checkpointId, checkpointId, 'the same checkpoint id as the first attempt');
  const events = await h.eventsOf(jobId);
  assert.ok(events.some((e) => e.event === 'job.stalled'), 'the stalled job was reported');
  assert.equal(events.filter((e) => e.event === 'checkpoint.created').length, 1);
  assert.equal(events.filter((e) => e.event === 'job.completed').length, 1);
  // The killed attempt's CRIU log, whose folder the retry removed, is in the job log, before the retry's.
  const jobLog = (await h.queue.getJobLog(jobId))!;
  const removed = jobLog.indexOf("the whole log was removed with the unfinished attempt's folder");
  assert.ok(removed > 0, jobLog.slice(0, 2000));
  const discarded = jobLog.indexOf(`an earlier attempt of checkpoint ${checkpointId} did not finish: discarding it`);
  assert.ok(discarded >= 0 && discarded < removed);
  assert.match(jobLog.slice(discarded, removed), /^\(\s*\d+\.\d+\) .*pages/m, 'CRIU\'s lines of the killed attempt');
  assert.ok(removed < jobLog.indexOf(`the whole log: checkpoint ${checkpointId}`), 'then the retry\'s');

  // Exactly one checkpoint: in the catalog and on disk (no attempt folder left behind).
  const listed = await h.catalog.list({ targetKey: `python3-${target.pid}` });
  assert.deepEqual(listed.map((c) => c.id), [checkpointId]);
  assert.deepEqual(await readdir(path.join(h.root, `python3-${target.pid}`)), [checkpointId]);
  assert.ok(listed[0]!.bytes > ballast);

  const st = await readProcStatus(target.pid);
  assert.ok(st && st.state !== 'T' && st.state !== 't', `target state ${st?.state}`);
  await countsOn(target);
});

/**
 * A dump job of `target` as an earlier attempt whose worker died left it: the target it resolved recorded in the signed
 * job (`resolved` changes what was recorded) and, with `dumped`, the attempt folder CRIU finished (a worker that died
 * right after CRIU's reply).
 */
async function leftByEarlierAttempt(h: Harness, target: Counter, opts: { leaveRunning?: boolean; resolved?: Partial<AttemptTarget>; dumped?: boolean } = {}) {
  const { jobId } = await h.queue.enqueueDump({ target: { pid: target.pid }, leaveRunning: opts.leaveRunning ?? true });
  const queue = new Queue(queueNameFor('node-a'), { connection: h.client, prefix: 'ckpt' });
  h.defer(() => queue.close());
  const job = (await Job.fromId(queue, jobId))!;
  const data = job.data as DumpJobData;
  const info = (await readProcessSnapshot(target.pid))!;
  const resolved = { key: info.targetKey, pid: info.pid, cmdline: info.cmdline, exe: info.exe, uid: info.uid, startTime: info.startTime, attemptStartedAt: Date.now(), ...opts.resolved };
  await job.updateData(signJobData(h.signer, { type: 'dump', jobId, node: 'node-a' }, { ...data, resolved }));
  let attemptDir = '';
  if (opts.dumped) {
    attemptDir = (await h.store.beginAttempt(info.targetKey, data.checkpointId, { jobId })).dir;
    await new CriuClient({ socketPath: h.criu.socketPath }).dump({ pid: target.pid, imagesDir: attemptDir, leaveRunning: true, logLevel: 4, logFile: 'dump.log' });
  }
  return { jobId, data, info, resolved, attemptDir };
}

test('a dump CRIU finished but whose worker died before committing it is adopted by the retry, not made again', async (t) => {
  const h = await startHarness(t);
  if (!h) return;
  const target = await startCounter();
  h.defer(() => target.kill());
  const { jobId, data, info } = await leftByEarlierAttempt(h, target, { dumped: true });

  await h.startWorker();
  const done = await h.waitFinished(jobId);
  assert.equal(done.state, 'completed', done.failedReason);
  assert.equal(done.result!.adopted, true);
  assert.equal(done.result!.checkpointId, data.checkpointId);
  assert.match((await h.queue.getJobLog(jobId))!, /had finished: adopting it/);
  assert.deepEqual(await readdir(path.join(h.root, info.targetKey)), [data.checkpointId]);
  assert.deepEqual((await h.catalog.list({ targetKey: info.targetKey })).map((c) => c.id), [data.checkpointId]);
  assert.ok(target.alive());
});

// A machine restart cannot be made on demand here: the folder is dated before this boot, as one CRIU finished before it.
for (const torn of [false, true]) {
  test(`a dump CRIU finished before the machine restarted is adopted only when its images are all there (${torn ? 'page images short' : 'whole'})`, async (t) => {
    const h = await startHarness(t);
    if (!h) return;
    const target = await startCounter();
    h.defer(() => target.kill());
    const { jobId, data, info, attemptDir } = await leftByEarlierAttempt(h, target, { dumped: true });
    const pages = (await readdir(attemptDir)).find((n) => /^pages-\d+\.img$/.test(n))!;
    if (torn) await truncate(path.join(attemptDir, pages), 4096);
    const beforeBoot = new Date(bootTimeMs() - 60_000);
    await utimes(path.join(attemptDir, 'stats-dump'), beforeBoot, beforeBoot);

    await h.startWorker();
    const done = await h.waitFinished(jobId);
    assert.equal(done.state, 'completed', done.failedReason);
    const log = (await h.queue.getJobLog(jobId))!;
    if (torn) {
      assert.equal(done.result!.adopted, undefined, 'dumped again');
      assert.match(log, /had finished, but the machine restarted before it reached the disk whole \(page images hold 4096 bytes, CRIU wrote \d+ pages of 4096\): discarding it/);
    } else {
      assert.equal(done.result!.adopted, true);
      assert.match(log, /had finished before the machine restarted, and its images are all there: adopting it/);
    }
    const [checkpoint] = await h.catalog.list({ targetKey: info.targetKey });
    assert.equal(checkpoint?.id, data.checkpointId, 'one checkpoint either way, under the job\'s id');
    assert.deepEqual(await h.store.verify(checkpoint!), []);
    const committedPages = (await stat(path.join(h.store.pathOf(checkpoint!), pages))).size;
    assert.equal(committedPages, (checkpoint!.stats.pagesWritten as number) * 4096, 'the committed page images are whole');
  });
}

// Pid reuse cannot be made on demand: the earlier attempt's record names an older process (another start time), or
// one found before this boot.
for (const reused of ['another start time', 'before the machine restarted'] as const) {
  test(`a retry of "dump --pid N --stop" whose pid is now another process (${reused}) fails and leaves that process alone`, async (t) => {
    const h = await startHarness(t, { attempts: 3 });
    if (!h) return;
    const target = await startCounter();
    h.defer(() => target.kill());
    const { startTime } = (await readProcessSnapshot(target.pid))!;
    const { jobId, info, resolved } = await leftByEarlierAttempt(h, target, {
      leaveRunning: false,
      resolved: reused === 'another start time' ? { startTime: startTime - 100 } : { attemptStartedAt: bootTimeMs() - 60_000 },
    });

    await h.startWorker();
    const done = await h.waitFinished(jobId);
    assert.equal(done.state, 'failed');
    assert.equal(done.attemptsMade, 1, 'final: no retry');
    assert.match(done.failedReason ?? '', new RegExp(`pid ${target.pid} is another process .* than the one an earlier attempt of this job found .*${reused === 'another start time' ? `start time ${resolved.startTime}` : 'before the machine restarted'}.*this one is left alone`));
    assert.ok(target.alive(), 'not stopped by a dump');
    await countsOn(target);
    assert.deepEqual(await h.catalog.list({ targetKey: info.targetKey }), []);
    assert.deepEqual(await readdir(h.root).catch(() => []), []);
  });
}

test('a folder left by an attempt that died before recording its target is cleared, and the dump made once', async (t) => {
  const h = await startHarness(t);
  if (!h) return;
  const target = await startCounter();
  h.defer(() => target.kill());
  const { jobId } = await h.queue.enqueueDump({ target: { pid: target.pid } });
  const { checkpointId } = (await h.queue.getJob(jobId))!.data as { checkpointId: string };
  // What a worker that died right after making its attempt folder leaves: the folder, and no resolved target in the job.
  const key = (await readProcessSnapshot(target.pid))!.targetKey;
  await h.store.beginAttempt(key, checkpointId, { jobId });

  await h.startWorker();
  const done = await h.waitFinished(jobId);
  assert.equal(done.state, 'completed', done.failedReason);
  assert.equal(done.attemptsMade, 1);
  assert.equal(done.result!.checkpointId, checkpointId);
  assert.deepEqual(await readdir(path.join(h.root, key)), [checkpointId]);
  assert.deepEqual((await h.catalog.list({ targetKey: key })).map((c) => c.id), [checkpointId]);
});
