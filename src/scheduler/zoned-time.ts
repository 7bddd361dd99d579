/** Wall-clock arithmetic in an IANA time zone, with nothing but Intl (no tz database of our own). */

export interface WallTime {
  year: number;
  /** 1-12 */
  month: number;
  /** 1-31 */
  day: number;
  hour: number;
  minute: number;
  second: number;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatterFor(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(timeZone, f);
  }
  return f;
}

/** True when `timeZone` is an IANA zone this runtime knows (e.g. "Europe/Berlin", "UTC"). */
export function isValidTimeZone(timeZone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone });
    return true;
  } catch {
    return false;
  }
}

/** en-US with h23 formats "3/28/2027, 02:00:00": read it with a regex, about 3x faster than formatToParts. */
const EN_US = /^(\d+)\/(\d+)\/(\d+), (\d+):(\d+):(\d+)$/;

/** The wall-clock time at `epochMs` in `timeZone` (to the second). */
export function wallTimeAt(epochMs: number, timeZone: string): WallTime {
  const formatter = formatterFor(timeZone);
  const date = new Date(epochMs);
  const m = EN_US.exec(formatter.format(date));
  if (m) return { year: +m[3]!, month: +m[1]!, day: +m[2]!, hour: +m[4]!, minute: +m[5]!, second: +m[6]! };
  // Another ICU may format differently (years before 1000, say): the parts, then.
  const parts: Record<string, number> = {};
  for (const p of formatter.formatToParts(date)) {
    if (p.type !== 'literal') parts[p.type] = Number(p.value);
  }
  return {
    year: parts.year!,
    month: parts.month!,
    day: parts.day!,
    hour: parts.hour!,
    minute: parts.minute!,
    second: parts.second!,
  };
}

/** UTC offset (ms, east positive) of `timeZone` at `epochMs`. */
function offsetAt(epochMs: number, timeZone: string): number {
  const w = wallTimeAt(epochMs, timeZone);
  const asUtc = Date.UTC(w.year, w.month - 1, w.day, w.hour, w.minute, w.second);
  return asUtc - Math.floor(epochMs / 1000) * 1000;
}

/**
 * How one calendar day's wall clock maps to instants: the UTC offset in force, and when the day has a clock change
 * (DST), the instant of the change and the offset after it.
 */
export interface DayClock {
  /** Date.UTC of the day's midnight as if the zone were UTC: wall time `s` seconds into the day reads `naive + s * 1000`. */
  naive: number;
  /** UTC offset (ms, east positive) before the change, or all day. */
  offsetBefore: number;
  /** UTC offset after the change; equal to offsetBefore on a day without one. */
  offsetAfter: number;
  /** Instant of the change (the first instant read with offsetAfter); null on a day without one. */
  changeAt: number | null;
}

const HOUR = 3600_000;

/** Recently used day clocks (a schedule's next runs mostly fall on the same few days): bounded, oldest out first. */
const clocks = new Map<string, DayClock>();
const CLOCKS_KEPT = 512;

/**
 * The clock of a calendar day in `timeZone`. Every wall time of a day happens within [midnight - 14 h, midnight + 36 h]
 * (UTC offsets span -12 h..+14 h), so the offsets just outside that window bracket any change affecting the day; a
 * change between them is found by bisection. Assumes at most one change in that 52-hour window (zones change a few
 * times a year). Two Intl calls for most days, about ten near a change; remembered for the last 512 days asked.
 */
export function dayClock(year: number, month: number, day: number, timeZone: string): DayClock {
  const naive = Date.UTC(year, month - 1, day);
  const key = `${timeZone} ${naive}`;
  let clock = clocks.get(key);
  if (!clock) {
    clock = computeDayClock(naive, timeZone);
    if (clocks.size >= CLOCKS_KEPT) clocks.delete(clocks.keys().next().value!);
    clocks.set(key, clock);
  }
  return clock;
}

const QUARTER_HOUR = 900_000;

/** The last clock change found per zone: the days either side of a change see it too, and need no second search. */
const lastChange = new Map<string, { at: number; offsetBefore: number; offsetAfter: number }>();

function computeDayClock(naive: number, timeZone: string): DayClock {
  let lo = naive - 15 * HOUR;
  let hi = naive + 37 * HOUR;
  const offsetBefore = offsetAt(lo, timeZone);
  const offsetAfter = offsetAt(hi, timeZone);
  if (offsetBefore === offsetAfter) return { naive, offsetBefore, offsetAfter, changeAt: null };
  const known = lastChange.get(timeZone);
  if (known && known.at > lo && known.at <= hi && known.offsetBefore === offsetBefore && known.offsetAfter === offsetAfter) {
    return { naive, offsetBefore, offsetAfter, changeAt: known.at };
  }
  // Invariant: lo reads offsetBefore, hi offsetAfter. Changes fall on a quarter hour nearly always: bisect at that
  // grain first, then to the second only when the change is not at the end of its quarter hour.
  const narrow = (grain: number) => {
    while (hi - lo > grain) {
      const mid = lo + Math.floor((hi - lo) / (2 * grain)) * grain;
      if (offsetAt(mid, timeZone) === offsetBefore) lo = mid;
      else hi = mid;
    }
  };
  narrow(QUARTER_HOUR);
  if (offsetAt(hi - 1000, timeZone) !== offsetBefore) narrow(1000);
  lastChange.set(timeZone, { at: hi, offsetBefore, offsetAfter });
  return { naive, offsetBefore, offsetAfter, changeAt: hi };
}

/**
 * The instant a wall-clock time happens in `timeZone`. Null when it does not exist (skipped by a DST jump);
 * the earlier instant when it happens twice (the hour repeated when clocks go back).
 */
export function instantOf(w: WallTime, timeZone: string): number | null {
  const clock = dayClock(w.year, w.month, w.day, timeZone);
  const naive = clock.naive + ((w.hour * 60 + w.minute) * 60 + w.second) * 1000;
  const before = naive - clock.offsetBefore;
  if (clock.changeAt === null || before < clock.changeAt) return before;
  const after = naive - clock.offsetAfter;
  return after >= clock.changeAt ? after : null;
}

/** Day of week (0 = Sunday) of a calendar date. */
export function weekdayOf(year: number, month: number, day: number): number {
  return new Date(Date.UTC(year, month - 1, day)).getUTCDay();
}

/** The calendar date `delta` days from the given one. */
export function addDays(year: number, month: number, day: number, delta: number): { year: number; month: number; day: number } {
  const d = new Date(Date.UTC(year, month - 1, day + delta));
  return { year: d.getUTCFullYear(), month: d.getUTCMonth() + 1, day: d.getUTCDate() };
}
