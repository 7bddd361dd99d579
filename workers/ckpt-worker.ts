import { Job, WaitingError, Worker } from 'bullmq';
import type { JobType } from '../src/common/job-kinds.js';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Catalog } from '../src/catalog/catalog.js';
import type { CheckpointStore } from '../src/catalog/checkpoint-store.js';
import type { RemoteStore } from '../src/storage/remote-store.js';
import type { Config } from '../src/config/schema.js';
import { CriuClient } from '../src/criu/client.js';
import { locateCriu } from '../src/criu/locate.js';
import type { EventLog } from '../src/events/event-log.js';
import type { EventInput } from '../src/events/types.js';
import { logJobTransition } from '../src/observability/job-log.js';
import { backoffDelay } from '../src/queue/backoff.js';
import { JobRefusedError, openJobData } from '../src/queue/job-signature.js';
import type { JobResult } from '../src/queue/job-view.js';
import { queueKeys, queueNameFor } from '../src/queue/keys.js';
import { WorkerPresence } from '../src/queue/worker-presence.js';
import { createRedis, type RedisConnection } from '../src/queue/redis.js';
import { waitingEventOf, waitingOnce } from '../src/queue/job-waiting.js';
import type { BatchRestoreJobData, DumpJobData, JobData, MigrateJobData, RestoreJobData, VerifyJobData } from '../src/queue/schemas.js';
import type { Signer } from '../src/security/signer.js';
import type { TargetPolicy } from '../src/targets/policy.js';
import { WorkloadRegistry } from '../src/workloads/registry.js';
import { WorkloadWatcher } from '../src/workloads/watcher.js';
import { Workloads } from '../src/workloads/workloads.js';
import { processBatch } from './batch-processor.js';
import { processDrill } from './drill-processor.js';
import { processDump } from './dump-processor.js';
import { processMigration } from './migrate-processor.js';
import { ExitWatcher } from './exit-watcher.js';
import { classifyFailure, codeOf, FinalJobError, isLastFailure, withDetails } from './failure.js';
import { jobEvent, JobReporter, targetText } from './job-reporter.js';
import { processRestore } from './restore-processor.js';
import { CancelAbort, ShutdownAbort, type JobRun, type WorkerContext } from './worker-context.js';

export interface CkptWorkerOptions {
  config: Config;
  eventLog: EventLog;
  /** The `criu service` socket. */
  criuSocket: string;
  catalog: Catalog;
  store: CheckpointStore;
  /** The bucket (config storage.remote), when there is one. Default: none (checkpoints stay on this node's disk). */
  remote?: RemoteStore;
  policy: TargetPolicy;
  /** The deployment's key (security.jobKeyFile): a job whose signature does not verify with it is refused. */
  signer: Signer;
  /** Redis for BullMQ and the worker's locks. Default: config.redis. */
  connection?: RedisConnection;
  /** Errors that belong to no job (Redis connection trouble, an event that could not be published). Default: ignored. */
  onError?: (err: Error) => void;
  /**
   * Service log: one line per job transition (started, retrying, completed, failed, stalled), and each refused job as a
   * security event. Default: none.
   */
  log?: Logger;
}

/** Attempt folders whose owner died are removed at start when older than this (younger ones may still be adopted by a retry). */
const STALE_ATTEMPT_MS = 60 * 60 * 1000;

/** After aborting jobs at the end of the grace period, how long close() waits before cutting Redis connections. */
const CLOSE_AFTER_ABORT_MS = 10_000;

/**
 * The worker of one node: takes jobs from that node's queue only (config.node), `config.worker.concurrency` at a time,
 * and runs the dump, restore and batch processors. Failed attempts are retried with ckpt's backoff (exponential, with
 * jitter) unless retrying cannot help. Publishes job.active / completed / failed / retrying / stalled (progress, log
 * and checkpoint.created come from the processors). close() stops taking jobs and lets running ones finish for
 * shutdownGraceMs, then aborts them (CRIU releases the target) and hands them back to the queue.
 */
export class CkptWorker {
  private readonly bullRedis: Redis;
  private readonly redis: Redis;
  /** Subscribed to cancel requests and copy drops (a subscribed connection can do nothing else). */
  private readonly cancels: Redis;
  private readonly ctx: WorkerContext;
  private readonly active = new Map<string, AbortController>();
  private worker?: Worker;
  private events: Promise<void> = Promise.resolve();
  /** The running removal of deleted checkpoints' files (dropDeletedFiles): one at a time. */
  private drops: Promise<void> = Promise.resolve();
  private closing?: Promise<void>;
  private versionText?: Promise<string>;
  private readonly watcher: WorkloadWatcher;
  private readonly presence: WorkerPresence;
  private criuBinPath?: Promise<string>;

