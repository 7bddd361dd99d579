import { randomUUID } from 'node:crypto';
import os from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import { pino, type Logger } from 'pino';
import { ValidationError } from '../common/validation.js';
import { NodeUnservedError } from '../queue/errors.js';
import type { Config } from '../config/schema.js';
import type { EventLog } from '../events/event-log.js';
import type { FeedEvent } from '../events/types.js';
import type { DumpJobInput } from '../queue/schemas.js';
import { PolicyError, TargetError } from '../targets/errors.js';
import type { ProcessInfo } from '../targets/process-info.js';
import { resolveTarget as resolveTargetDefault } from '../targets/resolve.js';
import type { TargetSpec } from '../targets/spec.js';
import { CronExpression } from './cron.js';
import { EventFollower } from './event-follower.js';
import { Pruner, type RetentionCatalog } from './pruner.js';
import { ScheduleStoreError, type ScheduleRecord, type ScheduleState, type ScheduleStore } from './schedule-store.js';
import type { Schedule } from './schema.js';
import { TickClaims } from './tick-claims.js';
import { TickPool } from './tick-pool.js';

/** What the scheduler needs from the job queue (src/queue's JobQueue provides it). */
export interface DumpEnqueuer {
  /** With `jobId`: when a job with that id exists already, returns it instead of adding another. */
  enqueueDump(input: DumpJobInput, opts?: { jobId?: string }): Promise<{ jobId: string }>;
  /** A restore drill of a checkpoint (for schedules with `verify`; without it they are not drilled). */
  enqueueVerify?(input: { checkpointId: string; scheduleId: string }): Promise<{ jobId: string }>;
  /** The job's state ('waiting', 'active', 'delayed', 'completed', 'failed', ...), or null when unknown / removed. */
  getJob(jobId: string): Promise<{ state: string } | null>;
}

export type SchedulerConfig = Pick<Config, 'node' | 'scheduler'> & { redis: Pick<Config['redis'], 'prefix'> };

export interface SchedulerOptions {
  /** Any connection to the Redis: the scheduler makes its own from it (auto-pipelined commands, pub/sub, blocking reads). */
  redis: Redis;
  store: ScheduleStore;
  enqueuer: DumpEnqueuer;
  eventLog: EventLog;
  /** For retention; without it nothing is pruned. */
  catalog?: RetentionCatalog;
  config: SchedulerConfig;
  /** Resolves a schedule's target at fire time. Default: src/targets resolveTarget. */
  resolveTarget?: (spec: TargetSpec) => Promise<ProcessInfo>;
  /** Refuses targets ckpt must not dump (src/targets TargetPolicy). Default: none here (the worker checks too). */
  targetPolicy?: { check(info: ProcessInfo): Promise<void> };
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

type TickSource = 'cron' | 'missed' | 'recovery';

interface Armed {
  /** cron + timezone + dst: what the ticks are made from. */
  version: string;
  cron: CronExpression;
  unsubscribe: () => void;
  /** The definition as last loaded (a tick re-reads it from Redis once it holds the claim). */
  schedule: Schedule;
}

const PENDING_JOB_STATES = new Set(['waiting', 'wait', 'prioritized', 'delayed', 'active', 'waiting-children']);

/** Job id of a tick: the same in every process, so a second enqueue of the tick finds the first job. */
export function tickJobId(scheduleId: string, tickMs: number): string {
  return `sched-${scheduleId}-${tickMs}`;
}

/** The schedule a scheduler-made job id belongs to, or null. */
export function scheduleIdOfJob(jobId: string | undefined): string | null {
  const m = jobId ? /^sched-(.+)-(?:\d+|manual-[0-9a-f-]{36})$/.exec(jobId) : null;
  return m ? m[1]! : null;
}

/**
 * Runs the schedules stored in Redis: the tick pool fires the ticks in every scheduler process, and each tick becomes
 * exactly one dump job across all of them (see TickClaims). Also: missed ticks at start, overlap policy, targets
 * resolved at fire time, schedule health, changes from other processes (pub/sub + periodic reload), and retention
 * after each checkpoint (followed from the event stream by one process at a time).
 */
export class Scheduler {
  readonly instanceId: string;
  /**
   * The scheduler's own connection, auto-pipelined: a second's ticks arrive together, and their commands then go
   * out in a few writes instead of one each.
   */
  private readonly redis: Redis;
  private readonly store: ScheduleStore;
  private readonly claims: TickClaims;
  private readonly log: Logger;
  private readonly armed = new Map<string, Armed>();
  private readonly ticks: TickPool;
  private readonly inFlight = new Set<Promise<void>>();
  /** Per schedule, the latest tick whose claim failed (Redis error): retried by the sweep. */
  private readonly unclaimed = new Map<string, number>();
  private readonly pruner?: Pruner;
  private readonly follower: EventFollower;
  private subscriber?: Redis;
  private timers: NodeJS.Timeout[] = [];
  private syncQueue: Promise<void> = Promise.resolve();
  private running = false;

