import { z } from 'zod';
import { ValidationError, issuesOf, type ValidationIssue } from '../common/validation.js';
import { jobDumpCriuOptionsSchema } from '../criu/options.js';
import { nodeNameSchema, scheduleIdSchema } from '../queue/schemas.js';
import { retentionSchema } from '../retention/schema.js';
import { targetSpecSchema, type TargetSpec } from '../targets/spec.js';
import { CronExpression, CronSyntaxError, DST_POLICIES } from './cron.js';
import { isValidTimeZone } from './zoned-time.js';

/** A schedule's fields, each checked on its own; scheduleSchema adds the rules across them (scheduleRules). */
export const scheduleFieldsSchema = z.strictObject({
  id: scheduleIdSchema,
  /** 5 fields (minute hour day-of-month month day-of-week) or 6 with seconds first; crontab(5) day rule (see cron.ts). */
  cron: z.string().superRefine((expr, ctx) => {
    try {
      CronExpression.parse(expr);
    } catch (e) {
      if (!(e instanceof CronSyntaxError)) throw e;
      ctx.addIssue({ code: 'custom', message: e.reason });
    }
  }),
  /** IANA time zone the cron fields are read in. */
  timezone: z
    .string()
    .superRefine((tz, ctx) => {
      if (!isValidTimeZone(tz)) ctx.addIssue({ code: 'custom', message: `unknown time zone "${tz}" (an IANA name like Europe/Berlin or UTC)` });
    })
    .default('UTC'),
  /**
   * Runs whose wall-clock time a DST change skips or repeats: `cron` as cron(8) does (a fixed-time run skipped by the
   * gap runs right after it, once in a repeated hour; other runs on both passes), or `skip` (a skipped time has no
   * run, a repeated time runs once). See CronExpression.fixedTime.
   */
  dst: z.enum(DST_POLICIES).default('cron'),
  /** Resolved when each tick fires, not when the schedule is saved. */
  target: targetSpecSchema,
  /** The node (host) whose process the target names: only schedulers of that node run it. Default: every scheduler. */
  node: nodeNameSchema.optional(),
  /** CRIU options for the dumps (the same safe subset as a dump job's). */
  criu: jobDumpCriuOptionsSchema.optional(),
  leaveRunning: z.boolean().default(true),
  enabled: z.boolean().default(true),
  /** A tick while this schedule's previous job is still waiting or running: skip it, or queue another dump. */
  overlap: z.enum(['skip', 'queue']).default('skip'),
  /** Ticks missed while no scheduler ran: forget them, or run once for the latest (within the configured tolerance). */
  missed: z.enum(['skip', 'runOnce']).default('runOnce'),
  retention: retentionSchema.optional(),
  /** Each tick's dump is delayed by a random 0..jitterMs (spreads many schedules on one tick). */
  jitterMs: z.number().int().min(0).max(3_600_000).optional(),
  /** Restore drills of the schedule's checkpoints: true drills every one, N every Nth (workers/drill-processor.ts). */
  verify: z.union([z.boolean(), z.number().int().min(1).max(1_000_000)]).optional(),
});

/**
 * The rules across a schedule's fields. A `{pid}` target names one process: a schedule that stops it (leaveRunning
 * false) would, from its next tick on, dump and stop whichever process has that pid by then.
 */
export function scheduleRules(schedule: { target: TargetSpec; leaveRunning: boolean }, ctx: z.RefinementCtx): void {
  if ('pid' in schedule.target && !schedule.leaveRunning) {
    ctx.addIssue({
      code: 'custom',
      path: ['leaveRunning'],
      message:
        `false with a {pid} target: the first tick stops pid ${schedule.target.pid}, and a later one would dump and stop ` +
        'whichever process has that pid by then; name the process by pidFile, match or workload',
    });
  }
}

/**
 * A schedule: one schema for config/*.yaml and for the API. Unknown keys are refused (a typo must not be ignored).
 * Defaults: timezone UTC, dst cron, leaveRunning true, enabled true, overlap skip, missed runOnce, no retention, no jitter.
 */
export const scheduleSchema = scheduleFieldsSchema.superRefine(scheduleRules);

/** A validated schedule, defaults applied, durations in ms. */
export type Schedule = z.output<typeof scheduleSchema>;
/** What a user writes. */
export type ScheduleInput = z.input<typeof scheduleSchema>;

/**
 * Validates the `schedules:` list of a config file. Throws one ValidationError naming the file, and per problem
 * the schedule (index and id) and the field: `invalid config a.yaml: schedules.1 (nightly).cron: minute field ...`.
 */
export function loadSchedulesFromConfig(items: unknown[], file: string): Schedule[] {
  const issues: ValidationIssue[] = [];
  const schedules: Schedule[] = [];
  const seen = new Map<string, number>();
  items.forEach((item, i) => {
    const id = item && typeof item === 'object' && typeof (item as { id?: unknown }).id === 'string' ? (item as { id: string }).id : undefined;
    const where = `schedules.${i}${id ? ` (${id})` : ''}`;
    const r = scheduleSchema.safeParse(item);
    if (!r.success) {
      for (const issue of issuesOf(r.error)) issues.push({ field: issue.field ? `${where}.${issue.field}` : where, reason: issue.reason });
      return;
    }
    const first = seen.get(r.data.id);
    if (first !== undefined) {
      issues.push({ field: `${where}.id`, reason: `duplicate id, also used by schedules.${first}` });
      return;
    }
    seen.set(r.data.id, i);
    schedules.push(r.data);
  });
  if (issues.length) throw new ValidationError(issues, `config ${file}`);
  return schedules;
}
