import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { ValidationError } from '../common/validation.js';
import { NodeUnservedError } from '../queue/errors.js';
import type { EventLog } from '../events/event-log.js';
import type { DumpJobInput } from '../queue/schemas.js';
import type { EnqueueOptions } from '../queue/job-queue.js';
import type { ScheduleHealth } from './schedule-health.js';
import type { ScheduleStore } from './schedule-store.js';
import type { Schedule } from './schema.js';
import type { TickClaims } from './tick-claims.js';
import { tickJobId } from './tick-job.js';
import { isForeign, planTick, previousJobToCheck, type TickDecision, type TickSource } from './tick-plan.js';

/** What the scheduler needs from the job queue (src/queue's JobQueue provides it). */
export interface DumpEnqueuer {
  /** With `jobId`: when a job with that id exists already, returns it instead of adding another. */
  enqueueDump(input: DumpJobInput, opts?: EnqueueOptions): Promise<{ jobId: string }>;
  /** Several at once, each request's outcome in order (the ticks of one moment are enqueued together when given). */
  enqueueDumps?(requests: ({ input: DumpJobInput } & EnqueueOptions)[]): Promise<PromiseSettledResult<{ jobId: string }>[]>;
  /** A restore drill of a checkpoint (for schedules with `verify`; without it they are not drilled). */
  enqueueVerify?(input: { checkpointId: string; scheduleId: string }): Promise<{ jobId: string }>;
  /** The job's state ('waiting', 'active', 'delayed', 'completed', 'failed', ...), or null when unknown / removed. */
  getJob(jobId: string): Promise<{ state: string } | null>;
}

export interface TickRunnerOptions {
  store: ScheduleStore;
  claims: TickClaims;
  enqueuer: DumpEnqueuer;
  eventLog: EventLog;
  health: ScheduleHealth;
  /** This scheduler's node (config node). */
  node: string;
  /** Names this scheduler in claims. */
  instanceId: string;
  /**
   * The nodes live workers serve (src/queue liveNodes). When given, the ticks of another node's schedule are handled
   * here only while no live worker serves that node (its enqueue then fails: a failed tick, which nobody there would
   * report); while it is served, its own schedulers handle them. Default: only this node's schedules are armed.
   */
  liveNodes?: () => Promise<string[]>;
  /** config scheduler.claimLeaseMs: how long a claimed tick is ours before another scheduler may take it over. */
  claimLeaseMs: number;
  /** config scheduler.missedTickToleranceMs. */
  missedTickToleranceMs: number;
  /** The definition a schedule is armed with here (its jitter lengthens the claim's lease); undefined when not armed. */
  armedSchedule(id: string): Schedule | undefined;
  /** Picks each tick's jitter: a number in [0, 1). Default Math.random; tests pass a fixed one. */
  random?: () => number;
  logger: Logger;
}

/** The dump job a schedule's tick enqueues: the schedule's target spec, which the worker resolves when it runs. */
export function dumpJobOf(schedule: Schedule): DumpJobInput {
  return {
    target: schedule.target,
    leaveRunning: schedule.leaveRunning,
    scheduleId: schedule.id,
    // With overlap skip, a dump that finds the target busy (say, a manual dump) finishes as skipped, not queued.
    ifBusy: schedule.overlap === 'skip' ? 'skip' : 'wait',
    ...(schedule.criu ? { criu: schedule.criu } : {}),
    ...(schedule.node ? { node: schedule.node } : {}),
  };
}

interface PendingEnqueue extends EnqueueOptions {
  input: DumpJobInput;
  done: (outcome: PromiseSettledResult<unknown>) => void;
}

interface PendingClaim {
  scheduleId: string;
  tickMs: number;
  leaseMs: number;
  source: 'cron' | 'missed';
}

/**
 * Turns ticks into jobs, exactly once across every scheduler process: claims the tick (TickClaims; the ticks that
 * arrive together are claimed in one Redis call), reads the schedule as stored now, lets planTick decide, enqueues
 * (or skips), marks the claim done and reports `schedule.fired` / `schedule.skipped`. Also: ticks whose claim
 * failed (Redis unreachable) are retried as missed ticks, and ticks claimed by a scheduler that died are taken over.
 */
export class TickRunner {
  private readonly inFlight = new Set<Promise<void>>();
  /** Per schedule, the latest tick whose claim failed (Redis error): retried by the sweep. */
  private readonly unclaimed = new Map<string, number>();
  private batch: PendingClaim[] = [];
  private enqueues: PendingEnqueue[] = [];

  constructor(private readonly options: TickRunnerOptions) {}

