import cron from 'node-cron';
import { addDays, dayClock, wallTimeAt, weekdayOf, type DayClock, type WallTime } from './zoned-time.js';

/** A cron expression that cannot be used; `message` says which field and why. */
export class CronSyntaxError extends Error {
  readonly code = 'ECRON';
  constructor(
    readonly expression: string,
    readonly reason: string,
  ) {
    super(`cron "${expression}": ${reason}`);
    this.name = 'CronSyntaxError';
  }
}

const NICKNAMES: Record<string, string> = {
  '@yearly': '0 0 1 1 *',
  '@annually': '0 0 1 1 *',
  '@monthly': '0 0 1 * *',
  '@weekly': '0 0 * * 0',
  '@daily': '0 0 * * *',
  '@midnight': '0 0 * * *',
  '@hourly': '0 * * * *',
};

const FIELD_HELP: Record<string, { label: string; allowed: string }> = {
  second: { label: 'second', allowed: '0-59' },
  minute: { label: 'minute', allowed: '0-59' },
  hour: { label: 'hour', allowed: '0-23' },
  dayOfMonth: { label: 'day-of-month', allowed: '1-31' },
  month: { label: 'month', allowed: '1-12 or jan-dec' },
  dayOfWeek: { label: 'day-of-week', allowed: '0-7 or sun-sat' },
};

