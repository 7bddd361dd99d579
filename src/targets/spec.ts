import path from 'node:path';
import { z } from 'zod';
import { isValidRegex } from '../common/validation.js';

/** What a dump names as its target: a pid, a pid file, or a regex that must match exactly one process's command line. */
export type TargetSpec = { pid: number } | { pidFile: string } | { match: string };

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
});

/**
 * `{pid}` | `{pidFile}` | `{match}`: exactly one of the three. pid: positive integer; pidFile: absolute path;
 * match: a valid JavaScript regex (tested against the command line, arguments joined by spaces).
 * Errors name the field (`match`, embedded: `target.match`).
 */
export const targetSpecSchema = targetSpecObject.superRefine((spec, ctx) => {
  const given = (['pid', 'pidFile', 'match'] as const).filter((k) => spec[k] !== undefined);
  if (given.length !== 1) {
    ctx.addIssue({
      code: 'custom',
      message: given.length
        ? `give exactly one of pid, pidFile, match (got ${given.join(', ')})`
        : 'give exactly one of pid, pidFile, match',
    });
  }
}) as unknown as z.ZodType<TargetSpec, TargetSpec>;
