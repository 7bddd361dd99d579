import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { z } from 'zod';
import { isSafeTargetKey } from '../targets/key.js';
import { workloadNameSchema } from '../targets/spec.js';

/** `20261127T134501Z-1a2b3c4d`: UTC second, then 8 random hex digits. Sorts by time as a string; safe as a folder name. */
const CHECKPOINT_ID = /^\d{8}T\d{6}Z-[0-9a-f]{8}$/;

/** A fresh checkpoint id for `now` (only the store's callers make ids; never take one from a request unchecked). */
export function newCheckpointId(now: Date = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}Z$/, 'Z');
  return `${stamp}-${randomBytes(4).toString('hex')}`;
}

export function isCheckpointId(id: unknown): id is string {
  return typeof id === 'string' && CHECKPOINT_ID.test(id);
}

/** For route params and job data: a well-formed checkpoint id. */
export const checkpointIdSchema = z.string().regex(CHECKPOINT_ID, 'not a checkpoint id (like 20261127T134501Z-1a2b3c4d)');

export const targetKeySchema = z.string().refine(isSafeTargetKey, 'not a target key (like python3-4242)');

/** The process a checkpoint is of. */
export const checkpointTargetSchema = z.object({
  key: targetKeySchema,
  pid: z.number().int().positive(),
  cmdline: z.string(),
  exe: z.string(),
  uid: z.number().int().nonnegative(),
  /** /proc/pid/stat start time (clock ticks) of the dumped process. */
  startTime: z.number().int().nonnegative(),
  /**
   * Set for a workload (`ckpt run`): the init of its own pid namespace, restorable any number of times side by side.
   * `dir` is the folder its output files were in: a copy restored under another name gets them in its own folder.
   */
  workload: z
    .strictObject({
      name: workloadNameSchema,
      dir: z.string().refine((p) => path.isAbsolute(p), 'must be an absolute path'),
    })
    .optional(),
});

/** A file's path inside a checkpoint folder, as the manifest names it. */
const fileNameSchema = z
  .string()
  .refine((name) => !path.isAbsolute(name) && !name.split('/').some((part) => part === '..' || part === ''), 'not a relative path inside the checkpoint');

/** manifest.json: everything known about one checkpoint. Stored in its folder and in the catalog. */
export const manifestSchema = z.object({
  id: checkpointIdSchema,
  /** ISO 8601 time the dump finished. */
  created: z.iso.datetime(),
  /** Node (host) whose disk holds the images and whose processes they are. */
  node: z.string().min(1),
  target: checkpointTargetSchema,
  /** e.g. "4.2.1". */
  criuVersion: z.string(),
  /** The CRIU options the dump used (CriuOptions, camelCase). */
  options: z.record(z.string(), z.unknown()),
  leaveRunning: z.boolean(),
  /** CRIU's dump stats (readDumpStats), opaque here. */
  stats: z.record(z.string(), z.unknown()),
  /** Total size of the checkpoint's files (measured by CheckpointStore.commit). */
  bytes: z.number().int().nonnegative(),
  /** Each file's size by its path in the folder, as committed (CheckpointStore.verify checks them before a restore). */
  files: z.record(fileNameSchema, z.number().int().nonnegative()),
  /**
   * Each file's SHA-256 (hex) by its path in the folder, as committed (CheckpointStore.verify checks them before a
   * restore). Absent in manifests committed before ckpt hashed files: those are checked by size only.
   */
  sha256: z.record(fileNameSchema, z.string().regex(/^[0-9a-f]{64}$/, 'not a SHA-256 in hex')).optional(),
  durationMs: z.number().nonnegative(),
  jobId: z.string().min(1),
  scheduleId: z.string().min(1).optional(),
  /**
   * HMAC-SHA256 (security.jobKeyFile) of every other field, made at commit (CheckpointStore): a restore trusts a
   * checkpoint folder only when its manifest.json verifies and names that folder's target key and id.
   */
  signature: z.string().regex(/^[0-9a-f]{64}$/, 'not a signature (64 hex digits)').optional(),
});

export type Manifest = z.infer<typeof manifestSchema>;