  constructor(private readonly options: CkptWorkerOptions) {
    const { config } = options;
    const connection = options.connection ?? config.redis;
    this.bullRedis = createRedis(connection, { mode: 'wait' });
    this.redis = createRedis(connection, { mode: 'wait' });
    // Reconnecting is ioredis' job; without listeners its errors would be unhandled.
    this.cancels = createRedis(connection);
    for (const r of [this.bullRedis, this.redis, this.cancels]) r.on('error', (err: Error) => this.reportError(err));
    const workloadRegistry = new WorkloadRegistry(this.redis, config.redis.prefix);
    this.presence = new WorkerPresence({ redis: this.redis, key: queueKeys(config.redis.prefix).workers, node: config.node, ttlMs: config.worker.presenceTtlMs });
    this.watcher = new WorkloadWatcher({
      registry: workloadRegistry,
      eventLog: options.eventLog,
      node: config.node,
      intervalMs: config.workloads.watchIntervalMs,
      onError: (err) => this.reportError(err),
    });
    this.ctx = {
      config,
      node: config.node,
      criu: new CriuClient({ socketPath: options.criuSocket, timeoutMs: config.criu.timeoutMs }),
      criuVersion: () => this.criuVersion(),
      criuBin: () => (this.criuBinPath ??= locateCriu(config.criu.bin, config.criu.env).then((c) => c.bin)),
      catalog: options.catalog,
      store: options.store,
      ...(options.remote && { remote: options.remote }),
      policy: options.policy,
      workloads: new Workloads({
        registry: workloadRegistry,
        eventLog: options.eventLog,
        node: config.node,
        root: config.workloads.root,
        stopGraceMs: config.workloads.stopGraceMs,
      }),
      signer: options.signer,
      redis: this.redis,
      keys: queueKeys(config.redis.prefix),
      exits: new ExitWatcher({ watchMs: config.worker.exitWatchMs }),
    };
  }

  get node(): string {
    return this.ctx.node;
  }

  /** Starts taking jobs. Finishes first what a crashed worker of this node left behind (stale folders, deletes). */
  async start(): Promise<void> {
    const { config } = this.options;
    await this.redis.sadd(this.ctx.keys.nodes, config.node);
    await this.options.store.sweepStale(STALE_ATTEMPT_MS).catch((err: Error) => this.reportError(err));
    await this.dropDeletedFiles();
    const { dropChannel } = this.options.catalog;
    this.cancels.on('message', (channel: string, message: string) => {
      if (channel === dropChannel) {
        if (message === config.node) void this.dropDeletedFiles();
        return;
      }
      this.active.get(message)?.abort(new CancelAbort());
    });
    await this.cancels.subscribe(this.ctx.keys.cancelChannel, dropChannel);
    const w = config.worker;
    const worker = new Worker(queueNameFor(config.node), (job, token) => this.process(job, token), {
      connection: this.bullRedis,
      prefix: config.redis.prefix,
      concurrency: w.concurrency,
      lockDuration: w.lockDurationMs,
      stalledInterval: w.stalledIntervalMs,
      maxStalledCount: w.maxStalledCount,
      autorun: false,
      settings: { backoffStrategy: (attemptsMade: number) => backoffDelay(attemptsMade, w.backoff) },
    });
    worker.on('error', (err) => this.reportError(err));
    worker.on('completed', (job, result: JobResult) => {
      this.emit(job, jobEvent(job, 'job.completed', { result, attemptsMade: job.attemptsMade, node: this.node }));
      // Started only now, so a restored process's exit is always published after its job's completion.
      this.ctx.exits.start(job.id!, (afterMs) =>
        this.emit(
          job,
          jobEvent(job, 'restore.exited', { checkpointId: (job.data as RestoreJobData).checkpointId, jobId: job.id, pid: result.restoredPid, afterMs }),
        ),
      );
    });
    worker.on('failed', (job, err) => {
      if (!job) return;
      this.ctx.exits.forget(job.id!);
      this.emitFailed(job, err);
    });
    // A job whose worker died, found by this worker's stalled check and moved back to wait (or failed past maxStalledCount).
    worker.on('stalled', (jobId) => {
      this.events = this.events
        .then(async () => {
          const job = await Job.fromId(worker, jobId);
          if (!job) return;
          const stalled = jobEvent(job, 'job.stalled', { node: this.node, attemptsMade: job.attemptsMade });
          this.logTransition(job, stalled);
          await this.options.eventLog.publish(stalled);
        })
        .catch((err: Error) => this.reportError(err));
    });
    this.worker = worker;
    this.watcher.start();
    void worker.run().catch((err: Error) => this.reportError(err));
    await worker.waitUntilReady();
    // Announced only now that jobs are taken: a job the API accepts for this node has a worker.
    await this.presence.start((err) => this.reportError(err));
  }

