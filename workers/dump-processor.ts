import { readFile, stat, statfs } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Job } from 'bullmq';
import type { Attempt } from '../src/catalog/checkpoint-store.js';
import { CatalogError } from '../src/catalog/errors.js';
import { DUMP_LOG_FILE as DUMP_LOG } from '../src/catalog/checkpoint-log.js';
import type { Manifest } from '../src/catalog/manifest.js';
import { CriuError } from '../src/criu/errors.js';
import { jobCriuOptions } from '../src/criu/options.js';
import { missingFromDump, readDumpStats } from '../src/criu/stats.js';
import { signJobData } from '../src/queue/job-signature.js';
import type { JobResult } from '../src/queue/job-view.js';
import { LeaseSemaphore } from '../src/queue/lease-semaphore.js';
import type { DumpJobData, AttemptTarget } from '../src/queue/schemas.js';
import { TargetError } from '../src/targets/errors.js';
import { readProcStat } from '../src/common/proc.js';
import { resolveTarget } from '../src/targets/resolve.js';
import { uploadStage } from './remote-copy.js';
import { BoundedCriuLog, keepLogOfUnfinishedAttempt } from './bounded-criu-log.js';
import { networkLockFor } from './network-lock.js';
import { FinalJobError, reasonOf, RetryableJobError, runsAgain } from './failure.js';
import { bootTimeMs, waitUntraced } from '../src/common/proc.js';
import { dumpPercent, PageBytesSampler, treeDumpBytes } from './progress-sampler.js';
import type { JobRun, WorkerContext } from './worker-context.js';

/**
 * One attempt of a dump job, as a pipeline of steps (each below, in this order):
 * 1. recoverEarlierAttempt: what an earlier attempt of this job left (its worker died) is adopted when CRIU had
 *    finished it, else removed;
 * 2. resolveChecked: the target resolved and checked against the policy; then at once, all before CRIU writes anything:
 *    recordTarget (the target recorded in the job, so step 1 of a later attempt knows where to look), prepareAttempt
 *    (a fresh attempt folder, disposable: removed unless a dump is committed from it; a dump that would leave less
 *    than storage.minFreeBytes free fails here, ESTORAGE_FULL) and withTargetLock (one dump of a target at a time,
 *    skip or wait per ifBusy, and no CRIU of a dead worker still holding it);
 * 3. dumpInto: CRIU dumps into it, its log and the bytes written followed live;
 * 4. commitAndAnnounce: the folder committed (manifest, 0700/0600, atomic rename), added to the catalog,
 *    checkpoint.created announced, then uploaded to the bucket when one is configured (remote-copy.ts' uploadStage).
 * A failure of any step ends the attempt; its fate (retry, final, hand back) is failure.ts' classifyFailure.
 */
export async function processDump(job: Job<DumpJobData>, run: JobRun, ctx: WorkerContext): Promise<JobResult> {
  const started = Date.now();
  const recovered = await recoverEarlierAttempt(job, run, ctx);
  if (recovered) return recovered;
  const target = await resolveChecked(job, run, ctx, started);
  // Independent of each other and of the target's lock, so started together; CRIU waits for all three.
  const recorded = recordTarget(job, target, ctx);
  const preparing = prepareAttempt(job, target, ctx);
  // Awaited below, or settled in `finally`: never an unhandled rejection while the lock is awaited.
  recorded.catch(() => undefined);
  preparing.catch(() => undefined);
  let dumping = false;
  try {
    return await withTargetLock(job, target, run, ctx, async () => {
      await recorded;
      const attempt = await preparing;
      dumping = true;
      const dumped = await dumpInto(attempt, job, target, run, ctx);
      const result = await commitAndAnnounce(job, target, attempt.dir, dumped.dumpMs, run, ctx, {
        adopted: false,
        announceAfter: dumped.logDelivered,
      });
      return { ...result, commitMs: Date.now() - dumped.repliedAt };
    });
  } finally {
    // Skipped, busy, or not recorded: the folder made for CRIU goes (from dumpInto on, the folder is its to keep or remove).
    if (!dumping) await Promise.allSettled([recorded, preparing.then((attempt) => ctx.store.discard(attempt.dir))]);
  }
}

