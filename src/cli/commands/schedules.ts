import type { Command } from 'commander';
import { Option } from 'commander';
import type { RunTime, ScheduleRequest } from '../api-client.js';
import { contextOf, type CliContext } from '../context.js';
import { enqueue } from '../enqueue.js';
import { describeTarget, formatTime, schedulesTable, scheduleHealth, scheduleState } from '../format.js';
import { addCriuOptions, addTargetOptions, byteSizeArg, criuFrom, intArg, targetFrom, type CriuFlags, type TargetFlags } from './options.js';

interface AddFlags extends TargetFlags, CriuFlags {
  cron: string;
  timezone?: string;
  stop?: boolean;
  disabled?: boolean;
  overlap?: 'skip' | 'queue';
  missed?: 'skip' | 'runOnce';
  dst?: 'cron' | 'skip';
  keepLast?: number;
  maxAge?: string;
  maxTotalBytes?: number;
  jitterMs?: number;
}

/** The POST /api/v1/schedules body the flags ask for: only what was given, the server applies the defaults. */
export function scheduleRequestFrom(id: string, flags: AddFlags): ScheduleRequest {
  const body: ScheduleRequest = { id, cron: flags.cron, target: targetFrom(flags) };
  if (flags.timezone) body.timezone = flags.timezone;
  if (flags.stop) body.leaveRunning = false;
  if (flags.disabled) body.enabled = false;
  if (flags.overlap) body.overlap = flags.overlap;
  if (flags.missed) body.missed = flags.missed;
  if (flags.dst) body.dst = flags.dst;
  if (flags.jitterMs !== undefined) body.jitterMs = flags.jitterMs;
  const retention: NonNullable<ScheduleRequest['retention']> = {};
  if (flags.keepLast !== undefined) retention.keepLast = flags.keepLast;
  if (flags.maxAge !== undefined) retention.maxAge = flags.maxAge;
  if (flags.maxTotalBytes !== undefined) retention.maxTotalBytes = flags.maxTotalBytes;
  if (Object.keys(retention).length) body.retention = retention;
  const criu = criuFrom(flags);
  if (criu) body.criu = criu;
  return body;
}

/** `schedules` lists; `schedules add|show|rm|pause|resume|trigger|next-runs` manage one; `schedule <id>` shows one. */
export function registerScheduleCommands(program: Command): void {
  const group = program.command('schedules').description('periodic checkpoints (default: list)');

  group
    .command('ls', { isDefault: true })
    .description('list schedules with their state, health and next run')
    .action(async function (this: Command) {
      const ctx = contextOf(this);
      const res = await ctx.client.listSchedules();
      if (ctx.json) return ctx.printJson(res);
      if (!res.items.length) return ctx.err('no schedules');
      ctx.out(schedulesTable(res.items, ctx.c));
    });

  addCriuOptions(
    addTargetOptions(
      group
        .command('add <id>')
        .description('add a schedule: a dump of the target on every cron tick')
        .requiredOption('--cron <expr>', 'crontab(5) expression; 6 fields = seconds first')
        .option('--timezone <tz>', 'IANA time zone the cron fields are read in (default UTC)')
        .option('--stop', 'stop the process after each dump (leaveRunning: false)')
        .option('--disabled', 'add it disabled')
        .addOption(new Option('--overlap <policy>', 'a tick while the previous dump still runs').choices(['skip', 'queue']))
        .addOption(new Option('--missed <policy>', 'ticks missed while no scheduler ran').choices(['skip', 'runOnce']))
        .addOption(new Option('--dst <policy>', 'runs in an hour DST skips or repeats: cron(8) rules, or skip').choices(['cron', 'skip']))
        .option('--keep-last <n>', 'retention: keep the newest N checkpoints', intArg(Number.MIN_SAFE_INTEGER))
        .option('--max-age <duration>', 'retention: remove checkpoints older than this (7d, 12h, 30m)')
        .option('--max-total-bytes <size>', 'retention: keep the total size under this (bytes, or 500M, 2G, 1T)', byteSizeArg)
        .option('--jitter-ms <ms>', 'delay each dump by a random 0..ms', intArg(Number.MIN_SAFE_INTEGER)),
    ),
  ).action(async function (this: Command, id: string, flags: AddFlags) {
    const ctx = contextOf(this);
    const created = await ctx.client.createSchedule(scheduleRequestFrom(id, flags));
    if (ctx.json) return ctx.printJson(created);
    ctx.out(`added schedule ${created.id ?? id}: ${flags.cron} -> dump ${describeTarget(targetFrom(flags))}`);
  });

  group
    .command('show <id>')
    .description('one schedule: definition, state, health, next runs')
    .action(async function (this: Command, id: string) {
      await show(contextOf(this), id);
    });

  group
    .command('rm <id>')
    .description('delete a schedule (its checkpoints stay)')
    .action(async function (this: Command, id: string) {
      const ctx = contextOf(this);
      const res = await ctx.client.deleteSchedule(id);
      if (ctx.json) return ctx.printJson(res);
      ctx.out(`deleted schedule ${id}`);
    });

  for (const action of ['pause', 'resume'] as const) {
    group
      .command(`${action} <id>`)
      .description(action === 'pause' ? 'stop firing until resumed' : 'fire again')
      .action(async function (this: Command, id: string) {
        const ctx = contextOf(this);
        const res = await ctx.client.setSchedulePaused(id, action === 'pause');
        if (ctx.json) return ctx.printJson(res);
        ctx.out(`${action === 'pause' ? 'paused' : 'resumed'} schedule ${id}`);
      });
  }

  group
    .command('trigger <id>')
    .description("fire now: one dump of the schedule's target")
    .option('--wait', 'follow the dump until it ends; exit 1 if it fails')
    .action(async function (this: Command, id: string, flags: { wait?: boolean }) {
      const ctx = contextOf(this);
      await enqueue(ctx, Boolean(flags.wait), async () => {
        const { jobId } = await ctx.client.triggerSchedule(id);
        return { jobIds: [jobId], jobs: { [jobId]: { type: 'dump', what: `schedule ${id}` } }, response: { jobId } };
      });
    });

  group
    .command('next-runs <id>')
    .description('the next times the schedule fires')
    .option('--count <n>', 'how many', intArg(1))
    .option('--from <time>', 'runs after this ISO 8601 time instead of now (e.g. 2027-03-13T00:00:00Z, to see a DST change)')
    .action(async function (this: Command, id: string, flags: { count?: number; from?: string }) {
      const ctx = contextOf(this);
      const res = await ctx.client.nextRuns(id, flags.count, flags.from);
      if (ctx.json) return ctx.printJson(res);
      ctx.out(res.items.map((r) => `${r.local} ${res.timezone}  (${r.at})${dstNote(r)}`).join('\n'));
    });

  program
    .command('schedule <id>')
    .description('show one schedule (same as schedules show)')
    .action(async function (this: Command, id: string) {
      await show(contextOf(this), id);
    });
}

