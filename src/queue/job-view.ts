import type { Job } from 'bullmq';
import { JOB_STATES, type JobState, type JobType } from '../common/job-kinds.js';
import type { DumpJobData, JobData, RestoreJobData, VerifyJobData } from './schemas.js';

/** Where a job is: CRIU's notification stages plus ckpt's own ('queued', 'waiting-target', 'committing', ...). */
export interface JobProgress {
  stage: string;
  /** 0-100. For dumps: bytes of page images written against the target's memory; else by stage. */
  percent: number;
  bytesWritten: number;
  bytesExpected: number;
}

/** One restore of a batch, as the batch's result lists it. */
export interface BatchItemOutcome {
  jobId: string;
  checkpointId: string;
  state: 'completed' | 'failed';
  restoredPid?: number;
  reason?: string;
}

/** What a finished job returns. Dumps: checkpointId, stats, bytes; restores: checkpointId, restoredPid, stats; batches: items. */
export interface JobResult {
  checkpointId?: string;
  restoredPid?: number;
  /** A restore of a workload's checkpoint: the workloads it started (one per replica), with their host pids. */
  workloads?: Array<{ name: string; hostPid: number }>;
  /** CRIU's stats-dump / stats-restore, camelCase. */
  stats?: Record<string, unknown>;
  /** Size of the checkpoint on disk. */
  bytes?: number;
  durationMs: number;
  /** A dump: from CRIU's reply until the checkpoint was flushed, hashed, committed and catalogued. */
  commitMs?: number;
  /** A dump with ifBusy 'skip' that found another dump of the target running. */
  skipped?: boolean;
  reason?: string;
  /** A dump that found its checkpoint already made by an earlier attempt (a worker died after CRIU finished). */
  adopted?: boolean;
  items?: BatchItemOutcome[];
  succeeded?: number;
  failed?: number;
}

/** A job as the API, the CLI and the feed see it. */
export interface JobView {
  id: string;
  type: JobType;
  state: JobState;
  node: string;
  progress: JobProgress;
  attemptsMade: number;
  data: JobData;
  result?: JobResult;
  failedReason?: string;
  /** ms since the epoch. */
  createdAt: number;
  finishedAt?: number;
  scheduleId?: string;
}

export const QUEUED_PROGRESS: JobProgress = { stage: 'queued', percent: 0, bytesWritten: 0, bytesExpected: 0 };

/** BullMQ's state names folded into ours ('prioritized' is waiting with a priority; ckpt does not use priorities). */
export function toJobState(state: string): JobState {
  if (state === 'prioritized' || state === 'wait') return 'waiting';
  return (JOB_STATES as readonly string[]).includes(state) ? (state as JobState) : 'unknown';
}

export function toJobView(job: Job, state: string, node: string): JobView {
  // The signature is for workers, not for readers of the job.
  const { signature: _, ...data } = job.data as JobData & { scheduleId?: string; signature?: string };
  const progress = typeof job.progress === 'object' && job.progress !== null ? (job.progress as JobProgress) : QUEUED_PROGRESS;
  const view: JobView = {
    id: job.id!,
    type: job.name as JobType,
    state: toJobState(state),
    node,
    progress,
    attemptsMade: job.attemptsMade,
    data,
    createdAt: job.timestamp,
  };
  if (job.returnvalue !== null && job.returnvalue !== undefined) view.result = job.returnvalue as JobResult;
  if (job.failedReason) view.failedReason = job.failedReason;
  if (job.finishedOn) view.finishedAt = job.finishedOn;
  if (data.scheduleId) view.scheduleId = data.scheduleId;
  return view;
}

/**
 * The view a caller without the operate role gets: no command line of the resolved target (command lines hold
 * secrets: passwords, tokens given as arguments). The key (`python3-4242`) and pid stay.
 */
export function withoutCommandLine(view: JobView): JobView {
  const data = view.data as DumpJobData;
  if (view.type !== 'dump' || !data.resolved) return view;
  const { cmdline: _, ...resolved } = data.resolved;
  return { ...view, data: { ...data, resolved } as unknown as JobData };
}

/** The job's target key: a restore's from enqueue time, a dump's once a worker has resolved it; none for a batch. */
export function targetKeyOf(job: Pick<Job, 'name' | 'data'>): string | undefined {
  if (job.name === 'dump') return (job.data as DumpJobData).resolved?.key;
  if (job.name === 'restore' || job.name === 'verify') return (job.data as RestoreJobData | VerifyJobData).target;
  return undefined;
}
