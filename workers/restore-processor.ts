import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DelayedError, type Job } from 'bullmq';
import { CriuError } from '../src/criu/errors.js';
import { jobCriuOptions } from '../src/criu/options.js';
import { readRestoreStats } from '../src/criu/stats.js';
import type { NotifyScript } from '../src/criu/connection.js';
import type { JobResult } from '../src/queue/job-view.js';
import { LeaseSemaphore, type Lease } from '../src/queue/lease-semaphore.js';
import type { RestoreJobData } from '../src/queue/schemas.js';
import { CriuLogTailer } from './criu-log-tailer.js';
import { networkLockFor } from './network-lock.js';
import { FinalJobError, RetryableJobError } from './failure.js';
import { isRunning, waitPidFree } from './proc-wait.js';
import type { JobRun, WorkerContext } from './worker-context.js';
import { restoreWorkload } from './workload-restore.js';

/** Rough share of a restore done when CRIU reports each stage (restores have no byte count to follow). */
const RESTORE_STAGE_PERCENT: Partial<Record<NotifyScript, number>> = {
  'pre-restore': 10,
  'setup-namespaces': 20,
  'post-setup-namespaces': 30,
  'post-restore': 70,
  'pre-resume': 80,
  'post-resume': 90,
};

/** A batch child that found all of its batch's places taken tries again this much later (not counted as an attempt). */
const BATCH_SLOT_RETRY_MS = 500;

/**
 * One attempt of a restore job: reads the checkpoint folder named by the signed job, trusts it only when its manifest
 * is signed and the catalog entry agrees, and checks its files against that manifest; holds a catalog ref on the checkpoint (so it is not deleted meanwhile) and, for a
 * batch child, one of the batch's `concurrency` places; waits (bounded) for the checkpoint's pid to be free;
 * restores with CRIU's log in the checkpoint folder (`restore-<jobId>.log`), followed live; checks the restored
 * process is still alive a moment later.
 */
