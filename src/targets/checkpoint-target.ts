import path from 'node:path';
import { z } from 'zod';
import { isSafeTargetKey } from './key.js';
import { workloadNameSchema } from './spec.js';

export const targetKeySchema = z.string().refine(isSafeTargetKey, 'not a target key (like python3-4242)');

/** A resolved target as a checkpoint records it: the process a checkpoint is of (a dump job records it too). */
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