/**
 * Step 1. Finishes what an earlier attempt of this job left (only one that got as far as recording its target can
 * have left a folder): a committed checkpoint missing from the catalog is added; an attempt folder CRIU finished
 * (stats-dump written, which CRIU does only after a successful dump) is committed; an unfinished one is removed, once
 * no CRIU (the dead worker's) holds the target any more.
 */
async function recoverEarlierAttempt(job: Job<DumpJobData>, run: JobRun, ctx: WorkerContext): Promise<JobResult | null> {
  const earlier = job.data.resolved;
  if (!earlier) return null;
  const id = job.data.checkpointId;
  // In the bucket only: an earlier attempt uploaded it and dropped the local copy (storage.keepLocal false).
  const committed = (await ctx.store.readManifest(earlier.key, id)) ?? (await uploadedOnly(id, ctx));
  if (committed) {
    await run.reporter.note(`checkpoint ${id} was committed by an earlier attempt: adopting it`);
    await catalogue(committed, run, ctx, { mayBeKnown: true });
    await shipStage(committed, job, run, ctx);
    return resultOf(committed, true);
  }
  const found = await ctx.store.findAttempt(earlier.key, id, { jobId: job.id! });
  if (!found) return null;
  // The dead worker's CRIU may still be writing into the folder: it finishes or gives up (and thaws the target) first.
  await untracedOrBusy(earlier.pid, run, ctx);
  if (await criuFinished(found.dir, job.data, ctx)) {
    const finishedAt = (await stat(path.join(found.dir, 'stats-dump'))).mtimeMs;
    // Written before this boot: what the kernel had not written out when the machine went down is gone.
    const beforeRestart = finishedAt < bootTimeMs();
    const lost = beforeRestart ? await missingFromDump(found.dir) : null;
    if (!lost) {
      const checked = beforeRestart ? ' before the machine restarted, and its images are all there' : '';
      await run.reporter.note(`an earlier attempt's dump of checkpoint ${id} had finished${checked}: adopting it`);
      return commitAndAnnounce(job, earlier, found.dir, Math.max(0, finishedAt - earlier.attemptStartedAt), run, ctx, { adopted: true });
    }
    await run.reporter.note(`an earlier attempt's dump of checkpoint ${id} had finished, but the machine restarted before it reached the disk whole (${lost}): discarding it`);
  } else {
    await run.reporter.note(`an earlier attempt of checkpoint ${id} did not finish: discarding it`);
  }
  await keepLogOfUnfinishedAttempt(path.join(found.dir, DUMP_LOG), run.reporter);
  await ctx.store.discard(found.dir);
  return null;
}

/** Step 2. The target as it is now, checked against the policy. */
async function resolveChecked(job: Job<DumpJobData>, run: JobRun, ctx: WorkerContext, attemptStartedAt: number): Promise<AttemptTarget> {
  run.reporter.progress({ stage: 'resolving' });
  const info = await resolveTarget(job.data.target, { workloads: ctx.workloads, exclude: ctx.policy.ownPids() });
  const earlier = job.data.resolved;
  // A pid names one process: the one an earlier attempt found. Reused since (a retry after a restart, or later),
  // it is someone else's process, which a dump (that may stop it) must not touch. Other targets are looked up anew.
  if (earlier && 'pid' in job.data.target && !isSameProcessAs(earlier, info)) {
    throw new TargetError(
      'ETARGET_GONE',
      `pid ${info.pid} is another process (${info.exe}) than the one an earlier attempt of this job found (${earlier.exe}, ` +
        `${earlier.attemptStartedAt < bootTimeMs() ? 'before the machine restarted' : `start time ${earlier.startTime}`}): that one is gone, and this one is left alone`,
    );
  }
  await ctx.policy.check(info);
  return {
    key: info.targetKey,
    pid: info.pid,
    cmdline: info.cmdline,
    exe: info.exe,
    uid: info.uid,
    startTime: info.startTime,
    ...(info.workload && { workload: info.workload }),
    attemptStartedAt,
  };
}

