import type { Job } from 'bullmq';
import type { JobResult } from '../src/queue/job-view.js';
import type { MigrateJobData } from '../src/queue/schemas.js';
import { FinalJobError } from './failure.js';
import { restoreCheckpoint } from './restore-processor.js';
import type { JobRun, WorkerContext } from './worker-context.js';

/**
 * The second step of a migration, on toNode: BullMQ starts it once its child, the dump on fromNode (which stops the
 * process and uploads the checkpoint), has finished. A failed dump fails the migration, saying where the process is.
 * Otherwise restores the checkpoint the dump made, as a restore job would (downloaded and verified first when this
 * node has no copy). The signed job names the checkpoint; where its folder is comes from the catalog and is checked
 * against the checkpoint's signed manifest before anything is used. A failed restore says where the checkpoint is
 * kept and how to try again: the process is stopped on fromNode by then.
 */
export async function processMigration(job: Job<MigrateJobData>, run: JobRun, ctx: WorkerContext): Promise<JobResult> {
  const { checkpointId, fromNode, dumpJobId } = job.data;
  const [dumpFailure] = Object.values(await job.getIgnoredChildrenFailures());
  if (dumpFailure !== undefined) {
    // CRIU thaws the process when a dump fails; once the checkpoint is committed the process is stopped.
    const made = await ctx.catalog.get(checkpointId).then(
      () => true,
      () => false,
    );
    const where = made
      ? `checkpoint ${checkpointId} was made and the process stopped; restore it with \`ckpt restore ${checkpointId} --node ${ctx.node}\``
      : `the process was left running on node ${fromNode}`;
    throw new FinalJobError(`its dump on node ${fromNode} (job ${dumpJobId}) failed; ${where}: ${dumpFailure}`, 'EMIGRATION_DUMP');
  }
  const listed = await ctx.catalog.get(checkpointId);
  try {
    return await restoreCheckpoint(job, { checkpointId, node: ctx.node, target: listed.target.key }, run, ctx);
  } catch (err) {
    const kept = ctx.config.storage.shared ? 'on the shared storage' : 'in the bucket';
    (err as Error).message =
      `the process was dumped and stopped on node ${fromNode}, its restore on node ${ctx.node} failed; checkpoint ${checkpointId} is kept ${kept}: ` +
      `retry with \`ckpt job retry ${job.id}\` (or \`ckpt restore ${checkpointId} --node <node>\`): ${(err as Error).message}`;
    throw err;
  }
}