  /** A tick due now (cron) or one no scheduler handled when due (missed): claimed with the ticks of the same moment. */
  tick(scheduleId: string, tickMs: number, source: 'cron' | 'missed'): void {
    if (!this.batch.length) queueMicrotask(() => this.track(this.claimBatch()));
    this.batch.push({ scheduleId, tickMs, source, leaseMs: this.leaseFor(this.options.armedSchedule(scheduleId)) });
  }

  /** Retries ticks this process could not claim, and takes over ticks whose scheduler did not finish them. */
  async sweep(): Promise<void> {
    for (const [id, tickMs] of [...this.unclaimed]) {
      this.unclaimed.delete(id);
      if (this.options.armedSchedule(id)) this.tick(id, tickMs, 'missed');
    }
    await this.recoverAbandonedTicks();
  }

  /** Resolves once every tick being handled has settled. */
  async settle(): Promise<void> {
    await Promise.allSettled([...this.inFlight]);
  }

  async reportFired(id: string, tickMs: number, jobId: string, extra: Record<string, unknown>): Promise<void> {
    const lagMs = Date.now() - tickMs;
    await Promise.all([
      this.options.store.recordFired(id, jobId),
      this.options.eventLog.publish({ event: 'schedule.fired', scheduleId: id, jobId, data: { tickAt: tickMs, jobId, lagMs, ...extra } }),
    ]);
  }

  async reportSkip(id: string, tickMs: number, reason: string, extra: Record<string, unknown>): Promise<void> {
    await this.options.store.recordSkip(id, reason);
    await this.options.eventLog.publish({ event: 'schedule.skipped', scheduleId: id, data: { tickAt: tickMs, reason, ...extra } });
    this.options.logger.info({ scheduleId: id, tickMs, reason }, `schedule ${id}: tick skipped: ${reason}`);
  }

  /** Keeps a tick's promise until it settles (settle() waits for them); its errors are logged, never unhandled. */
  private track(p: Promise<void>): void {
    const tracked: Promise<void> = p
      .catch((err) => this.options.logger.error({ err }, 'scheduler: tick handling failed'))
      .finally(() => this.inFlight.delete(tracked));
    this.inFlight.add(tracked);
  }

  private leaseFor(schedule: Schedule | undefined): number {
    return this.options.claimLeaseMs + (schedule?.jitterMs ?? 0);
  }

  private async claimBatch(): Promise<void> {
    let batch = this.batch;
    this.batch = [];
    let claimed: boolean[];
    try {
      batch = await this.handledHere(batch);
      if (!batch.length) return;
      claimed = await this.options.claims.claimMany(batch, this.options.instanceId);
    } catch (err) {
      // Nobody may have claimed them (Redis unreachable): the sweep tries again, as missed ticks.
      for (const { scheduleId, tickMs } of batch) if (tickMs > (this.unclaimed.get(scheduleId) ?? 0)) this.unclaimed.set(scheduleId, tickMs);
      this.options.logger.error({ err, ticks: batch.length }, 'scheduler: could not claim ticks; they will be retried as missed ticks');
      return;
    }
    batch.forEach((t, i) => {
      if (claimed[i]) this.track(this.runClaimed(t.scheduleId, t.tickMs, t.source));
    });
  }

  /** The ticks this scheduler handles now: its own node's, and those of other nodes no live worker serves. */
  private async handledHere(batch: PendingClaim[]): Promise<PendingClaim[]> {
    const { liveNodes, node, armedSchedule } = this.options;
    const foreignNode = (t: PendingClaim) => {
      const schedule = armedSchedule(t.scheduleId);
      return schedule && isForeign(schedule, node) ? schedule.node : undefined;
    };
    if (!liveNodes || !batch.some(foreignNode)) return batch;
    const served = new Set(await liveNodes());
    return batch.filter((t) => {
      const other = foreignNode(t);
      return !other || !served.has(other);
    });
  }

  private async runClaimed(id: string, tickMs: number, source: TickSource): Promise<void> {
    try {
      await Promise.all([this.options.store.recordTick(id, tickMs), this.handleClaimedTick(id, tickMs, source)]);
    } catch (err) {
      // The claim stays `claimed`: a sweep takes it over when its lease runs out.
      this.options.logger.error({ err, scheduleId: id, tickMs }, 'scheduler: tick failed; it will be retried after the claim lease');
    }
  }

