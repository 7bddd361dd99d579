import { z } from 'zod';
import { parseOrThrow, ValidationError } from '../common/validation.js';
import { JOB_TYPES, type JobType } from '../common/job-kinds.js';
import { checkpointIdSchema } from '../common/checkpoint-id.js';
import { checkpointTargetSchema, targetKeySchema } from '../targets/checkpoint-target.js';
// The CRIU options a job may set: src/criu/options.ts keeps the one allow-list.
import { jobDumpCriuOptionsSchema, jobRestoreCriuOptionsSchema } from '../criu/options.js';
import { targetSpecSchema, workloadNameSchema } from '../targets/spec.js';

/**
 * Job data, one schema per job type, checked when a job is enqueued (JobQueue) so a bad request fails at the edge
 * with a ValidationError naming the field. Objects are strict: an unknown key (say `criu.root` or `criu.imagesDir`)
 * is refused, never silently passed to CRIU.
 */

/** Same rule as config.node: a node name is also part of a BullMQ queue name, so no ':'. */
export const nodeNameSchema = z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'letters, digits, _ . - only (1-64)');

/** Job ids: BullMQ refuses ':' and all-digit custom ids; we also keep them to one safe path/URL component. */
export const jobIdSchema = z
  .string()
  .regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/, 'letters, digits, _ . - only (1-128), not starting with . or -')
  .refine((id) => !/^\d+$/.test(id), 'must not be all digits');

/**
 * Schedule ids (the README's rule, for a schedule and for the scheduleId of its jobs): lower-case, safe in Redis keys,
 * job ids (`sched-<id>-<tick>`) and URLs; no ':' (tick claims split at the last one).
 */
export const scheduleIdSchema = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, 'lower-case letters, digits, _ and - (1-64), starting with a letter or digit');

export const dumpJobSchema = z.strictObject({
  target: targetSpecSchema,
  /** Keep the target running after the dump. A periodic checkpoint must not stop the workload: dump-and-stop is explicit. */
  leaveRunning: z.boolean().default(true),
  criu: jobDumpCriuOptionsSchema.optional(),
  /** Set by the scheduler for jobs it enqueues. */
  scheduleId: scheduleIdSchema.optional(),
  /** The node whose process this names. Default: the node of the process that enqueues (the API's). */
  node: nodeNameSchema.optional(),
  /** When another dump of the same process is running: wait for it (bounded, then retried), or finish at once as skipped. */
  ifBusy: z.enum(['wait', 'skip']).default('wait'),
});

/** Most copies one restore request may start. */
export const MAX_REPLICAS = 32;

export const restoreJobSchema = z.strictObject({
  /** Shape checked here; existence by JobQueue (an unknown id is an UnknownCheckpointError, code ECHECKPOINT_NOT_FOUND). */
  checkpointId: checkpointIdSchema,
  criu: jobRestoreCriuOptionsSchema.optional(),
  /** Where to restore. Default: the node that made the checkpoint. */
  node: nodeNameSchema.optional(),
  /**
   * Copies to start at once (a workload's checkpoint only: each copy is a workload of its own, `<name>-<n>`, in its
   * own pid namespace with its own output files). Default 1; a plain process's pids exist once.
   */
  replicas: z.number().int().min(1).max(MAX_REPLICAS).optional(),
  /**
   * When the checkpointed process itself still runs (same pid and start time as when it was dumped): stop it (its
   * whole tree: SIGTERM, SIGKILL after worker.replaceGraceMs) and restore in its place, a rollback. Default false:
   * the restore fails (EPID_ORIGINAL). Never stops any other process.
   */
  replace: z.boolean().optional(),
});

/** A restore drill of a checkpoint (see workers/drill-processor.ts), on the checkpoint's node. */
export const verifyJobSchema = z.strictObject({
  checkpointId: checkpointIdSchema,
  /** Set by the scheduler for the drills of its checkpoints. */
  scheduleId: scheduleIdSchema.optional(),
});

