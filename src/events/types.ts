import type { JobType } from '../common/job-kinds.js';

/** Every event name the feed carries. */
export const EVENT_NAMES = [
  'job.waiting',
  'job.active',
  'job.progress',
  'job.log',
  'job.completed',
  'job.failed',
  'job.retrying',
  'job.stalled',
  'job.refused',
  'job.cancelled',
  'schedule.fired',
  'schedule.skipped',
  'schedule.unhealthy',
  'checkpoint.created',
  'checkpoint.uploaded',
  'checkpoint.pruned',
  'workload.started',
  'workload.restored',
  'workload.exited',
  'workload.removed',
  'restore.exited',
  'checkpoint.verified',
] as const;
export type EventName = (typeof EVENT_NAMES)[number];

/** Channels a subscriber picks from: the part of the event name before the dot. */
export const CHANNELS = ['job', 'schedule', 'checkpoint', 'workload', 'restore'] as const;
export type Channel = (typeof CHANNELS)[number];

/**
 * The data of each event, by name: the one definition producers write (EventLog.publish checks it) and consumers read
 * (eventData), so the two cannot drift. Documented for users in the README's feed protocol.
 */
export interface EventData {
  /** Enqueued (or a failed job retried by an operator). Which fields depend on the job type. */
  'job.waiting': {
    node: string;
    /** A dump: the target spec as asked. */
    target?: unknown;
    checkpointId?: string;
    /** A batch restore: its checkpoints and the ids of its children. */
    checkpointIds?: string[];
    jobIds?: string[];
    /** A batch restore's child: its batch. */
    batchId?: string;
    /** A failed job an operator retried. */
    retried?: boolean;
    /** A migration (its own job, and its dump): the ids to follow it by and where it goes. */
    migrationId?: string;
    dumpJobId?: string;
    fromNode?: string;
    toNode?: string;
  };
  'job.active': { node: string; attempt: number; workerPid: number };
  'job.progress': { stage: string; percent: number; bytesWritten: number; bytesExpected: number };
  'job.log': { lines: string[]; dropped: number };
  'job.completed': { result: JobOutcome; attemptsMade: number; node: string };
  'job.failed': {
    reason: string;
    code?: string;
    attemptsMade: number;
    /** False when another attempt follows (job.retrying). */
    final: boolean;
    node: string;
    /** The failed attempt's run time. */
    durationMs: number;
    /** CRIU's error lines that the one-line reason does not already say (at most 5). */
    details?: string[];
  };
  'job.retrying': { attempt: number; delayMs: number; reason: string };
  'job.stalled': { node: string; attemptsMade: number };
  'job.refused': { reason: string; code: string; fields: string[]; node: string };
  'job.cancelled': { node: string; state: string; attemptsMade?: number; durationMs?: number };
  'schedule.fired': { tickAt: number; jobId: string; lagMs: number; [detail: string]: unknown };
  'schedule.skipped': { tickAt: number; reason: string; [detail: string]: unknown };
  'schedule.unhealthy': { consecutiveFailures: number; reason: string };
  'checkpoint.created': { checkpointId: string; node: string; host: string; pid: number; bytes: number; durationMs: number };
  'checkpoint.uploaded': { checkpointId: string; node: string; location: 'local' | 'uploading' | 'remote' | 'local+remote'; bucket: string; bytes: number };
  'checkpoint.pruned': { checkpointId: string; bytes: number; reason: 'keepLast' | 'maxAge' | 'maxTotalBytes' };
  'checkpoint.verified': { checkpointId: string; at: string; ok: boolean; reason?: string };
  'workload.started': { name: string; node: string; hostPid: number; command: string[] };
  'workload.restored': { name: string; of: string; checkpointId: string; hostPid: number; node: string; copy: boolean };
  'workload.exited': { name: string; node: string; hostPid: number; at: string; code?: number; signal?: string };
  'workload.removed': { name: string; outcome: string };
  'restore.exited': { checkpointId: string; jobId?: string; pid?: number; afterMs: number };
}

/** What a completed job reports (src/queue's JobResult); the feed and metrics read these fields. */
export type JobOutcome = {
  checkpointId?: string;
  restoredPid?: number;
  /** CRIU's stats-dump / stats-restore, camelCase. */
  stats?: Record<string, unknown>;
  bytes?: number;
  durationMs: number;
  commitMs?: number;
  skipped?: boolean;
  adopted?: boolean;
};

/** What every event carries besides its data. */
interface EventEnvelope {
  jobId?: string;
  jobType?: JobType;
  scheduleId?: string;
  /** Target key of the process concerned (see src/targets), for filtering. */
  target?: string;
}

/** What a producer hands to EventLog.publish: `data` is checked against the event's EventData. */
export type EventInput<E extends EventName = EventName> = { [K in E]: EventEnvelope & { event: K; data: EventData[K] } }[E];

/** The data of `e` typed by its name when it is a `name` event, else undefined. */
export function eventData<E extends EventName>(e: { event: EventName; data: unknown }, name: E): EventData[E] | undefined {
  return e.event === name ? (e.data as EventData[E]) : undefined;
}

/** An event as stored and delivered: `id` is the Redis stream id, which orders all events. */
export interface FeedEvent extends EventEnvelope {
  event: EventName;
  data: Record<string, unknown>;
  id: string;
  /** Milliseconds since the epoch, when it was published. */
  ts: number;
}
