import type { ScheduleRecord, ScheduleState } from './schedule-store.js';
import type { Schedule } from './schema.js';

/** cron: a tick on time; missed: one no scheduler handled when due (at start, or its claim failed); recovery: taken over. */
export type TickSource = 'cron' | 'missed' | 'recovery';

/** Job states in which a schedule's previous job still counts as running (overlap: skip). */
export const PENDING_JOB_STATES: ReadonlySet<string> = new Set(['waiting', 'wait', 'prioritized', 'delayed', 'active', 'waiting-children']);

/** What is known about a claimed tick when it is decided (the tick runner reads it from Redis first). */
export interface TickFacts {
  source: TickSource;
  tickMs: number;
  now: number;
  /** The node this scheduler runs on. */
  node: string;
  /** Whether this scheduler also follows other nodes' schedules (SchedulerOptions.liveNodes given). */
  followsOtherNodes: boolean;
  /** config scheduler.missedTickToleranceMs. */
  missedTickToleranceMs: number;
  /** The schedule as stored now; null when it was deleted. */
  record: ScheduleRecord | null;
  state: ScheduleState;
  /** The job the tick makes. */
  jobId: string;
  /** State of the schedule's previous job, null when it is unknown or removed (looked up only when previousJobToCheck says so). */
  previousJobState?: string | null;
  /** Recovery only: whether the previous owner enqueued the tick's job before it stopped. */
  enqueuedBefore?: boolean;
}

export type TickDecision =
  /** Enqueue a dump of the schedule, after a random delay of up to `jitterMs`. */
  | { action: 'enqueue'; schedule: Schedule; jitterMs: number }
  /** No job: the tick is reported as skipped with this reason. */
  | { action: 'skip'; reason: string }
  /** Recovery of a tick whose job the previous owner enqueued already: only mark it done and report it. */
  | { action: 'done' };

/** The previous job whose state the overlap rule needs, or null when it does not matter for this tick. */
export function previousJobToCheck(record: ScheduleRecord | null, state: ScheduleState, jobId: string): string | null {
  if (record?.schedule.overlap !== 'skip' || !state.lastJobId || state.lastJobId === jobId) return null;
  return state.lastJobId;
}

/** A schedule of another node: its target is a process there, resolved by that node's worker. */
export function isForeign(schedule: Schedule, node: string): boolean {
  return !!schedule.node && schedule.node !== node;
}

/**
 * Whether the schedule runs here: defined, enabled, not paused, and for this node (or any), or for another node when
 * this scheduler follows other nodes' schedules (to report the ticks of a node no live worker serves).
 */
export function isActiveHere(record: ScheduleRecord | null, state: ScheduleState, node: string, followsOtherNodes: boolean): record is ScheduleRecord {
  if (!record || !record.schedule.enabled || state.paused) return false;
  return followsOtherNodes || !isForeign(record.schedule, node);
}

/**
 * Decides a claimed tick, in this order: a schedule that is no longer active here is skipped; a missed tick follows
 * the schedule's `missed` policy (runOnce within the tolerance, else skipped); a recovered tick whose job exists is
 * done; with overlap skip, a previous job still waiting or running skips the tick; else the tick enqueues.
 * A recovered tick is late already: no jitter on top.
 */
export function planTick(facts: TickFacts): TickDecision {
  const { record, state, source } = facts;
  if (!isActiveHere(record, state, facts.node, facts.followsOtherNodes)) return { action: 'skip', reason: inactiveReason(record, state) };
  const { schedule } = record;
  if (source === 'missed') {
    if (schedule.missed === 'skip') return { action: 'skip', reason: 'missed: no scheduler handled it when it was due (policy skip)' };
    if (facts.now - facts.tickMs > facts.missedTickToleranceMs) {
      return {
        action: 'skip',
        reason: `missed: no scheduler handled it when it was due, and it is older than missedTickToleranceMs (${facts.missedTickToleranceMs} ms)`,
      };
    }
  }
  if (source === 'recovery' && facts.enqueuedBefore) return { action: 'done' };
  if (facts.previousJobState && PENDING_JOB_STATES.has(facts.previousJobState) && previousJobToCheck(record, state, facts.jobId)) {
    return { action: 'skip', reason: 'previous run still active' };
  }
  return { action: 'enqueue', schedule, jitterMs: source === 'recovery' ? 0 : (schedule.jitterMs ?? 0) };
}

function inactiveReason(record: ScheduleRecord | null, state: ScheduleState): string {
  if (!record) return 'schedule deleted';
  if (state.paused) return 'schedule paused';
  if (!record.schedule.enabled) return 'schedule disabled';
  return `schedule runs on node ${record.schedule.node}`;
}