  /** Stops taking jobs; running ones get shutdownGraceMs to finish, then are aborted and handed back. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const grace = this.options.config.worker.shutdownGraceMs;
      const abortTimer = setTimeout(() => {
        for (const controller of this.active.values()) controller.abort(new ShutdownAbort());
      }, grace);
      // With Redis gone, BullMQ's close waits for it forever: past the grace (and time for aborted jobs to hand
      // themselves back) the connections are cut, which fails whatever still waits.
      const cutTimer = setTimeout(() => {
        this.redis.disconnect();
        this.bullRedis.disconnect();
      }, grace + CLOSE_AFTER_ABORT_MS);
      // Withdrawn first: from now on the API refuses new jobs for this node unless another worker serves it.
      const withdrawn = this.presence.stop().catch((err: Error) => this.reportError(err));
      try {
        await this.watcher.stop();
        await this.worker?.close();
        this.ctx.exits.close();
        await this.events;
        await this.drops;
        await withdrawn;
      } finally {
        clearTimeout(abortTimer);
        clearTimeout(cutTimer);
      }
      this.redis.disconnect();
      this.bullRedis.disconnect();
      this.cancels.disconnect();
    })();
    return this.closing;
  }

  private async process(job: Job, token: string | undefined): Promise<JobResult> {
    this.admit(job);
    const controller = new AbortController();
    this.active.set(job.id!, controller);
    const w = this.options.config.worker;
    const reporter = new JobReporter({
      job,
      eventLog: this.options.eventLog,
      maxLinesPerEvent: w.logLinesPerEvent,
      progressIntervalMs: w.progressIntervalMs,
    });
    const run = { token: token ?? '', reporter, signal: controller.signal };
    const attempt = job.attemptsMade + 1;
    // Cancelled while no worker held it (handed back, stalled): the cancel message went by unheard.
    if (await this.redis.exists(this.ctx.keys.cancelMark(job.id!))) controller.abort(new CancelAbort());
    // Not waited for before the work starts: each goes out on its connection ahead of anything the processor
    // writes there, so the feed and the job log still begin with them.
    const active = jobEvent(job, 'job.active', { node: this.node, attempt, workerPid: process.pid });
    this.logTransition(job, active);
    // At the job's first start its job.waiting goes first, unless the enqueuer has published it (job-waiting.ts).
    const firstStart = job.attemptsStarted <= 1 && job.attemptsMade === 0;
    const announced = Promise.all([
      firstStart
        ? this.options.eventLog.publishAll([waitingEventOf(job.name as JobType, job.id!, job.data as JobData), active], [waitingOnce(job.id!, 'worker')])
        : this.options.eventLog.publish(active),
      reporter.note(`--- attempt ${attempt} on node ${this.node} (worker pid ${process.pid}) ---`),
    ]);
    announced.catch(() => undefined);
    try {
      const result = await this.runProcessor(job, run);
      await announced;
      return result;
    } catch (err) {
      const failure = classifyFailure(err, controller.signal.reason, job.id!);
      switch (failure.fate) {
        case 'moved':
          throw err;
        case 'hand-back':
          // Shutdown: not the job's fault. Back to wait without using an attempt; another worker (or this one, restarted) runs it.
          await reporter.note(`attempt ${attempt} handed back: the worker is shutting down`);
          await job.moveToWait(token);
          throw new WaitingError();
        case 'final':
          await reporter.note(failure.code === 'ECANCELLED' ? `attempt ${attempt} cancelled by an operator` : `attempt ${attempt} failed: ${failure.reason}`);
          throw withDetails(new FinalJobError(failure.reason, failure.code), failure.details);
        case 'retry':
          await reporter.note(`attempt ${attempt} failed: ${failure.reason}`);
          throw withDetails(Object.assign(new Error(failure.reason), { code: failure.code }), failure.details);
      }
    } finally {
      await reporter.flush();
      this.active.delete(job.id!);
    }
  }

  /**
   * Before anything else: the job's data must carry ckpt's signature for this job on this node and pass its type's
   * schema (then it is what the processors see). A job that does not is failed at once (not retried), logged as a
   * security event and announced as job.refused; its data, someone else's, is used for nothing, not even events.
   */
  private admit(job: Job): void {
    try {
      job.data = openJobData(this.options.signer, { type: job.name, jobId: job.id!, node: this.node }, job.data);
    } catch (err) {
      if (!(err instanceof JobRefusedError)) throw err;
      job.data = {};
      const { code, fields, message: reason } = err;
      this.options.log?.warn({ security: 'job.refused', jobId: job.id, jobType: job.name, node: this.node, code, fields, reason }, reason);
      this.emit(job, jobEvent(job, 'job.refused', { reason, code, fields, node: this.node }));
      throw new FinalJobError(reason, code);
    }
  }