  constructor(private readonly options: SchedulerOptions) {
    const { config } = options;
    this.log = (options.logger ?? pino()).child({ component: 'scheduler' });
    const redis = (this.redis = options.redis.duplicate({ enableAutoPipelining: true, lazyConnect: true }));
    this.redis.on('error', (err: Error) => this.log.debug({ err }, 'scheduler: connection error'));
    this.store = options.store.withConnection(redis);
    this.instanceId = options.instanceId ?? `${os.hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
    this.ticks = new TickPool();
    this.claims = new TickClaims(redis, { prefix: config.redis.prefix, ttlMs: config.scheduler.tickClaimTtlMs });
    if (options.catalog) {
      this.pruner = new Pruner({
        redis,
        prefix: config.redis.prefix,
        catalog: options.catalog,
        store: this.store,
        eventLog: options.eventLog,
        logger: this.log,
        owner: this.instanceId,
      });
    }
    this.follower = new EventFollower({
      redis,
      eventLog: options.eventLog,
      name: `${config.redis.prefix}:scheduler:events`,
      owner: this.instanceId,
      leaseMs: config.scheduler.eventsLeaseMs,
      logger: this.log,
      onEvent: (e) => this.onEvent(e),
      onLead: async () => {
        await this.pruner?.pruneAll();
      },
    });
  }

  /** Arms every active schedule, catches up missed ticks, and starts following changes, claims and events. */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    const { store, redis } = this;
    const { config } = this.options;
    // Subscribe before the first full load, so no change slips between the two.
    this.subscriber = redis.duplicate({ enableAutoPipelining: false, lazyConnect: false });
    // ioredis reconnects by itself; without a listener its connection errors would be "unhandled".
    this.subscriber.on('error', (err: Error) => this.log.debug({ err }, 'scheduler: pub/sub connection error'));
    this.subscriber.on('message', (_channel: string, message: string) => {
      try {
        const { id } = JSON.parse(message) as { id: string };
        this.enqueueSync(() => this.syncOne(id));
      } catch (err) {
        this.log.warn({ err, message }, 'scheduler: bad change notification');
      }
    });
    await this.subscriber.subscribe(store.channel);
    const states = await this.syncAll();
    await this.catchUpMissedTicks(states);
    const every = (ms: number, fn: () => Promise<unknown>) => {
      const t = setInterval(() => void fn().catch((err) => this.log.warn({ err }, 'scheduler: periodic task failed')), ms);
      this.timers.push(t);
    };
    every(config.scheduler.sweepIntervalMs, async () => {
      await this.retryUnclaimedTicks();
      await this.recoverAbandonedTicks();
    });
    every(config.scheduler.reloadIntervalMs, async () => this.enqueueSync(() => this.syncAll().then(() => undefined)));
    this.follower.start();
    this.log.info({ instanceId: this.instanceId, schedules: this.armed.size }, 'scheduler started');
  }

  /** Stops ticking; waits for ticks being handled (their claims stay valid) and releases the event lease. */
  async stop(): Promise<void> {
    if (!this.running) {
      this.redis.disconnect();
      return;
    }
    this.running = false;
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    for (const id of [...this.armed.keys()]) this.disarm(id);
    this.ticks.close();
    await this.follower.stop();
    await Promise.allSettled([...this.inFlight]);
    await this.syncQueue;
    this.subscriber?.disconnect();
    this.redis.disconnect();
  }

  /** Ids of the schedules this process is ticking. */
  armedIds(): string[] {
    return [...this.armed.keys()].sort();
  }

  /**
   * Trigger-now: enqueues a dump at once (job id `sched-<id>-manual-<uuid>`), whatever the overlap policy
   * (the worker still runs one dump of a target at a time). ENOTFOUND for an unknown schedule; TriggerError
   * when the target does not resolve (also reported as schedule.skipped and counted as a failure).
   */
  async trigger(id: string): Promise<{ jobId: string }> {
    const record = await this.store.get(id);
    if (!record) throw new ScheduleStoreError('ENOTFOUND', `schedule ${id} not found`, id);
    const now = Date.now();
    const jobId = `sched-${id}-manual-${randomUUID()}`;
    const outcome = await this.fire(record.schedule, now, jobId);
    if (outcome.skipped) {
      await this.reportSkip(id, now, outcome.skipped, { manual: true });
      throw new TriggerError(outcome.code ?? 'ESKIPPED', outcome.skipped);
    }
    await this.store.recordFired(id, jobId);
    await this.reportFired(id, now, jobId, { manual: true });
    return { jobId };
  }

  // ---- arming -------------------------------------------------------------------------------------------------

  private enqueueSync(fn: () => Promise<void>): void {
    this.syncQueue = this.syncQueue.then(fn).catch((err) => this.log.warn({ err }, 'scheduler: reload failed'));
  }

  private async syncAll(): Promise<Map<string, ScheduleState>> {
    const records = await this.store.list();
    const states = await this.store.getStates(records.map((r) => r.schedule.id));
    const seen = new Set<string>();
    for (const record of records) {
      seen.add(record.schedule.id);
      this.apply(record.schedule.id, record, states.get(record.schedule.id)!);
    }
    for (const id of [...this.armed.keys()]) if (!seen.has(id)) this.disarm(id);
    return states;
  }

  private async syncOne(id: string): Promise<void> {
    const [record, state] = await Promise.all([this.store.get(id), this.store.getState(id)]);
    this.apply(id, record, state);
  }

  private isActive(record: ScheduleRecord | null, state: ScheduleState): record is ScheduleRecord {
    if (!record || !record.schedule.enabled || state.paused) return false;
    return !this.isForeign(record.schedule) || this.options.liveNodes !== undefined;
  }

  /** A schedule of another node: its target is a process there, resolved by that node's worker. */
  private isForeign(schedule: Schedule): boolean {
    return !!schedule.node && schedule.node !== this.options.config.node;
  }

  /** Whether this scheduler handles a tick now: its own node's, or one of a node no live worker serves. */
  private async handlesTick(schedule: Schedule | undefined): Promise<boolean> {
    if (!schedule || !this.isForeign(schedule)) return true;
    return !(await this.options.liveNodes!()).includes(schedule.node!);
  }

  private apply(id: string, record: ScheduleRecord | null, state: ScheduleState): void {
    if (!this.running) return;
    if (!this.isActive(record, state)) {
      this.disarm(id);
      return;
    }
    const { cron: expression, timezone, dst = 'cron' } = record.schedule;
    const version = `${expression}|${timezone}|${dst}`;
    const current = this.armed.get(id);
    if (current?.version === version) {
      current.schedule = record.schedule;
      return;
    }
    this.disarm(id);
    const parsed = CronExpression.parse(expression);
    const unsubscribe = this.ticks.subscribe(parsed, timezone, dst, (tickMs) => this.track(this.onTick(id, tickMs, 'cron')));
    this.armed.set(id, { version, cron: parsed, unsubscribe, schedule: record.schedule });
  }

  private disarm(id: string): void {
    const armed = this.armed.get(id);
    if (!armed) return;
    armed.unsubscribe();
    this.armed.delete(id);
  }

  /** Keeps a tick's promise until it settles (stop() waits for them); its errors are logged, never unhandled. */
  private track(p: Promise<void>): void {
    const tracked: Promise<void> = p
      .catch((err) => this.log.error({ err }, 'scheduler: tick handling failed'))
      .finally(() => this.inFlight.delete(tracked));
    this.inFlight.add(tracked);
  }

  // ---- ticks --------------------------------------------------------------------------------------------------

  private leaseFor(schedule: Schedule | undefined): number {
    return this.options.config.scheduler.claimLeaseMs + (schedule?.jitterMs ?? 0);
  }

  private async onTick(id: string, tickMs: number, source: TickSource): Promise<void> {
    let claimed: boolean;
    try {
      if (!(await this.handlesTick(this.armed.get(id)?.schedule))) return;
      claimed = await this.claims.claim(id, tickMs, this.instanceId, this.leaseFor(this.armed.get(id)?.schedule));
    } catch (err) {
      // Nobody may have claimed it (Redis unreachable): the sweep tries again, as a missed tick.
      if (tickMs > (this.unclaimed.get(id) ?? 0)) this.unclaimed.set(id, tickMs);
      this.log.error({ err, scheduleId: id, tickMs }, 'scheduler: could not claim a tick; it will be retried as a missed tick');
      return;
    }
    if (!claimed) return;
    try {
      await Promise.all([this.store.recordTick(id, tickMs), this.handleClaimedTick(id, tickMs, source)]);
    } catch (err) {
      // The claim stays `claimed`: a sweep takes it over when its lease runs out.
      this.log.error({ err, scheduleId: id, tickMs }, 'scheduler: tick failed; it will be retried after the claim lease');
    }
  }

  /** Ticks this process could not even claim (Redis unreachable at that moment): the latest one per schedule, missed-tick policy. */
  private async retryUnclaimedTicks(): Promise<void> {
    const now = Date.now();
    for (const [id, tickMs] of [...this.unclaimed]) {
      this.unclaimed.delete(id);
      const armed = this.armed.get(id);
      if (armed) this.handleMissedTick(id, armed.schedule, tickMs, now);
    }
  }

  /** Recovery: ticks claimed by a scheduler that died (or stalled) before finishing them. */
  private async recoverAbandonedTicks(): Promise<void> {
    if (!this.running) return;
    const { store } = this;
    const { config } = this.options;
    for (const { scheduleId, tickMs } of await this.claims.expired()) {
      // A schedule of another node is left to that node's schedulers (the target is a process there).
      const node = (await store.get(scheduleId))?.schedule.node;
      if (node && node !== config.node) continue;
      const claim = await this.claims.takeOver(scheduleId, tickMs, this.instanceId, config.scheduler.claimLeaseMs);
      if (!claim) continue;
      this.log.warn(
        { scheduleId, tickMs, previousOwner: claim.previousOwner },
        'scheduler: taking over a tick whose scheduler did not finish it',
      );
      this.track(this.handleClaimedTick(scheduleId, tickMs, 'recovery', claim.claimedAt));
    }
  }

  /** The tick is ours: decide, enqueue (or skip), mark the claim, report. */
  private async handleClaimedTick(id: string, tickMs: number, source: TickSource, claimedAt?: number): Promise<void> {
    const { store } = this;
    const [record, state] = await Promise.all([store.get(id), store.getState(id)]);
    const jobId = tickJobId(id, tickMs);
    let outcome: FireOutcome;
    if (!this.isActive(record, state)) {
      outcome = { skipped: inactiveReason(record, state) };
    } else if (source === 'recovery' && (await this.jobWasEnqueued(jobId, claimedAt ?? tickMs))) {
      // The previous owner enqueued and died before marking the claim; its job may even be finished and gone.
      outcome = {};
    } else {
      // A taken-over tick is late already: no jitter on top.
      const jitter = record.schedule.jitterMs && source !== 'recovery' ? Math.floor(Math.random() * record.schedule.jitterMs) : 0;
      if (jitter) await sleep(jitter);
      outcome = await this.fire(record.schedule, tickMs, jobId, state);
    }
    const finished = outcome.skipped
      ? await this.claims.finish(id, tickMs, this.instanceId, { state: 'skipped', reason: outcome.skipped })
      : (
          await Promise.all([
            this.claims.finish(id, tickMs, this.instanceId, { state: 'enqueued', jobId }),
            this.store.recordFired(id, jobId),
          ])
        )[0];
    // Another scheduler took the tick over meanwhile (we were slower than the lease): it reports, not us.
    if (!finished) return;
    if (outcome.skipped) await this.reportSkip(id, tickMs, outcome.skipped, { source });
    else await this.reportFired(id, tickMs, jobId, { source });
  }

  /**
   * Overlap check, target resolution, enqueue. Failures that a retry would not fix are outcomes (skipped, counted
   * as failures); anything else (Redis down...) is thrown and the tick is retried through its claim.
   */
  private async fire(schedule: Schedule, tickMs: number, jobId: string, state?: ScheduleState): Promise<FireOutcome> {
    const { enqueuer } = this.options;
    if (state && schedule.overlap === 'skip' && state.lastJobId && state.lastJobId !== jobId) {
      const previous = await enqueuer.getJob(state.lastJobId);
      if (previous && PENDING_JOB_STATES.has(previous.state)) return { skipped: 'previous run still active' };
    }
    // Another node's process can only be resolved there: its worker does (and the queue refuses the job while no
    // live worker serves that node, a failed tick below).
    if (this.isForeign(schedule)) return this.enqueueTick(schedule, jobId, schedule.target);
    let target: ProcessInfo;
    try {
      target = await (this.options.resolveTarget ?? resolveTargetDefault)(schedule.target);
      await this.options.targetPolicy?.check(target);
    } catch (err) {
      if (!(err instanceof TargetError || err instanceof PolicyError)) throw err;
      await this.countFailure(schedule.id, err.message);
      return { skipped: `target: ${err.message}`, code: err.code };
    }
    // A workload keeps its name across restores (its pid changes): the worker resolves it again.
    return this.enqueueTick(schedule, jobId, 'workload' in schedule.target ? schedule.target : { pid: target.pid });
  }

  private async enqueueTick(schedule: Schedule, jobId: string, target: DumpJobInput['target']): Promise<FireOutcome> {
    const { enqueuer } = this.options;
    const input: DumpJobInput = {
      target,
      leaveRunning: schedule.leaveRunning,
      scheduleId: schedule.id,
      // With overlap skip, a dump that finds the target busy (say, a manual dump) finishes as skipped, not queued.
      ifBusy: schedule.overlap === 'skip' ? 'skip' : 'wait',
      ...(schedule.criu ? { criu: schedule.criu } : {}),
      ...(schedule.node ? { node: schedule.node } : {}),
    };
    try {
      await enqueuer.enqueueDump(input, { jobId });
    } catch (err) {
      // A node no live worker serves fails the tick visibly (schedule.skipped, counted) rather than queueing a dump
      // nobody will run.
      if (!(err instanceof ValidationError || err instanceof NodeUnservedError)) throw err;
      await this.countFailure(schedule.id, err.message);
      return { skipped: `enqueue refused: ${err.message}`, code: err.code };
    }
    return {};
  }

  /** Whether any event about `jobId` was published since the tick was claimed (so it was enqueued). */
  private async jobWasEnqueued(jobId: string, sinceMs: number): Promise<boolean> {
    if (await this.options.enqueuer.getJob(jobId)) return true;
    let after = `${Math.max(0, sinceMs - 1)}-0`;
    for (;;) {
      const batch = await this.options.eventLog.readAfter(after, 1000);
      if (batch.some((e) => e.jobId === jobId)) return true;
      if (batch.length < 1000) return false;
      after = batch[batch.length - 1]!.id;
    }
  }

  /**
   * At start: ticks that passed while no scheduler ran. Per schedule, only ticks after its lastTickAt count (which
   * creation, resume and updates move to "now"), and of those only the latest, under the schedule's missed policy.
   */
  private async catchUpMissedTicks(states: Map<string, ScheduleState>): Promise<void> {
    const now = Date.now();
    for (const [id, { cron: expression, schedule }] of this.armed) {
      const lastTickAt = states.get(id)?.lastTickAt;
      if (!lastTickAt) continue;
      const latest = expression.prev(now + 1, schedule.timezone, schedule.dst);
      if (latest !== null && latest > lastTickAt) this.handleMissedTick(id, schedule, latest, now);
    }
  }

  /** runOnce (within missedTickToleranceMs): handled as a tick now; else claimed and reported skipped. */
  private handleMissedTick(id: string, schedule: Schedule, tickMs: number, now: number): void {
    const tolerance = this.options.config.scheduler.missedTickToleranceMs;
    if (schedule.missed === 'runOnce' && now - tickMs <= tolerance) {
      this.log.info({ scheduleId: id, tickMs }, 'scheduler: running the latest missed tick once');
      this.track(this.onTick(id, tickMs, 'missed'));
      return;
    }
    const reason =
      schedule.missed === 'skip'
        ? 'missed: no scheduler handled it when it was due (policy skip)'
        : `missed: no scheduler handled it when it was due, and it is older than missedTickToleranceMs (${tolerance} ms)`;
    this.track(this.skipMissed(id, tickMs, reason));
  }

  private async skipMissed(id: string, tickMs: number, reason: string): Promise<void> {
    if (!(await this.claims.claim(id, tickMs, this.instanceId, this.leaseFor(undefined)))) return;
    await this.store.recordTick(id, tickMs);
    if (await this.claims.finish(id, tickMs, this.instanceId, { state: 'skipped', reason })) {
      await this.reportSkip(id, tickMs, reason, { source: 'missed' });
    }
  }

  // ---- reporting and health -------------------------------------------------------------------------------------

  private async reportFired(id: string, tickMs: number, jobId: string, extra: Record<string, unknown>): Promise<void> {
    const lagMs = Date.now() - tickMs;
    await this.options.eventLog.publish({ event: 'schedule.fired', scheduleId: id, jobId, data: { tickAt: tickMs, jobId, lagMs, ...extra } });
  }

  private async reportSkip(id: string, tickMs: number, reason: string, extra: Record<string, unknown>): Promise<void> {
    await this.store.recordSkip(id, reason);
    await this.options.eventLog.publish({ event: 'schedule.skipped', scheduleId: id, data: { tickAt: tickMs, reason, ...extra } });
    this.log.info({ scheduleId: id, tickMs, reason }, `schedule ${id}: tick skipped: ${reason}`);
  }

  private async countFailure(id: string, reason: string): Promise<void> {
    const { eventLog, config } = this.options;
    const r = await this.store.recordFailure(id, reason, config.scheduler.unhealthyAfter);
    if (!r.becameUnhealthy) return;
    this.log.warn({ scheduleId: id, consecutiveFailures: r.consecutiveFailures, reason }, `schedule ${id} is unhealthy`);
    await eventLog.publish({
      event: 'schedule.unhealthy',
      scheduleId: id,
      data: { consecutiveFailures: r.consecutiveFailures, reason },
    });
  }

  /** `verify: true` drills every checkpoint of the schedule, `verify: N` every Nth (counted in Redis, each checkpoint once). */
  private async drillIfDue(schedule: Schedule, checkpointId: string): Promise<void> {
    const every = schedule.verify === true ? 1 : schedule.verify || 0;
    const enqueueVerify = this.options.enqueuer.enqueueVerify?.bind(this.options.enqueuer);
    if (!every || !enqueueVerify) return;
    const key = `${this.options.config.redis.prefix}:scheduler:verify:${schedule.id}`;
    // A follower that takes over may hand this event over again: count each checkpoint once.
    if (!(await this.redis.set(`${key}:seen:${checkpointId}`, '1', 'PX', this.options.config.scheduler.tickClaimTtlMs, 'NX'))) return;
    if ((await this.redis.incr(`${key}:count`)) % every === 0) await enqueueVerify({ checkpointId, scheduleId: schedule.id });
  }

  /** Events followed by one scheduler at a time: checkpoints end a failure streak and trigger retention; final failures add to it. */
  private async onEvent(e: FeedEvent): Promise<void> {
    if (e.event !== 'checkpoint.created' && e.event !== 'job.failed') return;
    const scheduleId = e.scheduleId ?? (e.data.scheduleId as string | undefined) ?? scheduleIdOfJob(e.jobId);
    const record = scheduleId ? await this.store.get(scheduleId) : null;
    if (!scheduleId || !record) return;
    if (e.event === 'checkpoint.created') {
      await this.store.recordSuccess(scheduleId);
      await this.drillIfDue(record.schedule, String(e.data.checkpointId));
      await this.pruner?.pruneSchedule(scheduleId);
    } else if (e.event === 'job.failed' && (e.jobType ?? 'dump') === 'dump' && e.data.final === true) {
      // Only a final failure counts: an attempt that will be retried may still end in a checkpoint.
      const reason = String(e.data.failedReason ?? e.data.reason ?? e.data.message ?? 'dump job failed');
      await this.countFailure(scheduleId, `job ${e.jobId} failed: ${reason}`);
    }
  }
}

function inactiveReason(record: ScheduleRecord | null, state: ScheduleState): string {
  if (!record) return 'schedule deleted';
  if (state.paused) return 'schedule paused';
  if (!record.schedule.enabled) return 'schedule disabled';
  return `schedule runs on node ${record.schedule.node}`;
}

interface FireOutcome {
  /** Set when the tick produced no job: why. */
  skipped?: string;
  /** Error code behind a skip (ETARGET_*, EPOLICY, EVALIDATION). */
  code?: string;
}
