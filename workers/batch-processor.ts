import type { Job } from 'bullmq';
import type { BatchItemOutcome, JobResult } from '../src/queue/job-view.js';
import type { BatchRestoreJobData } from '../src/queue/schemas.js';
import type { JobRun } from './worker-context.js';

/**
 * The parent of a batch restore. BullMQ runs it once every child has finished, completed or failed (children are
 * added with ignoreDependencyOnFailure, so a failure does not stop the others); it lists each child's outcome in
 * the order of the request's checkpointIds.
 */
export async function processBatch(job: Job<BatchRestoreJobData>, run: JobRun): Promise<JobResult> {
  // The whole batch: from enqueue to the last child.
  const started = job.timestamp;
  // Both are keyed by the child's full job key (`<prefix>:<queue>:<id>`); ids are unique across queues.
  const values = byJobId(await job.getChildrenValues<JobResult>());
  const failures = byJobId(await job.getIgnoredChildrenFailures());
  const items: BatchItemOutcome[] = job.data.jobIds.map((jobId, i) => {
    const checkpointId = job.data.childCheckpointIds[i]!;
    const result = values.get(jobId);
    if (result) return { jobId, checkpointId, state: 'completed', restoredPid: result.restoredPid };
    return { jobId, checkpointId, state: 'failed', reason: failures.get(jobId) ?? 'no result recorded' };
  });
  const succeeded = items.filter((i) => i.state === 'completed').length;
  run.reporter.progress({ stage: 'done', percent: 100 });
  return { items, succeeded, failed: items.length - succeeded, durationMs: Date.now() - started };
}

function byJobId<T>(byKey: Record<string, T>): Map<string, T> {
  return new Map(Object.entries(byKey).map(([key, value]) => [key.slice(key.lastIndexOf(':') + 1), value]));
}