  /** Ticks claimed by a scheduler that died (or stalled) before finishing them. */
  private async recoverAbandonedTicks(): Promise<void> {
    const { claims, store, node, instanceId, claimLeaseMs, logger } = this.options;
    for (const { scheduleId, tickMs } of await claims.expired()) {
      // A schedule of another node is left to that node's schedulers (the target is a process there).
      const scheduleNode = (await store.get(scheduleId))?.schedule.node;
      if (scheduleNode && scheduleNode !== node) continue;
      const claim = await claims.takeOver(scheduleId, tickMs, instanceId, claimLeaseMs);
      if (!claim) continue;
      logger.warn({ scheduleId, tickMs, previousOwner: claim.previousOwner }, 'scheduler: taking over a tick whose scheduler did not finish it');
      this.track(this.handleClaimedTick(scheduleId, tickMs, 'recovery', claim.claimedAt));
    }
  }

  /** The tick is ours: gather the facts, decide, enqueue (or skip), mark the claim, report. */
  private async handleClaimedTick(id: string, tickMs: number, source: TickSource, claimedAt?: number): Promise<void> {
    const { store, enqueuer } = this.options;
    const [record, state] = await Promise.all([store.get(id), store.getState(id)]);
    const jobId = tickJobId(id, tickMs);
    const previous = previousJobToCheck(record, state, jobId);
    const decision = planTick({
      source,
      tickMs,
      now: Date.now(),
      node: this.options.node,
      followsOtherNodes: this.options.liveNodes !== undefined,
      missedTickToleranceMs: this.options.missedTickToleranceMs,
      record,
      state,
      jobId,
      ...(previous ? { previousJobState: (await enqueuer.getJob(previous))?.state ?? null } : {}),
      ...(source === 'recovery' ? { enqueuedBefore: await this.jobWasEnqueued(jobId, claimedAt ?? tickMs) } : {}),
    });
    const skipped = await this.carryOut(decision, jobId, source);
    const finished = await this.options.claims.finish(
      id,
      tickMs,
      this.options.instanceId,
      skipped ? { state: 'skipped', reason: skipped } : { state: 'enqueued', jobId },
    );
    // Another scheduler took the tick over meanwhile (we were slower than the lease): it reports, not us.
    if (!finished) return;
    if (skipped) await this.reportSkip(id, tickMs, skipped, { source });
    else await this.reportFired(id, tickMs, jobId, { source });
  }

  /** Does what the decision says; returns the skip reason, or undefined when the tick has its job. */
  private async carryOut(decision: TickDecision, jobId: string, source: TickSource): Promise<string | undefined> {
    if (decision.action === 'skip') return decision.reason;
    if (decision.action === 'done') return undefined;
    if (decision.jitterMs) await sleep(Math.floor((this.options.random ?? Math.random)() * decision.jitterMs));
    // A tick taken over whose job was never added (enqueuedBefore false) may have its id claimed by the dead owner.
    return (await this.enqueue(decision.schedule, jobId, { takeOver: source === 'recovery' })).skipped;
  }

  /**
   * Enqueues the schedule's dump under `jobId` (also trigger-now's way: no claim, no overlap rule). A job the queue
   * refuses (ValidationError: a retry would not fix it) is an outcome (skipped, counted as a failure); anything else
   * (Redis down...) is thrown, and a tick is then retried through its claim.
   */
  async enqueue(schedule: Schedule, jobId: string, options: { takeOver?: boolean } = {}): Promise<{ skipped?: string; code?: string }> {
    try {
      await this.enqueueTogether({ input: dumpJobOf(schedule), jobId, ...options });
      return {};
    } catch (err) {
      // A node no live worker serves fails the tick visibly (schedule.skipped, counted) rather than queueing a dump
      // nobody will run.
      if (!(err instanceof ValidationError || err instanceof NodeUnservedError)) throw err;
      await this.options.health.countFailure(schedule.id, err.message);
      return { skipped: `enqueue refused: ${err.message}`, code: err.code };
    }
  }

  /**
   * Enqueues with the other dumps asked for in the same turn of the event loop (the ticks of one moment reach this
   * point together): one claim, one add and one publish for all of them instead of three round trips each.
   */
  private enqueueTogether({ input, ...options }: { input: DumpJobInput } & EnqueueOptions): Promise<unknown> {
    const { enqueuer } = this.options;
    if (!enqueuer.enqueueDumps) return enqueuer.enqueueDump(input, options);
    return new Promise((resolve, reject) => {
      if (!this.enqueues.length) setImmediate(() => void this.enqueueBatch());
      this.enqueues.push({ input, ...options, done: (o) => (o.status === 'fulfilled' ? resolve(o.value) : reject(o.reason)) });
    });
  }

  private async enqueueBatch(): Promise<void> {
    const batch = this.enqueues;
    this.enqueues = [];
    try {
      const outcomes = await this.options.enqueuer.enqueueDumps!(batch.map(({ done: _, ...request }) => request));
      batch.forEach((p, i) => p.done(outcomes[i]!));
    } catch (err) {
      for (const p of batch) p.done({ status: 'rejected', reason: err });
    }
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
}
