import path from 'node:path';
import { DelayedError, type Job } from 'bullmq';
import { jobCriuOptions } from '../src/criu/options.js';
import { readRestoreStats } from '../src/criu/stats.js';
import type { NotifyScript } from '../src/criu/connection.js';
import type { JobResult } from '../src/queue/job-view.js';
import { LeaseSemaphore, type Lease } from '../src/queue/lease-semaphore.js';
import type { RestoreJobData } from '../src/queue/schemas.js';
import { readProcStat } from '../src/common/proc.js';
import { CriuLogTailer } from './criu-log-tailer.js';
import { networkLockFor } from './network-lock.js';
import { checkpointImages, settleAfterRestore } from './checkpoint-images.js';
import { clearPids, originalOf, recordRestored, treePidsOf } from './restore-plan.js';
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
 * One attempt of a restore job: takes the checkpoint only as its signed manifest and checked files allow
 * (checkpoint-images.ts); holds a catalog ref on the checkpoint (so it is not deleted meanwhile) and, for a
 * batch child, one of the batch's `concurrency` places. A workload's checkpoint goes to workload-restore.ts (its own pid
 * namespace, any number of copies). Otherwise makes sure the pids the tree needs are free, or fails at once
 * naming who holds them (restore-plan.ts; with `replace`, stops the running original first); restores with CRIU's log
 * in the checkpoint folder (`restore-<jobId>.log`), followed live; completes as soon as CRIU has restored the tree
 * (a later exit of the process is its own event, see ExitWatcher).
 */
export function processRestore(job: Job<RestoreJobData>, run: JobRun, ctx: WorkerContext): Promise<JobResult> {
  return restoreCheckpoint(job, job.data, run, ctx);
}

/** processRestore for `job` with the restore `data` (a migration's second step restores what its first made). */
export async function restoreCheckpoint(job: Job, data: RestoreJobData, run: JobRun, ctx: WorkerContext): Promise<JobResult> {
  const { reporter } = run;
  const cfg = ctx.config.worker;
  const started = Date.now();
  const { checkpoint, imagesDir } = await checkpointImages(ctx, data, run, job.id!);
  // The in-use mark was taken at enqueue; taking it again fails (ECHECKPOINT_NOT_FOUND) if the checkpoint is being deleted.
  // Released on success; a failed attempt keeps it for the retry, and the catalog drops it once the job has failed
  // for good (isRefLive).
  await ctx.catalog.acquireRef(checkpoint.id, job.id!);
  let restored = false;
  let slot: Lease | null = null;
  try {
    if (data.batch) {
      slot = await takeBatchSlot(data.batch, job.id!, run, ctx);
      if (!slot) {
        await job.moveToDelayed(Date.now() + BATCH_SLOT_RETRY_MS, run.token);
        throw new DelayedError();
      }
    }
    if (checkpoint.target.workload) {
      // Its own pid namespace: no host pid to wait for, any number of copies.
      const { restored: workloads, stats } = await restoreWorkload({ jobId: job.id!, data }, run, ctx, checkpoint, imagesDir);
      reporter.progress({ stage: 'done', percent: 100 });
      restored = true;
      return { checkpointId: checkpoint.id, restoredPid: workloads[0]!.hostPid, workloads, stats: { ...stats }, durationMs: Date.now() - started };
    }
    const tree = await treePidsOf(checkpoint.id, imagesDir);
    if (!tree.namespaceInit) {
      await clearPids({
        checkpointId: checkpoint.id,
        original: await originalOf(ctx, checkpoint),
        pids: tree.pids,
        replace: data.replace ?? false,
        config: cfg,
        signal: run.signal,
        onStage: (stage) => reporter.progress({ stage }),
        note: (line) => reporter.note(line),
      });
    }
    const logFile = `restore-${job.id}.log`;
    const tailer = new CriuLogTailer({ file: path.join(imagesDir, logFile), onLines: (lines) => reporter.logLines(lines) });
    reporter.progress({ stage: 'restoring', percent: 5 });
    tailer.start();
    let res: { pid: number; warning?: string };
    try {
      res = await ctx.criu.restore(
        {
          imagesDir,
          ...jobCriuOptions('restore', data.criu),
          logLevel: data.criu?.logLevel ?? ctx.config.criu.logLevel,
          networkLock: networkLockFor(data.criu, ctx.config),
          logFile,
        },
        {
          signal: run.signal,
          timeoutMs: ctx.config.criu.timeoutMs,
          notify: { onStage: (e) => reporter.progress({ stage: e.stage, percent: RESTORE_STAGE_PERCENT[e.stage] ?? 0 }) },
        },
      );
    } catch (err) {
      await settleAfterRestore(ctx, tailer, imagesDir);
      throw err;
    }
    const restoredPid = res.pid;
    const restoredAt = Date.now();
    // Awaited before the job completes (its log before its result); meanwhile the restored process is recorded.
    const settled = Promise.all([settleAfterRestore(ctx, tailer, imagesDir), res.warning && reporter.note(`CRIU warning: ${res.warning}`)]);
    settled.catch(() => undefined);
    // Done when CRIU says so; whether the process then keeps running is reported on its own (restore.exited).
    const restoredStat = await readProcStat(restoredPid);
    const startTime = restoredStat?.startTime ?? -1;
    ctx.exits.expect(job.id!, { pid: restoredPid, startTime, restoredAt });
    if (!tree.namespaceInit) {
      // Best effort: the process is back either way; without the record a later replace does not recognise it.
      await recordRestored(ctx, checkpoint, { pid: restoredPid, startTime }).catch((err: Error) =>
        reporter.note(`could not record restored pid ${restoredPid} (a later --replace will not recognise it): ${err.message}`),
      );
    }
    const [stats] = await Promise.all([readRestoreStats(imagesDir), settled]);
    reporter.progress({ stage: 'done', percent: 100 });
    restored = true;
    return { checkpointId: checkpoint.id, restoredPid, stats: { ...stats }, durationMs: Date.now() - started };
  } finally {
    await slot?.release();
    if (restored) await ctx.catalog.releaseRef(checkpoint.id, job.id!);
  }
}

/** One of the batch's places, waiting for one up to busyWaitMs; null when none came free. */
async function takeBatchSlot(batch: NonNullable<RestoreJobData['batch']>, jobId: string, run: JobRun, ctx: WorkerContext): Promise<Lease | null> {
  const slots = new LeaseSemaphore(ctx.redis, {
    key: ctx.keys.batchSlots(batch.id),
    capacity: batch.concurrency,
    leaseMs: ctx.config.worker.targetLeaseMs,
  });
  run.reporter.progress({ stage: 'waiting-batch-slot' });
  const got = await slots.acquire(jobId, { waitMs: ctx.config.worker.busyWaitMs, signal: run.signal });
  return got.lease;
}