export async function processRestore(job: Job<RestoreJobData>, run: JobRun, ctx: WorkerContext): Promise<JobResult> {
  const { reporter } = run;
  const cfg = ctx.config.worker;
  const started = Date.now();
  const { checkpointId, target } = job.data;
  // The folder comes from the signed job (id and target key) and what is restored from that folder's signed
  // manifest; the catalog entry (Redis) must still list the checkpoint and agree, but is trusted for nothing.
  const listed = await ctx.catalog.get(checkpointId);
  const untrusted = () =>
    new FinalJobError(
      `checkpoint ${checkpointId}: its catalog entry (${listed.target.key}/${listed.id}) does not match its signed manifest ` +
        `(${target}/${checkpointId}); not restoring`,
      'EMANIFEST_UNTRUSTED',
    );
  if (listed.id !== checkpointId || listed.target.key !== target) throw untrusted();
  const checkpoint = await ctx.store.readSigned(target, checkpointId);
  if (!checkpoint) {
    throw new FinalJobError(
      `checkpoint ${checkpointId}'s images are not on this node (${ctx.node}); it was made on node ${listed.node}`,
      'EIMAGES_MISSING',
    );
  }
  if (listed.signature !== checkpoint.signature) throw untrusted();
  const imagesDir = ctx.store.pathOf(checkpoint);
  // Before any CRIU: a checkpoint whose files are not what was committed would restore a corrupt process, or half of one.
  const damage = await ctx.store.verify(checkpoint);
  if (damage.length) {
    throw new FinalJobError(`checkpoint ${checkpoint.id} is damaged, not restoring it: ${damage.join('; ')}`, 'ECHECKPOINT_DAMAGED');
  }
  // The in-use mark was taken at enqueue; taking it again fails (ENOTFOUND) if the checkpoint is being deleted.
  // Released on success; a failed attempt keeps it for the retry, and the catalog drops it once the job has failed
  // for good (isRefLive).
  await ctx.catalog.acquireRef(checkpoint.id, job.id!);
  let restored = false;
  let slot: Lease | null = null;
  try {
    if (job.data.batch) {
      slot = await takeBatchSlot(job, run, ctx);
      if (!slot) {
        await job.moveToDelayed(Date.now() + BATCH_SLOT_RETRY_MS, run.token);
        throw new DelayedError();
      }
    }
    if (checkpoint.target.workload) {
      // Its own pid namespace: no host pid to wait for, any number of copies.
      const { restored: workloads, stats } = await restoreWorkload(job, run, ctx, checkpoint, imagesDir);
      reporter.progress({ stage: 'done', percent: 100 });
      restored = true;
      return { checkpointId: checkpoint.id, restoredPid: workloads[0]!.hostPid, workloads, stats: { ...stats }, durationMs: Date.now() - started };
    }
    const pid = checkpoint.target.pid;
    reporter.progress({ stage: 'waiting-pid' });
    const holder = await waitPidFree(pid, cfg.pidFreeTimeoutMs, run.signal);
    if (holder) {
      throw new RetryableJobError(
        'EPID_TAKEN',
        `pid ${pid} is still taken by "${holder.name}" (state ${holder.state}) after ${cfg.pidFreeTimeoutMs} ms; ` +
          'is the checkpointed process still running?',
      );
    }
    const logFile = `restore-${job.id}.log`;
    const tailer = new CriuLogTailer({ file: path.join(imagesDir, logFile), onLines: (lines) => reporter.logLines(lines) });
    reporter.progress({ stage: 'restoring', percent: 5 });
    tailer.start();
    let restoredPid: number;
    try {
      const res = await ctx.criu.restore(
        {
          imagesDir,
          ...jobCriuOptions('restore', job.data.criu),
          logLevel: job.data.criu?.logLevel ?? ctx.config.criu.logLevel,
          networkLock: networkLockFor(job.data.criu, ctx.config),
          logFile,
        },
        {
          signal: run.signal,
          timeoutMs: ctx.config.criu.timeoutMs,
          notify: { onStage: (e) => reporter.progress({ stage: e.stage, percent: RESTORE_STAGE_PERCENT[e.stage] ?? 0 }) },
        },
      );
      restoredPid = res.pid;
      if (res.warning) await reporter.note(`CRIU warning: ${res.warning}`);
    } catch (err) {
      // Another pid of the tree (a child, reaped late by init) was still taken: wait for it before the retry.
      const taken = err instanceof CriuError && err.errnoName === 'EEXIST' ? takenPidOf(err) : undefined;
      if (taken) await waitPidFree(taken, cfg.pidFreeTimeoutMs, run.signal);
      throw err;
    } finally {
      await tailer.stop();
      // CRIU adds restore-<job>.log and stats-restore to the checkpoint folder, 0644: keep it 0600 throughout.
      await ctx.store.secure(imagesDir).catch(() => undefined);
    }
    reporter.progress({ stage: 'checking', percent: 95 });
    await sleep(cfg.aliveCheckMs, undefined, { signal: run.signal });
    if (!(await isRunning(restoredPid))) {
      throw new FinalJobError(
        `restored pid ${restoredPid} was no longer running ${cfg.aliveCheckMs} ms after the restore (see the job log)`,
        'ERESTORED_EXITED',
      );
    }
    const stats = await readRestoreStats(imagesDir);
    reporter.progress({ stage: 'done', percent: 100 });
    restored = true;
    return { checkpointId: checkpoint.id, restoredPid, stats: { ...stats }, durationMs: Date.now() - started };
  } finally {
    await slot?.release();
    if (restored) await ctx.catalog.releaseRef(checkpoint.id, job.id!);
  }
}

/** One of the batch's places, waiting for one up to busyWaitMs; null when none came free. */
async function takeBatchSlot(job: Job<RestoreJobData>, run: JobRun, ctx: WorkerContext): Promise<Lease | null> {
  const batch = job.data.batch!;
  const slots = new LeaseSemaphore(ctx.redis, {
    key: ctx.keys.batchSlots(batch.id),
    capacity: batch.concurrency,
    leaseMs: ctx.config.worker.targetLeaseMs,
  });
  run.reporter.progress({ stage: 'waiting-batch-slot' });
  const got = await slots.acquire(job.id!, { waitMs: ctx.config.worker.busyWaitMs, signal: run.signal });
  return got.lease;
}

/** The pid CRIU could not fork for ("Can't fork for 1234: File exists"). */
function takenPidOf(err: CriuError): number | undefined {
  const m = /Can't fork for (\d+)/.exec([err.criuMessage ?? '', ...err.logTail].join('\n'));
  return m ? Number(m[1]) : undefined;
}