/**
 * A migration: the process (`target`, or the workload `workload`) is dumped and stopped on `fromNode`, and restored on
 * `toNode` from the checkpoint the storage carries over (storage.remote or storage.shared).
 */
export const migrationSchema = z
  .strictObject({
    target: targetSpecSchema.optional(),
    /** Shorthand for `target: {workload}`. */
    workload: workloadNameSchema.optional(),
    /** The node the process runs on now. Default: a workload's own node (the registry's record), else the API's node. */
    fromNode: nodeNameSchema.optional(),
    toNode: nodeNameSchema,
    criu: jobDumpCriuOptionsSchema.optional(),
  })
  .superRefine((m, ctx) => {
    if ((m.target === undefined) === (m.workload === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['target'], message: 'give exactly one of target, workload' });
    }
  });

export const MAX_BATCH = 100;

const batchRestoreJobObject = z.strictObject({
  checkpointIds: z
    .array(checkpointIdSchema)
    .min(1)
    .max(MAX_BATCH)
    .refine((ids) => new Set(ids).size === ids.length, 'must not repeat an id'),
  /** Restores of this batch running at once (across all nodes); each copy of `replicas` counts as one restore. */
  concurrency: z.number().int().min(1).max(16).default(2),
  /** Copies per checkpoint (workload checkpoints only; default 1): {checkpointId: n}. Each copy is a child job. */
  replicas: z.record(checkpointIdSchema, z.number().int().min(1).max(MAX_REPLICAS)).optional(),
});

/** Replicas name only checkpoints of the batch, and the restores in all stay within MAX_BATCH. */
function checkBatchReplicas(batch: z.output<typeof batchRestoreJobObject>, ctx: z.RefinementCtx): void {
  for (const id of Object.keys(batch.replicas ?? {})) {
    if (!batch.checkpointIds.includes(id)) ctx.addIssue({ code: 'custom', path: ['replicas', id], message: 'not one of checkpointIds' });
  }
  const total = batch.checkpointIds.reduce((n, id) => n + (batch.replicas?.[id] ?? 1), 0);
  if (total > MAX_BATCH) ctx.addIssue({ code: 'custom', path: ['replicas'], message: `${total} restores in all, at most ${MAX_BATCH}` });
}

export const batchRestoreJobSchema = batchRestoreJobObject.superRefine(checkBatchReplicas);

export type DumpJobInput = z.input<typeof dumpJobSchema>;
/** A dump request as dumpJobSchema parsed it (defaults applied). */
export type DumpJob = z.output<typeof dumpJobSchema>;
export type RestoreJobInput = z.input<typeof restoreJobSchema>;
export type MigrationInput = z.input<typeof migrationSchema>;
/** A migration request as migrationSchema parsed it. */
export type Migration = z.output<typeof migrationSchema>;
export type BatchRestoreJobInput = z.input<typeof batchRestoreJobSchema>;
export type VerifyJobInput = z.input<typeof verifyJobSchema>;

/** The process a dump attempt resolved its target to, kept in the job so a later attempt can finish its work. */
export const attemptTargetSchema = z.strictObject({
  ...checkpointTargetSchema.shape,
  /** When the attempt that resolved it began (ms since the epoch). */
  attemptStartedAt: z.number().int().nonnegative(),
});

/**
 * Job data as it sits in BullMQ, one schema per job type, each the request's schema plus what the queue adds: the
 * queue parses what it enqueues with these, and a worker every job it takes, before doing anything. A field added
 * to a request schema is accepted by the workers with no change here.
 */
export const dumpJobDataSchema = dumpJobSchema.extend({
  node: nodeNameSchema,
  /** Fixed when the job is made, so every attempt (and a retry after a crash) works on the same checkpoint. */
  checkpointId: checkpointIdSchema,
  /** Set by the worker once the target is resolved; a retry uses it to adopt or discard the earlier attempt. */
  resolved: attemptTargetSchema.optional(),
  /** The first step of a migration (its id, the parent `migrate` job on toNode): the local copy goes once uploaded. */
  migration: z.strictObject({ id: jobIdSchema, toNode: nodeNameSchema }).optional(),
});

