import cron from 'node-cron';
import { addDays, instantOf, wallTimeAt, weekdayOf } from './zoned-time.js';

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
 * starts with `*`), a day matching EITHER fires; otherwise both must match. node-cron alone always requires both, so
 * for that case node-cron is given the time fields only (`tickPattern`, firing every day of the months) and the
 * scheduler keeps a tick only when `matchesDay` says so.
 *
 * Quartz extensions node-cron also accepts (L, W, #) are refused: they are not crontab(5).
 */
export class CronExpression {
  private constructor(
    /** As written by the user. */
    readonly source: string,
    /** The 6-field pattern handed to node-cron. */
    readonly tickPattern: string,
    /** True when day-of-month and day-of-week are both restricted (either one matching suffices). */
    readonly eitherDayMatches: boolean,
    private readonly seconds: number[],
    private readonly minutes: number[],
    private readonly hours: number[],
    private readonly daysOfMonth: Set<number>,
    private readonly months: Set<number>,
    private readonly daysOfWeek: Set<number>,
  ) {}

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

  /** Whether `epochMs` (to the second) is a run time in `timeZone`. */
  matches(epochMs: number, timeZone: string): boolean {
    const w = wallTimeAt(epochMs, timeZone);
    return (
      this.matchesDay(w.year, w.month, w.day) &&
      this.hours.includes(w.hour) &&
      this.minutes.includes(w.minute) &&
      this.seconds.includes(w.second)
    );
  }

  /** The first run time strictly after `afterMs`, or null if none within 30 years. */
  next(afterMs: number, timeZone: string): number | null {
    return this.search(afterMs, timeZone, 1);
  }

  /** The last run time strictly before `beforeMs`, or null if none within 30 years. */
  prev(beforeMs: number, timeZone: string): number | null {
    return this.search(beforeMs, timeZone, -1);
  }

  /** The next `count` run times after `afterMs` (epoch ms), in order. */
  nextRuns(afterMs: number, count: number, timeZone: string): number[] {
    const runs: number[] = [];
    let from = afterMs;
    while (runs.length < count) {
      const t = this.next(from, timeZone);
      if (t === null) break;
      runs.push(t);
      from = t;
    }
    return runs;
  }

  /** Walks day by day (forward or back) from `fromMs`'s wall-clock date; within a day, time fields in order. */
  private search(fromMs: number, timeZone: string, dir: 1 | -1): number | null {
    const start = wallTimeAt(fromMs, timeZone);
    const startSecondOfDay = start.hour * 3600 + start.minute * 60 + start.second;
    const order = <T>(v: T[]) => (dir === 1 ? v : [...v].reverse());
    const [hours, minutes, seconds] = [order(this.hours), order(this.minutes), order(this.seconds)];
    let date = { year: start.year, month: start.month, day: start.day };
    for (let i = 0; i < MAX_DAYS_SEARCHED; i++, date = addDays(date.year, date.month, date.day, dir)) {
      if (!this.matchesDay(date.year, date.month, date.day)) continue;
      // On the first day, wall times on the wrong side of the start cannot be the answer.
      const firstDay = i === 0;
      for (const hour of hours) {
        if (firstDay && (hour - start.hour) * dir < 0) continue;
        for (const minute of minutes) {
          if (firstDay && hour === start.hour && (minute - start.minute) * dir < 0) continue;
          for (const second of seconds) {
            if (firstDay && (hour * 3600 + minute * 60 + second - startSecondOfDay) * dir < 0) continue;
            const t = instantOf({ ...date, hour, minute, second }, timeZone);
            if (t !== null && (t - fromMs) * dir > 0) return t;
          }
        }
      }
    }
    return null;
  }
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
export function nextRuns(schedule: { cron: string; timezone: string }, n = 5, from = Date.now()): Date[] {
  return CronExpression.parse(schedule.cron)
    .nextRuns(from, n, schedule.timezone)
    .map((t) => new Date(t));
}

