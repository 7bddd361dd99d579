import { randomUUID } from 'node:crypto';
import os from 'node:os';
import type { Redis } from 'ioredis';
import { pino, type Logger } from 'pino';
import type { Config } from '../config/schema.js';
import type { EventLog } from '../events/event-log.js';
import { Pruner, type RetentionCatalog } from '../retention/pruner.js';
import type { Retention } from '../retention/schema.js';
import { PolicyError, TargetError } from '../targets/errors.js';
import { resolveTarget } from '../targets/resolve.js';
import type { TargetSpec } from '../targets/spec.js';
import { EventFollower } from './event-follower.js';
import { ScheduleArming } from './schedule-arming.js';
import { ScheduleHealth } from './schedule-health.js';
import { ScheduleStoreError, type ScheduleStore } from './schedule-store.js';
import { TickClaims } from './tick-claims.js';
import { manualJobId } from './tick-job.js';
import { TickRunner, type DumpEnqueuer } from './tick-runner.js';

export type SchedulerConfig = Pick<Config, 'node' | 'scheduler'> & { redis: Pick<Config['redis'], 'prefix'> };

export interface SchedulerOptions {
  /** Any connection to the Redis: the scheduler makes its own from it (auto-pipelined commands, pub/sub, blocking reads). */
  redis: Redis;
  store: ScheduleStore;
  enqueuer: DumpEnqueuer;
  eventLog: EventLog;
  /** For retention; without it nothing is pruned. */
  catalog?: RetentionCatalog;
  /** config storage.retention: for each target's checkpoints that no schedule made. Default: none (kept). */
  unscheduledRetention?: Retention;
  config: SchedulerConfig;
  /**
   * Checks a trigger-now's target before its job is enqueued, so the caller hears at once of a target that does not
   * resolve or is refused (as POST /dumps does); throws TargetError / PolicyError. Ticks do not check: the worker
   * resolves the target when the job runs. Default: src/targets resolveTarget (no policy).
   */
  checkTarget?: (spec: TargetSpec) => Promise<void>;
  /** Default: pino at info level. */
  logger?: Logger;
  /** Names this scheduler in claims and leases. Default: `<hostname>:<pid>:<random>`. */
  instanceId?: string;
  /**
   * The nodes live workers serve (src/queue liveNodes). When given, this scheduler also follows the schedules of
   * other nodes, and a tick of one whose node no live worker serves is reported here as a failed tick (nobody there
   * would report it); while that node is served, its own schedulers handle its ticks. Default: only this node's.
   */
  liveNodes?: () => Promise<string[]>;
  /** Picks each tick's jitter (see TickRunnerOptions.random). */
  random?: () => number;
}

/** A trigger-now whose target did not resolve (or was refused): the tick's reason, with the target error's code. */
export class TriggerError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'TriggerError';
  }
}

/**
 * Runs the schedules stored in Redis, in any number of processes: ScheduleArming keeps the tick timers in step with
 * the store, TickRunner turns each tick into exactly one dump job across all processes (planTick decides what a
 * tick does), ScheduleHealth follows what became of the jobs (failures, checkpoints, drills, retention) from the
 * event stream, in one process at a time.
 */
export class Scheduler {
  readonly instanceId: string;
  /**
   * The scheduler's own connection, auto-pipelined: a second's ticks arrive together, and their commands then go
   * out in a few writes instead of one each.
   */
  private readonly redis: Redis;
  private readonly store: ScheduleStore;
  private readonly log: Logger;
  private readonly arming: ScheduleArming;
  private readonly runner: TickRunner;
  private readonly health: ScheduleHealth;
  private readonly follower: EventFollower;
  private sweepTimer?: NodeJS.Timeout;
  private running = false;

