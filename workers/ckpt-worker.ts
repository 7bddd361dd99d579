import { DelayedError, Job, UnrecoverableError, WaitingError, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Catalog } from '../src/catalog/catalog.js';
import type { CheckpointStore } from '../src/catalog/checkpoint-store.js';
import type { Config } from '../src/config/schema.js';
import { CriuClient } from '../src/criu/client.js';
import type { EventLog } from '../src/events/event-log.js';
import type { EventInput } from '../src/events/types.js';
import { backoffDelay } from '../src/queue/backoff.js';
import type { JobResult } from '../src/queue/job-view.js';
import { queueKeys, queueNameFor } from '../src/queue/keys.js';
import { createRedis, type RedisConnection } from '../src/queue/redis.js';
import type { BatchRestoreJobData, DumpJobData, RestoreJobData } from '../src/queue/schemas.js';
import type { TargetPolicy } from '../src/targets/policy.js';
import { processBatch } from './batch-processor.js';
import { processDump } from './dump-processor.js';
import { codeOf, FinalJobError, toAttemptError } from './failure.js';
import { jobEvent, JobReporter } from './job-reporter.js';
import { processRestore } from './restore-processor.js';
import { ShutdownAbort, type JobRun, type WorkerContext } from './worker-context.js';

export interface CkptWorkerOptions {
  config: Config;
  eventLog: EventLog;
  /** The `criu service` socket. */
  criuSocket: string;
  catalog: Catalog;
  store: CheckpointStore;
  policy: TargetPolicy;
  /** Redis for BullMQ and the worker's locks. Default: config.redis. */
  connection?: RedisConnection;
  /** Errors that belong to no job (Redis connection trouble, an event that could not be published). Default: ignored. */
  onError?: (err: Error) => void;
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
  private readonly ctx: WorkerContext;
  private readonly active = new Map<string, AbortController>();
  private worker?: Worker;
  private events: Promise<void> = Promise.resolve();
  private closing?: Promise<void>;
  private versionText?: Promise<string>;

  constructor(private readonly options: CkptWorkerOptions) {
    const { config } = options;
    const connection = options.connection ?? config.redis;
    this.bullRedis = createRedis(connection, { mode: 'wait' });
    this.redis = createRedis(connection, { mode: 'wait' });
    // Reconnecting is ioredis' job; without listeners its errors would be unhandled.
    for (const r of [this.bullRedis, this.redis]) r.on('error', (err: Error) => this.reportError(err));
    this.ctx = {
      config,
      node: config.node,
      criu: new CriuClient({ socketPath: options.criuSocket, timeoutMs: config.criu.timeoutMs }),
      criuVersion: () => this.criuVersion(),
      catalog: options.catalog,
      store: options.store,
      policy: options.policy,
      redis: this.redis,
      keys: queueKeys(config.redis.prefix),
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
    await this.options.catalog.finishPendingDeletes().catch((err: Error) => this.reportError(err));
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
    worker.on('completed', (job, result: JobResult) =>
      this.emit(jobEvent(job, 'job.completed', { result, attemptsMade: job.attemptsMade, node: this.node })),
    );
    worker.on('failed', (job, err) => {
      if (job) this.emitFailed(job, err);
    });
    // A job whose worker died, found by this worker's stalled check and moved back to wait (or failed past maxStalledCount).
    worker.on('stalled', (jobId) => {
      this.events = this.events
        .then(async () => {
          const job = await Job.fromId(worker, jobId);
          if (job) await this.options.eventLog.publish(jobEvent(job, 'job.stalled', { node: this.node, attemptsMade: job.attemptsMade }));
        })
        .catch((err: Error) => this.reportError(err));
    });
    this.worker = worker;
    void worker.run().catch((err: Error) => this.reportError(err));
    await worker.waitUntilReady();
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
      try {
        await this.worker?.close();
        await this.events;
      } finally {
        clearTimeout(abortTimer);
        clearTimeout(cutTimer);
      }
      this.redis.disconnect();
      this.bullRedis.disconnect();
    })();
    return this.closing;
  }

  private async process(job: Job, token: string | undefined): Promise<JobResult> {
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
    // Not waited for before the work starts: each goes out on its connection ahead of anything the processor
    // writes there, so the feed and the job log still begin with them.
    const announced = Promise.all([
      reporter.publish('job.active', { node: this.node, attempt, workerPid: process.pid }),
      reporter.note(`--- attempt ${attempt} on node ${this.node} (worker pid ${process.pid}) ---`),
    ]);
    announced.catch(() => undefined);
    try {
      const result = await this.runProcessor(job, run);
      await announced;
      return result;
    } catch (err) {
      if (err instanceof DelayedError || err instanceof WaitingError) throw err;
      if (controller.signal.aborted) {
        // Shutdown: not the job's fault. Back to wait without using an attempt; another worker (or this one, restarted) runs it.
        await reporter.note(`attempt ${attempt} handed back: the worker is shutting down`);
        await job.moveToWait(token);
        throw new WaitingError();
      }
      const failure = toAttemptError(err);
      await reporter.note(`attempt ${attempt} failed: ${failure.message}`);
      throw failure;
    } finally {
      await reporter.flush();
      this.active.delete(job.id!);
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
      default:
        throw new FinalJobError(`unknown job type ${JSON.stringify(job.name)}`, 'EJOBTYPE');
    }
  }

  private emitFailed(job: Job, err: Error): void {
    const unrecoverable = err instanceof UnrecoverableError || err.name === 'UnrecoverableError';
    const final = unrecoverable || job.finishedOn !== undefined || job.attemptsMade >= (job.opts.attempts ?? 1);
    const reason = err.message;
    this.emit(jobEvent(job, 'job.failed', { reason, code: codeOf(err), attemptsMade: job.attemptsMade, final, node: this.node }));
    if (!final) {
      this.emit(jobEvent(job, 'job.retrying', { attempt: job.attemptsMade + 1, delayMs: job.delay, reason }));
    }
  }

  /** Publishes in order (BullMQ emits synchronously; publishing is async). */
  private emit(event: EventInput): void {
    this.events = this.events
      .then(async () => {
        await this.options.eventLog.publish(event);
      })
      .catch((err: Error) => this.reportError(err));
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
