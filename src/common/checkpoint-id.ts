import { randomBytes } from 'node:crypto';
import { z } from 'zod';

/** `20261127T134501Z-1a2b3c4d`: UTC second, then 8 random hex digits. Sorts by time as a string; safe as a folder name. */
const CHECKPOINT_ID = /^\d{8}T\d{6}Z-[0-9a-f]{8}$/;

/** A fresh checkpoint id for `now` (only the queue and the store's callers make ids; never take one from a request unchecked). */
export function newCheckpointId(now: Date = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}Z$/, 'Z');
  return `${stamp}-${randomBytes(4).toString('hex')}`;
}

export function isCheckpointId(id: unknown): id is string {
  return typeof id === 'string' && CHECKPOINT_ID.test(id);
}

/** For route params and job data: a well-formed checkpoint id. */
export const checkpointIdSchema = z.string().regex(CHECKPOINT_ID, 'not a checkpoint id (like 20261127T134501Z-1a2b3c4d)');