/** Whether `now` is the process `earlier` resolved: same pid and start time, in this boot (start times count from it). */
function isSameProcessAs(earlier: AttemptTarget, now: { pid: number; startTime: number }): boolean {
  return earlier.pid === now.pid && earlier.startTime === now.startTime && earlier.attemptStartedAt >= bootTimeMs();
}

/** Step 2. The target recorded in the job (signed like the rest of the data, or the next attempt would refuse its own job). */
async function recordTarget(job: Job<DumpJobData>, resolved: AttemptTarget, ctx: WorkerContext): Promise<void> {
  await job.updateData(signJobData(ctx.signer, { type: 'dump', jobId: job.id!, node: ctx.node }, { ...job.data, resolved }));
}

/**
 * Step 2. Runs `work` holding the target's lock: one dump of a target at a time on a node. A busy target is skipped
 * (ifBusy `skip`: a completed job with `skipped`) or waited for up to busyWaitMs, then retried (ETARGET_BUSY).
 */
async function withTargetLock(
  job: Job<DumpJobData>,
  target: AttemptTarget,
  run: JobRun,
  ctx: WorkerContext,
  work: () => Promise<JobResult>,
): Promise<JobResult> {
  const cfg = ctx.config.worker;
  const lock = new LeaseSemaphore(ctx.redis, { key: ctx.keys.targetLock(ctx.node, target.key), leaseMs: cfg.targetLeaseMs });
  const skip = job.data.ifBusy === 'skip';
  let got = await lock.acquire(job.id!, { signal: run.signal });
  if (!got.lease && !skip) {
    run.reporter.progress({ stage: 'waiting-target' });
    got = await lock.acquire(job.id!, { waitMs: cfg.busyWaitMs, signal: run.signal });
  }
  if (!got.lease) {
    const reason = `another dump of ${target.key} is running (job ${got.holders.join(', ')})`;
    if (!skip) throw new RetryableJobError('ETARGET_BUSY', `${reason}; waited ${cfg.busyWaitMs} ms`);
    await run.reporter.note(`skipped: ${reason}`);
    return { skipped: true, reason, durationMs: Date.now() - target.attemptStartedAt };
  }
  const lease = got.lease;
  try {
    // A CRIU of a worker that died may still hold the target: let it finish (it thaws the target when it does).
    await untracedOrBusy(target.pid, run, ctx);
    return await work();
  } finally {
    await lease.release();
  }
}

/** Waits until no tracer holds `pid`; a tracer still there after busyWaitMs makes the attempt retry (ETARGET_BUSY). */
async function untracedOrBusy(pid: number, run: JobRun, ctx: WorkerContext): Promise<void> {
  const waitMs = ctx.config.worker.busyWaitMs;
  const tracer = await waitUntraced(pid, waitMs, run.signal);
  if (tracer) throw new RetryableJobError('ETARGET_BUSY', `pid ${pid} is traced by pid ${tracer}; waited ${waitMs} ms`);
}

interface PreparedAttempt {
  /** The attempt folder CRIU writes into. */
  dir: string;
  /** What CRIU will write, for the progress percentage. */
  bytesExpected: number;
}

/**
 * Step 2. The attempt folder on disk, and the target's memory from /proc (independent); then room for the dump checked
 * (ESTORAGE_FULL, the folder removed again) before CRIU runs.
 */
