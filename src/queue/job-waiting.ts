import type { JobType } from '../common/job-kinds.js';
import type { PublishOnce } from '../events/event-log.js';
import type { EventInput } from '../events/types.js';
import type { BatchRestoreJobData, DumpJobData, JobData, MigrateJobData, RestoreJobData, VerifyJobData } from './schemas.js';

/**
 * How long a job's job.waiting is remembered once published: a worker that starts the job within this time does not
 * publish it again. A job left waiting in its queue longer than this is announced a second time when it starts
 * (still before its job.active).
 */
const REMEMBERED_WHILE_QUEUED_MS = 7 * 24 * 60 * 60 * 1000;
/**
 * Once a worker has started the job, only an enqueuer still between its add and its publish needs to find it: the
 * worker's publish shortens the memory to this, so Redis holds one such key per job still queued, not per job made.
 */
const REMEMBERED_AFTER_START_MS = 5 * 60 * 1000;

/**
 * job.waiting is published by whichever comes first: the enqueuer, right after adding the job, or the worker, just
 * before the job.active of the job's first start. So it is never after job.active, and it is there even when the
 * enqueuer died between the two; it is in the stream once either way (EventLog's PublishOnce).
 */
export function waitingOnce(jobId: string, by: 'enqueuer' | 'worker'): PublishOnce {
  return { key: `job.waiting:${jobId}`, ttlMs: by === 'enqueuer' ? REMEMBERED_WHILE_QUEUED_MS : REMEMBERED_AFTER_START_MS };
}

/** A job's job.waiting, made from its type, id and data alone, so that the enqueuer and the worker make the same one. */
export function waitingEventOf(jobType: JobType, jobId: string, data: JobData): EventInput<'job.waiting'> {
  const event = 'job.waiting' as const;
  switch (jobType) {
    case 'dump': {
      const d = data as DumpJobData;
      const migration = d.migration && { migrationId: d.migration.id };
      return { event, jobId, jobType, scheduleId: d.scheduleId, data: { node: d.node, target: d.target, checkpointId: d.checkpointId, ...migration } };
    }
    case 'restore': {
      const d = data as RestoreJobData;
      return { event, jobId, jobType, target: d.target, data: { node: d.node, checkpointId: d.checkpointId, ...(d.batch && { batchId: d.batch.id }) } };
    }
    case 'verify': {
      const d = data as VerifyJobData;
      return { event, jobId, jobType, scheduleId: d.scheduleId, target: d.target, data: { node: d.node, checkpointId: d.checkpointId } };
    }
    case 'restore-batch': {
      const d = data as BatchRestoreJobData;
      return { event, jobId, jobType, data: { node: d.node, checkpointIds: d.checkpointIds, jobIds: d.jobIds } };
    }
    case 'migrate': {
      const d = data as MigrateJobData;
      const { node, fromNode, checkpointId, dumpJobId, target } = d;
      return { event, jobId, jobType, data: { node, target, migrationId: jobId, dumpJobId, checkpointId, fromNode, toNode: node } };
    }
  }
}