  private runProcessor(job: Job, run: JobRun): Promise<JobResult> {
    switch (job.name) {
      case 'dump':
        return processDump(job as Job<DumpJobData>, run, this.ctx);
      case 'restore':
        return processRestore(job as Job<RestoreJobData>, run, this.ctx);
      case 'restore-batch':
        return processBatch(job as Job<BatchRestoreJobData>, run);
      case 'verify':
        return processDrill(job as Job<VerifyJobData>, run, this.ctx);
      case 'migrate':
        return processMigration(job as Job<MigrateJobData>, run, this.ctx);
      default:
        throw new FinalJobError(`unknown job type ${JSON.stringify(job.name)}`, 'EJOBTYPE');
    }
  }

  private emitFailed(job: Job, err: Error): void {
    const final = isLastFailure(err, job);
    const reason = err.message;
    // The failed attempt's run time (a completed dump's durationMs is CRIU's dump alone; a failure has no such part).
    const durationMs = Math.max(0, (job.finishedOn ?? Date.now()) - (job.processedOn ?? Date.now()));
    if (codeOf(err) === 'ECANCELLED') {
      this.emit(job, jobEvent(job, 'job.cancelled', { node: this.node, state: 'active', attemptsMade: job.attemptsMade, durationMs }));
      return;
    }
    const details = (err as { details?: string[] }).details;
    this.emit(job, jobEvent(job, 'job.failed', { reason, code: codeOf(err), attemptsMade: job.attemptsMade, final, node: this.node, durationMs, ...(details && { details }) }));
    if (!final) {
      this.emit(job, jobEvent(job, 'job.retrying', { attempt: job.attemptsMade + 1, delayMs: job.delay, reason }));
    }
  }

  private logTransition(job: Job, event: EventInput): void {
    if (!this.options.log) return;
    logJobTransition(this.options.log, { jobId: job.id!, type: job.name, target: targetText(job), node: this.node }, event);
  }

  /** Logs, then publishes in order (BullMQ emits synchronously; publishing is async). */
  private emit(job: Job, event: EventInput): void {
    this.logTransition(job, event);
    this.events = this.events
      .then(async () => {
        await this.options.eventLog.publish(event);
      })
      .catch((err: Error) => this.reportError(err));
  }

  /**
   * This node's files of checkpoints deleted elsewhere go: its own checkpoints' folders and its downloaded copies.
   * One run at a time (messages may come in a burst); failures are reported, and retried at the next message or start.
   */
  private dropDeletedFiles(): Promise<void> {
    const { catalog } = this.options;
    this.drops = this.drops.then(async () => {
      const pending = await catalog.finishPendingDeletes().catch((err: Error) => {
        this.reportError(err);
        return { failed: [] };
      });
      for (const { error } of pending.failed) this.reportError(error);
      await catalog.dropDeletedCopies().catch((err: Error) => this.reportError(err));
    });
    return this.drops;
  }

  private criuVersion(): Promise<string> {
    this.versionText ??= this.ctx.criu.version().then(
      (v) => [v.major, v.minor, v.sublevel].filter((n) => n !== undefined).join('.'),
      (err: unknown) => {
        this.versionText = undefined;
        throw err;
      },
    );
    return this.versionText;
  }

  private reportError(err: Error): void {
    this.options.onError?.(err);
  }
}