async function prepareAttempt(job: Job<DumpJobData>, target: AttemptTarget, ctx: WorkerContext): Promise<PreparedAttempt> {
  const { checkpointId } = job.data;
  const begin = async () => {
    try {
      return await ctx.store.beginAttempt(target.key, checkpointId, { jobId: job.id! });
    } catch (err) {
      if (!(err instanceof CatalogError && err.code === 'EATTEMPT_EXISTS')) throw err;
      // Left by an attempt of this job whose worker died before it had recorded its target, so before CRIU ran:
      // an empty folder, nothing to adopt.
      const found = await ctx.store.findAttempt(target.key, checkpointId, { jobId: job.id! });
      if (found) await ctx.store.discard(found.dir);
      return ctx.store.beginAttempt(target.key, checkpointId, { jobId: job.id! });
    }
  };
  const [attempt, bytesExpected] = await Promise.all([begin(), treeDumpBytes(target.pid)]);
  await ensureRoom(bytesExpected, target, ctx).catch(async (err: unknown) => {
    await ctx.store.discard(attempt.dir);
    throw err;
  });
  return { dir: attempt.dir, bytesExpected };
}

interface DumpOutcome {
  /** CRIU's dump alone. */
  dumpMs: number;
  repliedAt: number;
  /** Settles once CRIU's last log lines have gone out. */
  logDelivered: Promise<unknown>;
}

/**
 * Step 3. CRIU dumps the target into the attempt folder, its log lines and written bytes reported as they come. A
 * failed dump removes the folder (after the aborted CRIU let the target go) and says why.
 */
async function dumpInto(
  { dir, bytesExpected }: PreparedAttempt,
  job: Job<DumpJobData>,
  target: AttemptTarget,
  run: JobRun,
  ctx: WorkerContext,
): Promise<DumpOutcome> {
  const { reporter } = run;
  reporter.progress({ stage: 'dumping', bytesExpected });
  const log = new BoundedCriuLog({ file: path.join(dir, DUMP_LOG), reporter, tailLines: ctx.config.worker.logTailLines });
  const sampler = new PageBytesSampler({
    imagesDir: dir,
    intervalMs: ctx.config.worker.progressIntervalMs,
    onSample: (bytesWritten) => reporter.progress({ bytesWritten, percent: dumpPercent(bytesWritten, bytesExpected) }),
  });
  log.start();
  sampler.start();
  const dumpStarted = Date.now();
  /** CRIU's warning, noted in the job's log off the commit's way (it goes out before the last log lines). */
  let warned: Promise<void> | undefined;
  try {
    const res = await ctx.criu.dump(
      { pid: target.pid, imagesDir: dir, ...dumpRequestCriuOptions(job.data, ctx) },
      {
        signal: run.signal,
        timeoutMs: ctx.config.criu.timeoutMs,
        notify: { onStage: (e) => reporter.progress({ stage: e.stage }) },
      },
    );
    warned = res.warning ? reporter.note(`CRIU warning: ${res.warning}`) : undefined;
  } catch (err) {
    // The folder goes, the whole log with it: the job log keeps the log's end first.
    await Promise.all([log.finishFailed(), sampler.stop()]);
    // The aborted CRIU (shutdown) thaws the target when it notices; wait for that before handing the job on.
    await waitUntraced(target.pid, ctx.config.worker.busyWaitMs).catch(() => undefined);
    await ctx.store.discard(dir);
    throw await explainDumpFailure(err, target);
  }
  const repliedAt = Date.now();
  // CRIU has finished: its last log lines go out while the folder is committed (both only read it);
  // checkpoint.created waits for them, so the feed shows the whole log before the result.
  const logDelivered = Promise.all([warned, log.finish(job.data.checkpointId), sampler.stop()]);
  logDelivered.catch(() => undefined);
  reporter.progress({ stage: 'committing', percent: 99 });
  return { dumpMs: repliedAt - dumpStarted, repliedAt, logDelivered };
}

/**
 * Refuses (FinalJobError ESTORAGE_FULL, before CRIU runs) a dump whose expected size, the target's memory, would leave
 * less free space in the storage root than `storage.minFreeBytes`: a full disk fails the dump late and starves the rest.
 */