const DAYS_IN_MONTH = [0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
/** How far next()/prev() look for a matching day: covers Feb 29 on a given weekday (28 years) with room to spare. */
const MAX_DAYS_SEARCHED = 366 * 30;

/**
 * A cron expression with crontab(5)'s meaning: 5 fields (minute hour day-of-month month day-of-week), or 6 with a
 * seconds field first; names (jan, mon), ranges, steps, lists, and @hourly/@daily/@weekly/@monthly/@yearly.
 *
 * Day rule, as crontab(5) and Vixie cron have it: when day-of-month and day-of-week are both restricted (neither
 * starts with `*`), a day matching EITHER fires; otherwise both must match (node-cron, which validates the fields,
 * would require both). For that case the shared tick timer is given the time fields only (`tickPattern`, firing every
 * day of the months) and each schedule keeps a tick only when `matchesDay` says so.
 *
 * Quartz extensions node-cron also accepts (L, W, #) are refused: they are not crontab(5).
 *
 * DST, as cron(8) (Vixie/ISC cron) has it unless the schedule asks otherwise (DstPolicy): see `fixedTime`.
 */
export class CronExpression {
  private readonly hoursDesc: number[];
  private readonly minutesDesc: number[];
  private readonly secondsDesc: number[];

  private constructor(
    /** As written by the user. */
    readonly source: string,
    /** The 6-field pattern the tick timer runs on (TickPool): schedules with the same one share a timer. */
    readonly tickPattern: string,
    /** True when day-of-month and day-of-week are both restricted (either one matching suffices). */
    readonly eitherDayMatches: boolean,
    /**
     * cron(8)'s "fixed-time" job: none of the time fields (minute, hour, and seconds when given) starts with `*`.
     * Across DST, a fixed-time run skipped by a gap runs right after it and runs once in a repeated hour; other
     * ("wildcard") runs are not made up for in a gap and run on both passes of a repeated hour.
     */
    readonly fixedTime: boolean,
    private readonly seconds: number[],
    private readonly minutes: number[],
    private readonly hours: number[],
    private readonly daysOfMonth: Set<number>,
    private readonly months: Set<number>,
    private readonly daysOfWeek: Set<number>,
  ) {
    const desc = (v: number[]) => [...v].reverse();
    this.hoursDesc = desc(hours);
    this.minutesDesc = desc(minutes);
    this.secondsDesc = desc(seconds);
  }

  /** Parses and validates; throws CronSyntaxError naming the field and the reason. */
  static parse(source: string): CronExpression {
    if (typeof source !== 'string' || !source.trim()) throw new CronSyntaxError(String(source), 'empty expression');
    let text = source.trim().replace(/\s+/g, ' ');
    if (text.startsWith('@')) {
      const expanded = NICKNAMES[text.toLowerCase()];
      if (!expanded) throw new CronSyntaxError(source, `unknown nickname ${text} (known: ${Object.keys(NICKNAMES).join(', ')})`);
      text = expanded;
    }
    const raw = text.split(' ');
    if (raw.length !== 5 && raw.length !== 6) {
      throw new CronSyntaxError(
        source,
        `expected 5 fields (minute hour day-of-month month day-of-week) or 6 (seconds first), got ${raw.length}`,
      );
    }
    const [second, minute, hour, dom, month, dow] = (raw.length === 5 ? ['0', ...raw] : raw) as [
      string,
      string,
      string,
      string,
      string,
      string,
    ];
    // Months are validated on their own so that an "impossible" day-of-month for the months (node-cron's check)
    // is judged by crontab's rule below, not node-cron's.
    const dayAndTime = validated(source, `${second} ${minute} ${hour} ${dom} * ${dow}`);
    const monthsOnly = validated(source, `0 0 0 * ${month} *`);
    const numbers = (field: 'dayOfMonth' | 'dayOfWeek', values: (number | string)[]) => {
      const odd = values.find((v) => typeof v !== 'number');
      if (odd !== undefined) {
        throw new CronSyntaxError(source, `${FIELD_HELP[field]!.label} "${odd}": L, W and # are not crontab(5) syntax`);
      }
      return values as number[];
    };
    const daysOfMonth = new Set(numbers('dayOfMonth', dayAndTime.dayOfMonth));
    const daysOfWeek = new Set(numbers('dayOfWeek', dayAndTime.dayOfWeek));
    const months = new Set(monthsOnly.month);
    const restricted = (field: string) => !field.startsWith('*') && !field.startsWith('?');
    const eitherDayMatches = restricted(dom) && restricted(dow);
    const fixedTime = restricted(second) && restricted(minute) && restricted(hour);
    if (!eitherDayMatches && ![...months].some((m) => [...daysOfMonth].some((d) => d <= DAYS_IN_MONTH[m]!))) {
      throw new CronSyntaxError(source, `day-of-month "${dom}" never occurs in month "${month}"`);
    }
    const tickPattern = eitherDayMatches
      ? `${second} ${minute} ${hour} * ${month} *`
      : `${second} ${minute} ${hour} ${dom} ${month} ${dow}`;
    const asc = (v: number[]) => [...v].sort((a, b) => a - b);
    return new CronExpression(
      source,
      tickPattern,
      eitherDayMatches,
      fixedTime,
      asc(dayAndTime.second),
      asc(dayAndTime.minute),
      asc(dayAndTime.hour),
      daysOfMonth,
      months,
      daysOfWeek,
    );
  }

  /** Whether a calendar date (in the schedule's zone) is a day this expression runs on. */
  matchesDay(year: number, month: number, day: number): boolean {
    if (!this.months.has(month)) return false;
    const domOk = this.daysOfMonth.has(day);
    const dowOk = this.daysOfWeek.has(weekdayOf(year, month, day));
    return this.eitherDayMatches ? domOk || dowOk : domOk && dowOk;
  }

  /** Whether `epochMs` (to the second) is a run time in `timeZone`, DST rules included. */
  matches(epochMs: number, timeZone: string, dst: DstPolicy = 'cron'): boolean {
    const t = Math.floor(epochMs / 1000) * 1000;
    // A run at t is due on t's wall date or (moved past a gap across midnight) the day before; the search may start a
    // day earlier still, so three days suffice.
    return this.search(t - 1, timeZone, dst, 1, 3)?.at === t;
  }

  /** The first run time strictly after `afterMs`, or null if none within 30 years. */
  next(afterMs: number, timeZone: string, dst: DstPolicy = 'cron'): number | null {
    return this.nextRun(afterMs, timeZone, dst)?.at ?? null;
  }

  /** Like next(), saying whether DST moved or repeated the run. */
  nextRun(afterMs: number, timeZone: string, dst: DstPolicy = 'cron'): Run | null {
    return this.search(afterMs, timeZone, dst, 1, MAX_DAYS_SEARCHED);
  }

  /** The last run time strictly before `beforeMs`, or null if none within 30 years. */
  prev(beforeMs: number, timeZone: string, dst: DstPolicy = 'cron'): number | null {
    return this.search(beforeMs, timeZone, dst, -1, MAX_DAYS_SEARCHED)?.at ?? null;
  }

  /** The next `count` runs after `afterMs` (epoch ms), in order. */
  runs(afterMs: number, count: number, timeZone: string, dst: DstPolicy = 'cron'): Run[] {
    const runs: Run[] = [];
    let from = afterMs;
    while (runs.length < count) {
      const run = this.nextRun(from, timeZone, dst);
      if (run === null) break;
      runs.push(run);
      from = run.at;
    }
    return runs;
  }

  /** The next `count` run times after `afterMs` (epoch ms), in order. */
  nextRuns(afterMs: number, count: number, timeZone: string, dst: DstPolicy = 'cron'): number[] {
    return this.runs(afterMs, count, timeZone, dst).map((r) => r.at);
  }

  /**
   * Walks day by day (forward or back) from `fromMs`'s wall-clock date. Each day is a few spans of wall time in
   * instant order (see spansOf), each read with one UTC offset, so within a span the time fields are searched with
   * arithmetic alone, and a gap is passed in one step.
   */
  private search(fromMs: number, timeZone: string, dst: DstPolicy, dir: 1 | -1, maxDays: number): Run | null {
    const start = wallTimeAt(fromMs, timeZone);
    let date = { year: start.year, month: start.month, day: start.day };
    // A clock change near midnight can put runs of the neighbouring day on this side of fromMs.
    if (dayClock(date.year, date.month, date.day, timeZone).changeAt !== null) date = addDays(date.year, date.month, date.day, -dir);
    for (let i = 0; i < maxDays; i++, date = addDays(date.year, date.month, date.day, dir)) {
      if (!this.matchesDay(date.year, date.month, date.day)) continue;
      const spans = spansOf(dayClock(date.year, date.month, date.day, timeZone));
      if (dir === -1) spans.reverse();
      for (const span of spans) {
        const found = this.searchSpan(span, fromMs, dst, dir);
        if (found === null) continue;
        const { dueSecond, ...run } = found;
        if (dueSecond === undefined) return { ...run, date };
        const due = { ...date, hour: Math.floor(dueSecond / 3600), minute: Math.floor(dueSecond / 60) % 60, second: dueSecond % 60 };
        return { ...run, date, due };
      }
    }
    return null;
  }

  /** The first (dir 1) or last (dir -1) run of one span strictly after / before `fromMs`. */
  private searchSpan(span: Span, fromMs: number, dst: DstPolicy, dir: 1 | -1): SpanRun | null {
    const { naive } = span;
    if (span.kind === 'gap') {
      // Fixed-time jobs due in the gap run once, when it ends (cron(8)); otherwise the gap has no runs.
      if (dst !== 'cron' || !this.fixedTime || (span.changeAt - fromMs) * dir <= 0) return null;
      const due = this.secondOfDayFrom(span.from);
      if (due === null || due >= span.to) return null;
      return { at: span.changeAt, dst: 'moved', dueSecond: due };
    }
    // The second pass of a repeated hour runs wildcard jobs only (cron(8)).
    if (span.kind === 'repeat' && (dst !== 'cron' || this.fixedTime)) return null;
    // Wall second s happens at naive + s * 1000 - offset; bound it to the side of fromMs we look at.
    const fromSecond = (fromMs + span.offset - naive) / 1000;
    const found =
      dir === 1
        ? this.secondOfDayFrom(Math.max(span.from, Math.floor(fromSecond) + 1))
        : this.secondOfDayUpTo(Math.min(span.to - 1, Math.ceil(fromSecond) - 1));
    if (found === null || found < span.from || found >= span.to) return null;
    return { at: naive + found * 1000 - span.offset, ...(span.kind === 'repeat' ? { dst: 'repeated' as const } : {}) };
  }

  /** The first matching second of a day at or after `s` (seconds since midnight), or null. */
  private secondOfDayFrom(s: number): number | null {
    if (s >= 86_400) return null;
    const h0 = Math.floor(s / 3600);
    const m0 = Math.floor(s / 60) % 60;
    const s0 = s % 60;
    for (const hour of this.hours) {
      if (hour < h0) continue;
      for (const minute of this.minutes) {
        if (hour === h0 && minute < m0) continue;
        const lowest = hour === h0 && minute === m0 ? s0 : 0;
        const second = this.seconds.find((x) => x >= lowest);
        if (second !== undefined) return hour * 3600 + minute * 60 + second;
      }
    }
    return null;
  }

  /** The last matching second of a day at or before `s`, or null. */
  private secondOfDayUpTo(s: number): number | null {
    if (s < 0) return null;
    const h0 = Math.floor(s / 3600);
    const m0 = Math.floor(s / 60) % 60;
    const s0 = s % 60;
    for (const hour of this.hoursDesc) {
      if (hour > h0) continue;
      for (const minute of this.minutesDesc) {
        if (hour === h0 && minute > m0) continue;
        const highest = hour === h0 && minute === m0 ? s0 : 59;
        const second = this.secondsDesc.find((x) => x <= highest);
        if (second !== undefined) return hour * 3600 + minute * 60 + second;
      }
    }
    return null;
  }
}

/** How runs fall across DST changes; see the README (Schedules). */
export type DstPolicy = 'cron' | 'skip';
export const DST_POLICIES = ['cron', 'skip'] as const satisfies readonly DstPolicy[];

/** One run time. */
export interface Run {
  /** The instant (ms since the epoch). */
  at: number;
  /** The calendar date (in the schedule's zone) the run is due on. */
  date: { year: number; month: number; day: number };
  /**
   * Set when DST changed the run: `moved` when its wall-clock time was skipped (clocks went forward) and it runs
   * right after the gap; `repeated` for the second pass of a wall-clock time the clocks went back over.
   */
  dst?: 'moved' | 'repeated';
  /** For a moved run: the (first) skipped wall-clock time it was due at. */
  due?: WallTime;
}

type SpanRun = Omit<Run, 'date' | 'due'> & { dueSecond?: number };

/**
 * A stretch of one day's wall clock (seconds since midnight, [from, to)) read with one UTC offset; the spans of a
 * day come in instant order. `repeat`: the second pass of wall times the clocks went back over. `gap`: wall times
 * the clocks skipped; they do not happen, `changeAt` is the instant the gap ends.
 */
type Span =
  | { kind: 'plain' | 'repeat'; naive: number; from: number; to: number; offset: number }
  | { kind: 'gap'; naive: number; from: number; to: number; changeAt: number };

const DAY_SECONDS = 86_400;

function spansOf(clock: DayClock): Span[] {
  const { naive, offsetBefore, offsetAfter, changeAt } = clock;
  if (changeAt === null) return [{ kind: 'plain', naive, from: 0, to: DAY_SECONDS, offset: offsetBefore }];
  // Wall times (seconds of the day) at which the change happens, read with the old and with the new offset.
  const leaving = (changeAt + offsetBefore - naive) / 1000;
  const arriving = (changeAt + offsetAfter - naive) / 1000;
  const clamp = (x: number) => Math.min(DAY_SECONDS, Math.max(0, x));
  const spans: Span[] =
    arriving > leaving
      ? [
          { kind: 'plain', naive, from: 0, to: clamp(leaving), offset: offsetBefore },
          { kind: 'gap', naive, from: clamp(leaving), to: clamp(arriving), changeAt },
          { kind: 'plain', naive, from: clamp(arriving), to: DAY_SECONDS, offset: offsetAfter },
        ]
      : [
          { kind: 'plain', naive, from: 0, to: clamp(leaving), offset: offsetBefore },
          { kind: 'repeat', naive, from: clamp(arriving), to: clamp(leaving), offset: offsetAfter },
          { kind: 'plain', naive, from: clamp(leaving), to: DAY_SECONDS, offset: offsetAfter },
        ];
  return spans.filter((s) => s.from < s.to);
}

function validated(source: string, pattern: string) {
  const r = cron.validateDetailed(pattern);
  if (r.valid && r.fields) return r.fields;
  const e = r.errors[0]!;
  const help = FIELD_HELP[e.field];
  throw new CronSyntaxError(
    source,
    help ? `${help.label} field "${e.value}" is not valid (allowed: ${help.allowed}, with ranges a-b, steps */n or a-b/n, lists a,b)` : e.message,
  );
}

/** The next `n` run times of a schedule after `from` (default now), read in the schedule's time zone. */
export function nextRuns(schedule: { cron: string; timezone: string; dst?: DstPolicy }, n = 5, from = Date.now()): Date[] {
  return CronExpression.parse(schedule.cron)
    .nextRuns(from, n, schedule.timezone, schedule.dst)
    .map((t) => new Date(t));
}

