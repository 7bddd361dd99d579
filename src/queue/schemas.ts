import { z } from 'zod';
import { parseOrThrow } from '../common/validation.js';
import { checkpointIdSchema } from '../catalog/manifest.js';
import { targetSpecSchema } from '../targets/spec.js';

/**
 * Job data, one schema per job type, checked when a job is enqueued (JobQueue) so a bad request fails at the edge
 * with a ValidationError naming the field. Objects are strict: an unknown key (say `criu.root` or `criu.imagesDir`)
 * is refused, never silently passed to CRIU.
 */

export const JOB_TYPES = ['dump', 'restore', 'restore-batch', 'verify'] as const;

/** Same rule as config.node: a node name is also part of a BullMQ queue name, so no ':'. */
export const nodeNameSchema = z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'letters, digits, _ . - only (1-64)');

/** Job ids: BullMQ refuses ':' and all-digit custom ids; we also keep them to one safe path/URL component. */
export const jobIdSchema = z
  .string()
  .regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/, 'letters, digits, _ . - only (1-128), not starting with . or -')
  .refine((id) => !/^\d+$/.test(id), 'must not be all digits');

export const scheduleIdSchema = z.string().regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/, 'letters, digits, _ . - only (1-64)');

/**
 * The CRIU options a request may set: behaviour switches only. Nothing path-like or command-like
 * (images dir, work dir, log file, root, exec_cmd, external, cgroup roots, config file, page server) — ckpt chooses those.
 */
const criuCommonOptions = {
  /** 0-4; default config.criu.logLevel. */
  logLevel: z.number().int().min(0).max(4),
  /** The target uses a terminal (a shell job). */
  shellJob: z.boolean(),
  /** Dump/restore unix sockets whose peer is outside the tree. */
  extUnixSk: z.boolean(),
  /** Dump/restore established TCP connections (needed on dump and on restore). */
  tcpEstablished: z.boolean(),
  /** Dump/restore flock/posix locks held by the tree. */
  fileLocks: z.boolean(),
  /** How the network is locked while TCP connections are handled. 'nftables' works without the iptables program. */
  networkLock: z.enum(['iptables', 'nftables', 'skip']),
  /** Allow link-remap files for unlinked-but-open files. */
  linkRemap: z.boolean(),
  /** Allow device files that are not where they were. */
  evasiveDevices: z.boolean(),
  /** Largest size of a deleted-but-open file CRIU copies into the images. */
  ghostLimit: z.number().int().min(0).max(2 ** 32 - 1),
};

export const criuDumpOptionsSchema = z.strictObject({
  ...criuCommonOptions,
  /** Skip TCP connections that are still being set up. */
  tcpSkipInFlight: z.boolean(),
  /** Resolve inotify watches by scanning (slower). */
  forceIrmap: z.boolean(),
}).partial();

export const criuRestoreOptionsSchema = z.strictObject({
  ...criuCommonOptions,
  /** Restore TCP sockets closed (their peers are gone). */
  tcpClose: z.boolean(),
  /** Ignore sysctls that cannot be restored. */
  weakSysctls: z.boolean(),
}).partial();

export const dumpJobSchema = z.strictObject({
  target: targetSpecSchema,
  /** Keep the target running after the dump. A periodic checkpoint must not stop the workload: dump-and-stop is explicit. */
  leaveRunning: z.boolean().default(true),
  criu: criuDumpOptionsSchema.optional(),
  /** Set by the scheduler for jobs it enqueues. */
  scheduleId: scheduleIdSchema.optional(),
  /** The node whose process this names. Default: the node of the process that enqueues (the API's). */
  node: nodeNameSchema.optional(),
  /** When another dump of the same process is running: wait for it (bounded, then retried), or finish at once as skipped. */
  ifBusy: z.enum(['wait', 'skip']).default('wait'),
});

export const restoreJobSchema = z.strictObject({
  /** Shape checked here; existence by JobQueue (an unknown id is a CatalogError ENOTFOUND). */
  checkpointId: checkpointIdSchema,
  criu: criuRestoreOptionsSchema.optional(),
  /** Where to restore. Default: the node that made the checkpoint. */
  node: nodeNameSchema.optional(),
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

export const MAX_BATCH = 100;

export const batchRestoreJobSchema = z.strictObject({
  checkpointIds: z
    .array(checkpointIdSchema)
    .min(1)
    .max(MAX_BATCH)
    .refine((ids) => new Set(ids).size === ids.length, 'must not repeat an id'),
  /** Restores of this batch running at once (across all nodes). */
  concurrency: z.number().int().min(1).max(16).default(2),
});

export type JobType = (typeof JOB_TYPES)[number];
export type CriuDumpOptions = z.output<typeof criuDumpOptionsSchema>;
export type CriuRestoreOptions = z.output<typeof criuRestoreOptionsSchema>;
export type DumpJobInput = z.input<typeof dumpJobSchema>;
/** A dump request as dumpJobSchema parsed it (defaults applied). */
export type DumpJob = z.output<typeof dumpJobSchema>;
export type RestoreJobInput = z.input<typeof restoreJobSchema>;
export type BatchRestoreJobInput = z.input<typeof batchRestoreJobSchema>;
export type VerifyJobInput = z.input<typeof verifyJobSchema>;

/** The process a dump attempt resolved its target to, kept in the job so a later attempt can finish its work. */
export interface ResolvedTarget {
  key: string;
  pid: number;
  cmdline: string;
  exe: string;
  uid: number;
  startTime: number;
  /** When the attempt that resolved it began (ms since the epoch). */
  attemptStartedAt: number;
}

/** What a dump job carries in BullMQ: the validated input, its node, and the checkpoint id fixed at enqueue time. */
export type DumpJobData = z.output<typeof dumpJobSchema> & {
  node: string;
  /** Fixed when the job is made, so every attempt (and a retry after a crash) works on the same checkpoint. */
  checkpointId: string;
  /** Set by the worker once the target is resolved; a retry uses it to adopt or discard the earlier attempt. */
  resolved?: ResolvedTarget;
};

/** A restore job's data; `batch` is set on the children of a batch restore. */
export type RestoreJobData = z.output<typeof restoreJobSchema> & {
  node: string;
  /** The checkpoint's target key (for events). */
  target: string;
  batch?: { id: string; concurrency: number };
};

export type BatchRestoreJobData = z.output<typeof batchRestoreJobSchema> & {
  node: string;
  /** The children, in the order of checkpointIds. */
  jobIds: string[];
};

export type VerifyJobData = z.output<typeof verifyJobSchema> & {
  node: string;
  /** The checkpoint's target key (for events). */
  target: string;
};

export type JobData = DumpJobData | RestoreJobData | BatchRestoreJobData | VerifyJobData;

export function parseDumpJob(input: unknown): z.output<typeof dumpJobSchema> {
  return parseOrThrow(dumpJobSchema, input, 'dump job');
}

export function parseRestoreJob(input: unknown): z.output<typeof restoreJobSchema> {
  return parseOrThrow(restoreJobSchema, input, 'restore job');
}

export function parseVerifyJob(input: unknown): z.output<typeof verifyJobSchema> {
  return parseOrThrow(verifyJobSchema, input, 'verify job');
}

export function parseBatchRestoreJob(input: unknown): z.output<typeof batchRestoreJobSchema> {
  return parseOrThrow(batchRestoreJobSchema, input, 'batch restore job');
}