async function ensureRoom(bytesExpected: number, target: AttemptTarget, ctx: WorkerContext): Promise<void> {
  const { minFreeBytes, root } = ctx.config.storage;
  const fs = await statfs(root);
  const freeBytes = fs.bavail * fs.bsize;
  if (freeBytes - bytesExpected >= minFreeBytes) return;
  throw new FinalJobError(
    `not enough free space for a dump of ${target.key}: it needs about ${bytesExpected} bytes, ${root} has ${freeBytes} free, ` +
      `which would leave less than storage.minFreeBytes (${minFreeBytes})`,
    'ESTORAGE_FULL',
  );
}

/**
 * CRIU says ESRCH both when the target died during the dump and when something else (a debugger, another CRIU)
 * got in its way: only the first is final. The target is the same process if its pid has the same start time.
 */
async function explainDumpFailure(err: unknown, target: AttemptTarget): Promise<unknown> {
  if (!(err instanceof CriuError) || err.errnoName !== 'ESRCH') return err;
  const now = await readProcStat(target.pid);
  if (!now || now.state === 'Z' || now.startTime !== target.startTime) {
    return new TargetError('ETARGET_GONE', `pid ${target.pid} exited during the dump (${err.message})`);
  }
  return new RetryableJobError('ETARGET_BUSY', `pid ${target.pid} is alive but CRIU could not hold it: ${reasonOf(err)}`);
}

/** The CRIU options of a dump: the job's allow-listed ones, plus what ckpt decides (log file, defaults from config). */
function dumpRequestCriuOptions(data: DumpJobData, ctx: WorkerContext) {
  return {
    ...jobCriuOptions('dump', data.criu),
    logLevel: data.criu?.logLevel ?? ctx.config.criu.logLevel,
    networkLock: networkLockFor(data.criu, ctx.config),
    logFile: DUMP_LOG,
    leaveRunning: data.leaveRunning,
  };
}

/** The checkpoint as the catalog lists it when the bucket holds its only copy, else null. */
async function uploadedOnly(id: string, ctx: WorkerContext): Promise<Manifest | null> {
  const listed = await ctx.catalog.get(id).catch((err: unknown) => {
    if (err instanceof CatalogError && err.code === 'ECHECKPOINT_NOT_FOUND') return null;
    throw err;
  });
  if (listed?.location !== 'remote') return null;
  const { pinned: _p, location: _l, verified: _v, ...manifest } = listed;
  return manifest;
}

/** CRIU writes stats-dump only after a successful dump; at log level >= 3 its log also says so. */
async function criuFinished(dir: string, data: DumpJobData, ctx: WorkerContext): Promise<boolean> {
  if (!(await stat(path.join(dir, 'stats-dump')).catch(() => null))) return false;
  const level = data.criu?.logLevel ?? ctx.config.criu.logLevel;
  if (level < 3) return true;
  const log = await readFile(path.join(dir, DUMP_LOG), 'utf8').catch(() => '');
  return log.includes('Dumping finished successfully');
}

/**
 * Step 4. Commits a finished dump folder (CheckpointStore.commit measures and secures it) and adds it to the catalog.
 * checkpoint.created is published once `announceAfter` (the last log lines) has settled; if that failed, the job
 * fails with it and its retry adopts the committed checkpoint.
 */
async function commitAndAnnounce(
  job: Job<DumpJobData>,
  target: AttemptTarget,
  dir: string,
  durationMs: number,
  run: JobRun,
  ctx: WorkerContext,
  options: { adopted: boolean; announceAfter?: Promise<unknown> },
): Promise<JobResult> {
  const { attemptStartedAt: _, ...manifestTarget } = target;
  // CRIU's statistics are read while the store seals the folder.
  const draft = Promise.all([readDumpStats(dir), ctx.criuVersion()]).then(([stats, criuVersion]) => ({
    id: job.data.checkpointId,
    created: new Date().toISOString(),
    node: ctx.node,
    target: manifestTarget,
    criuVersion,
    options: dumpRequestCriuOptions(job.data, ctx),
    leaveRunning: job.data.leaveRunning,
    stats: { ...stats },
    durationMs,
    jobId: job.id!,
    ...(job.data.scheduleId !== undefined && { scheduleId: job.data.scheduleId }),
  }));
  const manifest = await ctx.store.commit(dir, draft).catch(async (err: unknown) => {
    // The commit's error is the attempt's, whatever becomes of the folder.
    await keepOrDropUncommitted(err, job, dir, run, ctx).catch(() => undefined);
    throw err;
  });
  await catalogue(manifest, run, ctx, { mayBeKnown: options.adopted, announceAfter: options.announceAfter });
  await shipStage(manifest, job, run, ctx);
  run.reporter.progress({ stage: 'done', bytesWritten: manifest.bytes, percent: 100 });
  return resultOf(manifest, options.adopted);
}

