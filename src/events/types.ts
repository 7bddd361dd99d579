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

export type JobType = 'dump' | 'restore' | 'restore-batch' | 'verify';

/** What a producer hands to EventLog.publish. */
export interface EventInput {
  event: EventName;
  jobId?: string;
  jobType?: JobType;
  scheduleId?: string;
  /** Target key of the process concerned (see src/targets), for filtering. */
  target?: string;
  data: Record<string, unknown>;
}

/** An event as stored and delivered: `id` is the Redis stream id, which orders all events. */
export interface FeedEvent extends EventInput {
  id: string;
  /** Milliseconds since the epoch, when it was published. */
  ts: number;
}