  constructor(private readonly options: SchedulerOptions) {
    const { config, enqueuer } = options;
    const settings = config.scheduler;
    this.log = (options.logger ?? pino()).child({ component: 'scheduler' });
    const redis = (this.redis = options.redis.duplicate({ enableAutoPipelining: true, lazyConnect: true }));
    this.redis.on('error', (err: Error) => this.log.debug({ err }, 'scheduler: connection error'));
    const store = (this.store = options.store.withConnection(redis));
    this.instanceId = options.instanceId ?? `${os.hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
    const pruner = options.catalog
      ? new Pruner({
          redis,
          prefix: config.redis.prefix,
          catalog: options.catalog,
          retentionOf: async (id) => (await store.get(id))?.schedule.retention ?? null,
          schedulesWithRetention: async () => (await store.list()).filter((r) => r.schedule.retention).map((r) => r.schedule.id),
          ...(options.unscheduledRetention && { unscheduled: options.unscheduledRetention }),
          eventLog: options.eventLog,
          logger: this.log,
          owner: this.instanceId,
        })
      : undefined;
    this.health = new ScheduleHealth({
      redis,
      store,
      eventLog: options.eventLog,
      prefix: config.redis.prefix,
      unhealthyAfter: settings.unhealthyAfter,
      verifySeenTtlMs: settings.tickClaimTtlMs,
      ...(enqueuer.enqueueVerify ? { enqueueVerify: enqueuer.enqueueVerify.bind(enqueuer) } : {}),
      ...(pruner ? { pruner } : {}),
      logger: this.log,
    });
    this.arming = new ScheduleArming({
      redis,
      store,
      node: config.node,
      followsOtherNodes: options.liveNodes !== undefined,
      reloadIntervalMs: settings.reloadIntervalMs,
      logger: this.log,
      onTick: (id, tickMs) => this.runner.tick(id, tickMs, 'cron'),
    });
    this.runner = new TickRunner({
      store,
      claims: new TickClaims(redis, { prefix: config.redis.prefix, ttlMs: settings.tickClaimTtlMs }),
      enqueuer,
      eventLog: options.eventLog,
      health: this.health,
      node: config.node,
      instanceId: this.instanceId,
      claimLeaseMs: settings.claimLeaseMs,
      missedTickToleranceMs: settings.missedTickToleranceMs,
      armedSchedule: (id) => this.arming.schedule(id),
      ...(options.liveNodes ? { liveNodes: options.liveNodes } : {}),
      ...(options.random ? { random: options.random } : {}),
      logger: this.log,
    });
    this.follower = new EventFollower({
      redis,
      eventLog: options.eventLog,
      name: `${config.redis.prefix}:scheduler:events`,
      owner: this.instanceId,
      leaseMs: settings.eventsLeaseMs,
      logger: this.log,
      onEvent: (e) => this.health.onEvent(e),
      onLead: async () => {
        await pruner?.pruneAll();
      },
    });
  }

  /** Arms every active schedule, catches up missed ticks, and starts following changes, claims and events. */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    const states = await this.arming.start();
    for (const { scheduleId, tickMs } of this.arming.missedTicks(states, Date.now())) this.runner.tick(scheduleId, tickMs, 'missed');
    this.sweepTimer = setInterval(
      () => void this.runner.sweep().catch((err) => this.log.warn({ err }, 'scheduler: sweep failed')),
      this.options.config.scheduler.sweepIntervalMs,
    );
    this.follower.start();
    this.log.info({ instanceId: this.instanceId, schedules: this.arming.ids().length }, 'scheduler started');
  }

  /** Stops ticking; waits for ticks being handled (their claims stay valid) and releases the event lease. */
  async stop(): Promise<void> {
    if (this.running) {
      this.running = false;
      clearInterval(this.sweepTimer);
      await this.arming.stop();
      await this.follower.stop();
      await this.runner.settle();
    }
    this.redis.disconnect();
  }

  /** Ids of the schedules this process is ticking. */
  armedIds(): string[] {
    return this.arming.ids();
  }

  /**
   * Trigger-now: enqueues a dump at once (job id `sched-<id>-manual-<uuid>`), whatever the overlap policy (the
   * worker still runs one dump of a target at a time). ESCHEDULE_NOT_FOUND for an unknown schedule; TriggerError when the
   * target does not resolve here or is refused (also reported as schedule.skipped and counted as a failure).
   */
  async trigger(id: string): Promise<{ jobId: string }> {
    const record = await this.store.get(id);
    if (!record) throw new ScheduleStoreError('ESCHEDULE_NOT_FOUND', `schedule ${id} not found`, id);
    const { schedule } = record;
    const now = Date.now();
    const jobId = manualJobId(id);
    let outcome: { skipped?: string; code?: string };
    try {
      // A schedule of another node names a process there: its worker finds out.
      if (!schedule.node || schedule.node === this.options.config.node) await this.checkTarget(schedule.target);
      outcome = await this.runner.enqueue(schedule, jobId);
    } catch (err) {
      if (!(err instanceof TargetError || err instanceof PolicyError)) throw err;
      await this.health.countFailure(id, err.message);
      outcome = { skipped: `target: ${err.message}`, code: err.code };
    }
    if (outcome.skipped) {
      await this.runner.reportSkip(id, now, outcome.skipped, { manual: true });
      throw new TriggerError(outcome.code ?? 'ESKIPPED', outcome.skipped);
    }
    await this.runner.reportFired(id, now, jobId, { manual: true });
    return { jobId };
  }

  private async checkTarget(spec: TargetSpec): Promise<void> {
    if (this.options.checkTarget) await this.options.checkTarget(spec);
    else await resolveTarget(spec);
  }
}