/** A restore job's data; `batch` is set on the children of a batch restore. */
export const restoreJobDataSchema = restoreJobSchema.extend({
  node: nodeNameSchema,
  /** The checkpoint's target key: with checkpointId, where its folder is. */
  target: targetKeySchema,
  batch: z.strictObject({ id: jobIdSchema, concurrency: batchRestoreJobObject.shape.concurrency }).optional(),
  /** Always start a copy under a new name, even when the checkpoint's workload is not running (a batch's replicas). */
  copy: z.boolean().optional(),
});

export const batchRestoreJobDataSchema = batchRestoreJobObject
  .extend({
    node: nodeNameSchema,
    /** The children: one per restore (a checkpoint with replicas has several). */
    jobIds: z.array(jobIdSchema),
    /** The checkpoint of each child, in the order of jobIds. */
    childCheckpointIds: z.array(checkpointIdSchema),
  })
  .superRefine(checkBatchReplicas);

export const verifyJobDataSchema = verifyJobSchema.extend({
  node: nodeNameSchema,
  /** The checkpoint's target key (for events): with checkpointId, where its folder is. */
  target: targetKeySchema,
});

/** The second step of a migration, on toNode: BullMQ runs it once its child, the dump on fromNode, has completed. */
export const migrateJobDataSchema = z.strictObject({
  node: nodeNameSchema,
  fromNode: nodeNameSchema,
  /** The checkpoint the dump makes (fixed when the migration is enqueued). */
  checkpointId: checkpointIdSchema,
  dumpJobId: jobIdSchema,
  target: targetSpecSchema,
});

export const jobDataSchemas = {
  dump: dumpJobDataSchema,
  restore: restoreJobDataSchema,
  'restore-batch': batchRestoreJobDataSchema,
  verify: verifyJobDataSchema,
  migrate: migrateJobDataSchema,
} as const satisfies Record<JobType, z.ZodType>;

export type AttemptTarget = z.output<typeof attemptTargetSchema>;
export type DumpJobData = z.output<typeof dumpJobDataSchema>;
export type RestoreJobData = z.output<typeof restoreJobDataSchema>;
export type BatchRestoreJobData = z.output<typeof batchRestoreJobDataSchema>;
export type VerifyJobData = z.output<typeof verifyJobDataSchema>;
export type MigrateJobData = z.output<typeof migrateJobDataSchema>;
export type JobData = DumpJobData | RestoreJobData | BatchRestoreJobData | VerifyJobData | MigrateJobData;

/** A job's data checked against its type's schema (ValidationError naming each bad field; unknown types too). */
export function parseJobData(type: string, data: unknown): JobData {
  if (!Object.hasOwn(jobDataSchemas, type)) {
    throw new ValidationError([{ field: '', reason: `unknown job type ${JSON.stringify(type)}` }], 'job');
  }
  return parseOrThrow(jobDataSchemas[type as JobType], data, `${type} job data`);
}

export function parseDumpJob(input: unknown): z.output<typeof dumpJobSchema> {
  return parseOrThrow(dumpJobSchema, input, 'dump job');
}

export function parseRestoreJob(input: unknown): z.output<typeof restoreJobSchema> {
  return parseOrThrow(restoreJobSchema, input, 'restore job');
}

export function parseVerifyJob(input: unknown): z.output<typeof verifyJobSchema> {
  return parseOrThrow(verifyJobSchema, input, 'verify job');
}

export function parseMigration(input: unknown): z.output<typeof migrationSchema> {
  return parseOrThrow(migrationSchema, input, 'migration');
}

export function parseBatchRestoreJob(input: unknown): z.output<typeof batchRestoreJobSchema> {
  return parseOrThrow(batchRestoreJobSchema, input, 'batch restore job');
}
