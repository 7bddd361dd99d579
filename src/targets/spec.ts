import path from 'node:path';
import { z } from 'zod';
import { isValidRegex } from '../common/validation.js';

/**
 * What a dump names as its target: a pid, a pid file, a regex that must match exactly one process's command line, or a
 * workload started by ckpt (`ckpt run`), by name.
 */
export type TargetSpec = { pid: number } | { pidFile: string } | { match: string } | { workload: string };

/** Workload names: lower-case letters, digits, '_' and '-', starting with a letter or digit (1-48). */
export const workloadNameSchema = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_-]{0,47}$/, 'lower-case letters, digits, _ and - only, starting with a letter or digit (1-48)');

/** Longest accepted `match` regex; the regex runs against every process's command line. */
export const MAX_MATCH_LENGTH = 512;

const targetSpecObject = z.strictObject({
  pid: z.number().int().positive().optional(),
  pidFile: z
    .string()
    .max(4096)
    .refine((p) => path.isAbsolute(p), 'must be an absolute path')
    .refine((p) => !p.includes('\0'), 'must not contain NUL')
    .optional(),
  match: z
    .string()
    .min(1)
    .max(MAX_MATCH_LENGTH)
    .refine(isValidRegex, 'not a valid regular expression')
    .optional(),
  workload: workloadNameSchema.optional(),
});

/**
 * `{pid}` | `{pidFile}` | `{match}` | `{workload}`: exactly one of them. pid: positive integer; pidFile: absolute path;
 * match: a valid JavaScript regex (tested against the command line, arguments joined by spaces); workload: a name.
 * Errors name the field (`match`, embedded: `target.match`).
 */
export const targetSpecSchema = targetSpecObject.superRefine((spec, ctx) => {
  const given = (['pid', 'pidFile', 'match', 'workload'] as const).filter((k) => spec[k] !== undefined);
  if (given.length !== 1) {
    ctx.addIssue({
      code: 'custom',
      message: given.length
        ? `give exactly one of pid, pidFile, match, workload (got ${given.join(', ')})`
        : 'give exactly one of pid, pidFile, match, workload',
    });
  }
}) as unknown as z.ZodType<TargetSpec, TargetSpec>;