/**
 * After a commit that failed: the dumped folder stays for the job's next attempt, which commits it (step 1); with no
 * attempt to come, it goes now (it holds the target's memory, and nothing would ever commit or sweep it while this
 * worker runs). The job log says which, after its pointer to the whole log, which only a commit makes true.
 */
async function keepOrDropUncommitted(err: unknown, job: Job<DumpJobData>, dir: string, run: JobRun, ctx: WorkerContext): Promise<void> {
  const id = job.data.checkpointId;
  if (runsAgain(err, run.signal.reason, job)) {
    await run.reporter.note(`checkpoint ${id} was not committed (${reasonOf(err)}): its dump is kept for the next attempt to commit`);
    return;
  }
  const removed = await ctx.store.discard(dir).then(
    () => 'its dump is removed, the whole log with it',
    (e: unknown) => `its dump could not be removed either (${reasonOf(e)}): ${dir}`,
  );
  await run.reporter.note(`checkpoint ${id} was not committed (${reasonOf(err)}): ${removed}`);
}

/**
 * Step 4, its end. Uploads the checkpoint (storage.remote). A migration's dump moves it: this node's copy goes once the bucket
 * has it, whatever storage.keepLocal says (the process will run on toNode, not here), and the checkpoint is held in use
 * for the migration (its job on toNode) until restored there, so retention cannot remove it in between.
 */
async function shipStage(manifest: Manifest, job: Job<DumpJobData>, run: JobRun, ctx: WorkerContext): Promise<void> {
  const { migration } = job.data;
  await uploadStage(manifest, run, ctx, { keepLocal: ctx.config.storage.keepLocal && !migration });
  if (migration) await ctx.catalog.acquireRef(manifest.id, migration.id);
}

/**
 * Adds the checkpoint to the catalog and announces it, unless an earlier attempt did both already
 * (`mayBeKnown`: a checkpoint this attempt did not make itself).
 */
async function catalogue(
  manifest: Manifest,
  run: JobRun,
  ctx: WorkerContext,
  options: { mayBeKnown: boolean; announceAfter?: Promise<unknown> },
): Promise<void> {
  const known = options.mayBeKnown && (await ctx.catalog.get(manifest.id).then(
    () => true,
    (err: unknown) => {
      if (err instanceof CatalogError && err.code === 'ECHECKPOINT_NOT_FOUND') return false;
      throw err;
    },
  ));
  if (known) return;
  const [, delivered] = await Promise.all([ctx.catalog.add(manifest), settled(options.announceAfter)]);
  await run.reporter.publish('checkpoint.created', {
    checkpointId: manifest.id,
    node: manifest.node,
    host: os.hostname(),
    pid: manifest.target.pid,
    bytes: manifest.bytes,
    durationMs: manifest.durationMs,
  });
  // Announced all the same: the checkpoint is made, and the retry that adopts it will not announce it again.
  if (delivered.status === 'rejected') throw delivered.reason;
}

function settled(promise: Promise<unknown> | undefined): Promise<PromiseSettledResult<unknown>> {
  return Promise.allSettled([promise]).then(([result]) => result!);
}

function resultOf(manifest: Manifest, adopted: boolean): JobResult {
  return {
    checkpointId: manifest.id,
    stats: manifest.stats,
    bytes: manifest.bytes,
    durationMs: manifest.durationMs,
    ...(adopted && { adopted: true }),
  };
}
