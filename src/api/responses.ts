import { z } from 'zod';
import { manifestSchema } from '../catalog/manifest.js';
import { EVENT_NAMES } from '../events/types.js';
import { JOB_STATES, JOB_TYPES } from '../common/job-kinds.js';
import { DST_POLICIES } from '../scheduler/cron.js';
import { scheduleSchema } from '../scheduler/schema.js';
import { workloadRecordSchema } from '../workloads/registry.js';

/**
 * What the API answers, one zod schema per kind of body: the OpenAPI document describes responses with them and the
 * API tests check every answer against that document.
 */

/** Every error: `error` names the kind (validation, not_found, policy, target, ...), `message` says it for people. */
export const errorResponse = z.object({
  error: z.string(),
  message: z.string(),
  code: z.string().optional(),
  issues: z.array(z.object({ field: z.string(), reason: z.string() })).optional(),
  /** ENODE_UNSERVED (422): the nodes a live worker serves now. */
  liveNodes: z.array(z.string()).optional(),
});

export const enqueuedResponse = z.object({ jobId: z.string(), node: z.string(), existing: z.boolean().optional() });
export const batchEnqueuedResponse = z.object({ batchId: z.string(), jobIds: z.array(z.string()) });
/** A migration: follow migrationId (its job on toNode, which ends the migration) and dumpJobId (its first step). */
export const migrationEnqueuedResponse = z.object({
  migrationId: z.string(),
  dumpJobId: z.string(),
  checkpointId: z.string(),
  fromNode: z.string(),
  toNode: z.string(),
});

const jobState = z.enum(JOB_STATES);

export const jobResponse = z.object({
  id: z.string(),
  type: z.enum(JOB_TYPES),
  state: jobState,
  node: z.string(),
  progress: z.object({
    stage: z.string(),
    percent: z.number().min(0).max(100),
    bytesWritten: z.number().optional(),
    bytesExpected: z.number().optional(),
  }),
  attemptsMade: z.number().int(),
  /** The job's data as enqueued (dump: target spec, options, checkpointId; restore: checkpointId, target key). */
  data: z.record(z.string(), z.unknown()),
  /** Dump: checkpointId, stats, bytes, durationMs; restore: restoredPid too; batch: items. */
  result: z.looseObject({ durationMs: z.number().optional() }).optional(),
  failedReason: z.string().optional(),
  createdAt: z.number(),
  finishedAt: z.number().optional(),
  scheduleId: z.string().optional(),
});
export const jobListResponse = z.object({ items: z.array(jobResponse) });
export const cancelResponse = z.object({ id: z.string(), outcome: z.enum(['removed', 'aborting']) });

export const checkpointResponse = manifestSchema.extend({
  pinned: z.boolean(),
  /** Where its files are: its node's disk, being uploaded, the bucket (storage.remote), or both. */
  location: z.enum(['local', 'uploading', 'remote', 'local+remote']),
  /** The latest restore drill of it. */
  verified: z.object({ at: z.string(), ok: z.boolean(), reason: z.string().optional() }).optional(),
});
export const checkpointListResponse = z.object({ items: z.array(checkpointResponse) });
export const checkpointDeletedResponse = z.object({ id: z.string(), filesRemoved: z.boolean() });

/** One run time: in UTC and as the wall clock of the schedule's zone. */
const runTimeResponse = z.object({
  at: z.string(),
  local: z.string(),
  /** Only when DST changed the run: moved past a skipped hour, or the repeated hour's second pass. */
  dst: z.enum(['moved', 'repeated']).optional(),
  /** A moved run's skipped wall-clock time. */
  due: z.string().optional(),
});
export const scheduleResponse = z.object({
  ...scheduleSchema.shape,
  origin: z.enum(['config', 'api']),
  createdAt: z.number(),
  updatedAt: z.number(),
  state: z.looseObject({
    paused: z.boolean(),
    consecutiveFailures: z.number().int(),
    unhealthy: z.boolean(),
    healthy: z.boolean(),
    /** When the schedule's latest checkpoint was recorded (ms since the epoch): its last success. */
    lastCheckpointAt: z.number().optional(),
  }),
  nextRunAt: z.number().nullable(),
  /** The next 3 run times; empty while paused or disabled. */
  nextRuns: z.array(runTimeResponse),
});
export const scheduleListResponse = z.object({ items: z.array(scheduleResponse) });
export const scheduleDeletedResponse = z.object({ id: z.string(), deleted: z.boolean() });
export const triggeredResponse = z.object({ jobId: z.string() });
export const nextRunsResponse = z.object({
  id: z.string(),
  cron: z.string(),
  timezone: z.string(),
  /** The schedule's DST policy (see Schedules: cron(8)'s rules, or skip). */
  dst: z.enum(DST_POLICIES),
  items: z.array(runTimeResponse),
});

export const overviewResponse = z.object({
  role: z.enum(['read', 'operate']),
  counts: z.object({
    waiting: z.number().int(),
    active: z.number().int(),
    delayed: z.number().int(),
    completed: z.number().int(),
    failed: z.number().int(),
    failedLastHour: z.number().int(),
    waitingChildren: z.number().int(),
  }),
  nodes: z.array(z.object({ node: z.string(), workers: z.number().int() })),
});
export const eventListResponse = z.object({
  items: z.array(
    z.object({
      id: z.string(),
      ts: z.number(),
      event: z.enum(EVENT_NAMES),
      jobId: z.string().optional(),
      jobType: z.enum(JOB_TYPES).optional(),
      scheduleId: z.string().optional(),
      target: z.string().optional(),
      data: z.record(z.string(), z.unknown()),
    }),
  ),
});

/** A route whose success body is text, not JSON (a job's CRIU log). */
export const textResponse = z.string();

export const workloadResponse = workloadRecordSchema.extend({
  state: z.enum(['running', 'exited', 'unknown']),
  /** Its newest checkpoint (list and show), or null. */
  newestCheckpoint: checkpointResponse.nullable().optional(),
});
export const workloadListResponse = z.object({ items: z.array(workloadResponse) });
export const workloadStoppedResponse = z.object({ name: z.string(), outcome: z.enum(['stopped', 'killed', 'not-running']) });
