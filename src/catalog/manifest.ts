import path from 'node:path';
import { z } from 'zod';
import { checkpointIdSchema } from '../common/checkpoint-id.js';
import { checkpointTargetSchema } from '../targets/checkpoint-target.js';

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