/** What DST did to a run, for next-runs: `  moved: 02:30:00 skipped by DST` or `  repeated: 2nd pass (DST)`. */
function dstNote(run: RunTime): string {
  if (run.dst === 'moved') return `  moved: ${run.due?.slice(11) ?? 'its time'} skipped by DST`;
  if (run.dst === 'repeated') return '  repeated: 2nd pass (DST)';
  return '';
}

async function show(ctx: CliContext, id: string): Promise<void> {
  const [s, next] = await Promise.all([ctx.client.getSchedule(id), ctx.client.nextRuns(id, 3)]);
  if (ctx.json) return ctx.printJson(s);
  const st = s.state;
  const rows: [string, string][] = [
    ['id', `${s.id} (from ${s.origin})`],
    ['cron', `${s.cron} (${s.timezone})`],
    ['target', describeTarget(s.target)],
    ['state', scheduleState(s, ctx.c)],
    ['health', scheduleHealth(s, ctx.c)],
    ['overlap', s.overlap],
    ['missed', s.missed],
    ['dst', s.dst ?? 'cron'],
    ['stops it', s.leaveRunning ? 'no' : 'yes'],
  ];
  if (s.retention) rows.push(['retention', JSON.stringify(s.retention)]);
  if (s.criu) rows.push(['criu', JSON.stringify(s.criu)]);
  if (s.jitterMs) rows.push(['jitter', `${s.jitterMs} ms`]);
  if (st.lastFiredAt) rows.push(['last fired', `${formatTime(st.lastFiredAt)}${st.lastJobId ? ` (job ${st.lastJobId})` : ''}`]);
  if (st.lastCheckpointAt) rows.push(['last ckpt', formatTime(st.lastCheckpointAt)]);
  if (st.lastFailure) rows.push(['last fail', `${formatTime(st.lastFailure.at)}: ${st.lastFailure.reason}`]);
  if (st.lastSkip) rows.push(['last skip', `${formatTime(st.lastSkip.at)}: ${st.lastSkip.reason}`]);
  rows.push(['next runs', next.items.map((r) => r.local).join(', ') || '-']);
  ctx.out(rows.map(([k, v]) => `${(k + ':').padEnd(11)} ${v}`).join('\n'));
}
