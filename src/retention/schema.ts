import { z } from 'zod';
import { byteSizeSchema } from '../common/byte-size.js';

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** "7d", "12h", "30m", "45s", "500ms", "1w" (also combined: "1d12h"), or a number of milliseconds. Output: ms. */
export const durationSchema = z
  .union([z.number(), z.string()], { error: 'a duration: like 7d, 12h, 30m, 45s, 500ms, 1d12h, or milliseconds' })
  .transform((value, ctx) => {
    const ms = typeof value === 'number' ? (Number.isInteger(value) && value > 0 ? value : null) : parseDuration(value);
    if (ms === null) {
      ctx.addIssue({ code: 'custom', message: `not a duration: ${JSON.stringify(value)} (like 7d, 12h, 30m, 45s, 500ms, 1d12h, or milliseconds)` });
      return z.NEVER;
    }
    return ms;
  });

export function parseDuration(text: string): number | null {
  const s = text.trim().toLowerCase();
  if (!/^(\d+(ms|s|m|h|d|w))+$/.test(s)) return null;
  let total = 0;
  for (const [, n, unit] of s.matchAll(/(\d+)(ms|s|m|h|d|w)/g)) total += Number(n) * DURATION_UNITS[unit!]!;
  return total > 0 ? total : null;
}

export const retentionSchema = z
  .strictObject({
    /** Keep the newest N unpinned checkpoints of the schedule. */
    keepLast: z.number().int().min(1).optional(),
    /** Remove checkpoints older than this ("7d", "12h", or ms). */
    maxAge: durationSchema.optional(),
    /** Remove the oldest while the checkpoints (pinned ones included) take more than this many bytes ("20G" too). */
    maxTotalBytes: byteSizeSchema(1).optional(),
  })
  .refine((r) => r.keepLast !== undefined || r.maxAge !== undefined || r.maxTotalBytes !== undefined, {
    message: 'give at least one of keepLast, maxAge, maxTotalBytes (or leave retention out)',
  });

/** A validated retention policy (durations in ms). */
export type Retention = z.output<typeof retentionSchema>;
