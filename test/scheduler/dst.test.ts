import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CronExpression, type DstPolicy } from '../../src/scheduler/cron.js';
import { instantOf, wallTimeAt, type WallTime } from '../../src/scheduler/zoned-time.js';

// Cron across DST changes. Run times as cron(8) (Vixie/ISC cron) has them by default, `dst: skip` on request;
// zones more than 12 h ahead of UTC included. Instants are UTC.

const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());
const utc = (s: string) => Date.parse(s);
const MINUTE = 60_000;

// ---- issue 13, section 1: zones ahead of UTC+12 (next runs across a change, then the day after) -------------------

const aheadCases: [expression: string, zone: string, after: string, expected: string[]][] = [
  ['30 2 * * *', 'Pacific/Chatham', '2027-04-02T00:00Z', ['2027-04-02T12:45:00.000Z', '2027-04-03T12:45:00.000Z']],
  ['15 2 * * *', 'Pacific/Chatham', '2027-09-24T00:00Z', ['2027-09-24T13:30:00.000Z', '2027-09-25T13:30:00.000Z']],
  ['30 2 4 APR *', 'Pacific/Chatham', '2027-01-01T00:00Z', ['2027-04-03T12:45:00.000Z']],
  ['0 * * * *', 'Pacific/Chatham', '2027-09-25T12:30Z', ['2027-09-25T13:15:00.000Z', '2027-09-25T14:15:00.000Z']],
  ['30 2 * * *', 'Pacific/Auckland', '2027-04-02T00:00Z', ['2027-04-02T13:30:00.000Z', '2027-04-03T13:30:00.000Z']],
  ['0 2 * * SUN', 'Pacific/Auckland', '2027-03-30T00:00Z', ['2027-04-03T13:00:00.000Z']],
];
for (const [expression, zone, after, expected] of aheadCases) {
  test(`${zone}, "${expression}" after ${after}: ${expected.join(', ')} (next, nextRuns and matches agree)`, () => {
    const c = CronExpression.parse(expression);
    assert.deepEqual(c.nextRuns(utc(after), expected.length, zone).map(iso), expected);
    assert.equal(iso(c.next(utc(after), zone)), expected[0]);
    for (const run of expected) {
      assert.equal(c.matches(utc(run), zone), true, `${run} is a run time`);
      assert.equal(c.prev(utc(run) + 1, zone), utc(run), `prev finds ${run}`);
    }
  });
}

test('Pacific/Chatham, prev of "30 2 * * *" before 2027-04-04T00:00Z is 2027-04-03T12:45Z (the day of the change)', () => {
  assert.equal(iso(CronExpression.parse('30 2 * * *').prev(utc('2027-04-04T00:00Z'), 'Pacific/Chatham')), '2027-04-03T12:45:00.000Z');
});

// ---- issue 13, section 2: cron(8)'s rules for skipped and repeated hours --------------------------------------------

test('a fixed-time run in the skipped hour runs once right after the gap (America/New_York, 2027-03-14); dst skip leaves it out', () => {
  const c = CronExpression.parse('30 2 * * *');
  const runs = c.runs(utc('2027-03-13T12:00Z'), 2, 'America/New_York');
  assert.deepEqual(runs.map((r) => iso(r.at)), ['2027-03-14T07:00:00.000Z', '2027-03-15T06:30:00.000Z']);
  assert.equal(runs[0]!.dst, 'moved');
  assert.deepEqual(runs[0]!.due, { year: 2027, month: 3, day: 14, hour: 2, minute: 30, second: 0 });
  assert.equal(runs[1]!.dst, undefined);
  assert.equal(c.prev(utc('2027-03-14T07:00:01Z'), 'America/New_York'), utc('2027-03-14T07:00Z'));
  assert.equal(c.matches(utc('2027-03-14T07:00Z'), 'America/New_York'), true);
  // dst: skip, the behaviour before cron(8)'s rules: no run that day.
  assert.deepEqual(c.nextRuns(utc('2027-03-13T12:00Z'), 1, 'America/New_York', 'skip').map(iso), ['2027-03-15T06:30:00.000Z']);
  assert.equal(c.matches(utc('2027-03-14T07:00Z'), 'America/New_York', 'skip'), false);
});

test('several fixed times in one gap make one run; one at the gap end too (no second run at the same instant)', () => {
  const zone = 'America/New_York';
  assert.deepEqual(CronExpression.parse('0,30 2 * * *').nextRuns(utc('2027-03-14T05:00Z'), 2, zone).map(iso), [
    '2027-03-14T07:00:00.000Z',
    '2027-03-15T06:00:00.000Z',
  ]);
  assert.deepEqual(CronExpression.parse('0,30 2,3 * * *').nextRuns(utc('2027-03-14T05:00Z'), 3, zone).map(iso), [
    '2027-03-14T07:00:00.000Z',
    '2027-03-14T07:30:00.000Z',
    '2027-03-15T06:00:00.000Z',
  ]);
});

test('wildcard runs (*/30 * * * *) run on both passes of the repeated hour, marked; dst skip runs the first pass only', () => {
  const c = CronExpression.parse('*/30 * * * *');
  const runs = c.runs(utc('2027-11-07T05:29Z'), 4, 'America/New_York');
  assert.deepEqual(runs.map((r) => [iso(r.at), r.dst]), [
    ['2027-11-07T05:30:00.000Z', undefined], // 01:30 EDT
    ['2027-11-07T06:00:00.000Z', 'repeated'], // 01:00 EST
    ['2027-11-07T06:30:00.000Z', 'repeated'], // 01:30 EST
    ['2027-11-07T07:00:00.000Z', undefined], // 02:00 EST
  ]);
  // From inside the second pass, too.
  assert.equal(iso(c.next(utc('2027-11-07T06:10Z'), 'America/New_York')), '2027-11-07T06:30:00.000Z');
  assert.equal(iso(c.prev(utc('2027-11-07T06:10Z'), 'America/New_York')), '2027-11-07T06:00:00.000Z');
  assert.deepEqual(c.nextRuns(utc('2027-11-07T05:29Z'), 2, 'America/New_York', 'skip').map(iso), [
    '2027-11-07T05:30:00.000Z',
    '2027-11-07T07:00:00.000Z',
  ]);
});

test('a fixed-time run in the repeated hour runs once, at the first pass', () => {
  const c = CronExpression.parse('30 1 * * *');
  assert.deepEqual(c.nextRuns(utc('2027-11-07T00:00Z'), 2, 'America/New_York').map(iso), ['2027-11-07T05:30:00.000Z', '2027-11-08T06:30:00.000Z']);
  assert.equal(iso(c.next(utc('2027-11-07T05:45Z'), 'America/New_York')), '2027-11-08T06:30:00.000Z', 'not again at 06:30Z');
  assert.equal(c.matches(utc('2027-11-07T06:30Z'), 'America/New_York'), false);
});

test('6 fields: fixed-time means the seconds field too (30 30 2 moves, * 30 2 does not)', () => {
  const zone = 'Europe/Berlin'; // 2027-03-28: 02:00 -> 03:00 at 01:00Z
  const fixed = CronExpression.parse('30 30 2 * * *');
  assert.equal(fixed.fixedTime, true);
  const moved = fixed.runs(utc('2027-03-28T00:00Z'), 1, zone)[0]!;
  assert.deepEqual([iso(moved.at), moved.dst], ['2027-03-28T01:00:00.000Z', 'moved']);
  const wild = CronExpression.parse('* 30 2 * * *');
  assert.equal(wild.fixedTime, false);
  assert.equal(iso(wild.next(utc('2027-03-28T00:00Z'), zone)), '2027-03-29T00:30:00.000Z');
  assert.equal(CronExpression.parse('30 2 * * *').fixedTime, true);
  assert.equal(CronExpression.parse('@hourly').fixedTime, false, '@hourly is 0 * * * *');
});

test('a 30-minute change (Australia/Lord_Howe): a fixed run in the half-hour gap moves to its end', () => {
  // 2027-10-03: 02:00 -> 02:30 (+10:30 -> +11), at 2027-10-02T15:30Z.
  const runs = CronExpression.parse('15 2 * * *').runs(utc('2027-10-02T00:00Z'), 2, 'Australia/Lord_Howe');
  assert.deepEqual(runs.map((r) => [iso(r.at), r.dst]), [
    ['2027-10-02T15:30:00.000Z', 'moved'],
    ['2027-10-03T15:15:00.000Z', undefined],
  ]);
});

test('the slow corner: every second of a skipped hour (* * 2 * * *, Europe/Berlin) is passed in one step', () => {
  // Before: each nonexistent second was tried on its own (61 ms for this one call, in the issue). Timing is in the report.
  assert.equal(iso(CronExpression.parse('* * 2 * * *').next(utc('2027-03-28T00:59:30Z'), 'Europe/Berlin')), '2027-03-29T00:00:00.000Z');
  assert.equal(iso(CronExpression.parse('* * 2 * * *').prev(utc('2027-03-29T00:00:00Z'), 'Europe/Berlin')), '2027-03-27T01:59:59.000Z');
});

// ---- property: every minute of each change day, 2026-2028 -----------------------------------------------------------

const ZONES = ['Pacific/Auckland', 'Pacific/Chatham', 'Australia/Lord_Howe', 'America/Santiago', 'America/Havana', 'America/New_York'];

/** UTC offset (minutes) read from Intl directly, independent of zoned-time's day clocks. */
function offsetMinutes(t: number, zone: string): number {
  const w = wallTimeAt(t, zone);
  return Math.round((Date.UTC(w.year, w.month - 1, w.day, w.hour, w.minute) - t) / MINUTE);
}

/** The instants (to the minute) where `zone` changed its offset in [from, to). */
function changes(zone: string, from: number, to: number): number[] {
  const found: number[] = [];
  let offset = offsetMinutes(from, zone);
  for (let t = from; t < to; t += 86_400_000) {
    const nextOffset = offsetMinutes(t + 86_400_000, zone);
    if (offset === nextOffset) continue;
    offset = nextOffset;
    let [lo, hi] = [t, t + 86_400_000];
    while (hi - lo > MINUTE) {
      const mid = lo + Math.floor((hi - lo) / 2 / MINUTE) * MINUTE;
      if (offsetMinutes(mid, zone) === offsetMinutes(lo, zone)) lo = mid;
      else hi = mid;
    }
    found.push(hi);
  }
  return found;
}

const naiveOf = (w: WallTime) => Date.UTC(w.year, w.month - 1, w.day, w.hour, w.minute, w.second);

interface Case {
  expression: string;
  /** The fields, written out independently of the parser. */
  fields: (w: WallTime) => boolean;
}
const CASES: Case[] = [
  { expression: '* * * * *', fields: () => true },
  { expression: '*/30 * * * *', fields: (w) => w.minute % 30 === 0 },
  // Fixed-time, at every quarter hour a change in these zones skips or repeats (00:00-03:59).
  { expression: '0,15,30,45 0-3 * * *', fields: (w) => w.minute % 15 === 0 && w.hour <= 3 },
];

/** The runs in `minutes` (consecutive instants, one a minute) by cron(8)'s rules or dst skip's, minute by minute. */
function oracle(c: Case, fixedTime: boolean, dst: DstPolicy, minutes: { t: number; w: WallTime }[]): number[] {
  const runs: number[] = [];
  let latestWall = -Infinity;
  for (const { t, w } of minutes) {
    const wall = naiveOf(w);
    let runs_here = false;
    if (wall <= latestWall) {
      // Second pass of a repeated wall time: wildcard jobs only (cron), none (skip).
      runs_here = dst === 'cron' && !fixedTime && c.fields(w);
    } else {
      runs_here = c.fields(w);
      // Wall minutes skipped just before this one: a fixed-time job due in them runs now (cron).
      for (let skipped = latestWall + MINUTE; !runs_here && skipped < wall && latestWall > -Infinity; skipped += MINUTE) {
        const d = new Date(skipped);
        const sw = { year: d.getUTCFullYear(), month: d.getUTCMonth() + 1, day: d.getUTCDate(), hour: d.getUTCHours(), minute: d.getUTCMinutes(), second: 0 };
        runs_here = dst === 'cron' && fixedTime && c.fields(sw);
      }
      latestWall = wall;
    }
    if (runs_here) runs.push(t);
  }
  return runs;
}

test('property: every minute of each change day 2026-2028 in 6 DST zones: instantOf/wallTimeAt round-trip; next() and prev() give exactly the runs of a minute-by-minute walk', () => {
  let checkedChanges = 0;
  for (const zone of ZONES) {
    const found = changes(zone, utc('2026-01-01T00:00Z'), utc('2029-01-01T00:00Z'));
    assert.ok(found.length >= 5, `${zone}: ${found.length} changes found in 2026-2028`);
    for (const change of found) {
      checkedChanges++;
      // The local day of the change (from its midnight, read before the change, for 25 h), and an hour before it
      // as context for the walk (a gap right at midnight).
      const before = wallTimeAt(change - MINUTE, zone);
      const dayStart = change - (before.hour * 60 + before.minute + 1) * MINUTE;
      const minutes: { t: number; w: WallTime }[] = [];
      for (let t = dayStart - 60 * MINUTE; t < dayStart + 25 * 60 * MINUTE; t += MINUTE) minutes.push({ t, w: wallTimeAt(t, zone) });
      // Round trip: every existing wall time maps back to its instant (the first one when repeated).
      const firstSeen = new Map<number, number>();
      for (const { t, w } of minutes) {
        const back = instantOf(w, zone);
        if (!firstSeen.has(naiveOf(w))) firstSeen.set(naiveOf(w), t);
        assert.equal(back, firstSeen.get(naiveOf(w)), `${zone}: instantOf(wallTimeAt(${iso(t)}))`);
      }
      // A skipped wall time has no instant.
      let gaps = 0;
      for (let i = 1; i < minutes.length; i++) {
        for (let wall = naiveOf(minutes[i - 1]!.w) + MINUTE; wall < naiveOf(minutes[i]!.w); wall += MINUTE, gaps++) {
          const d = new Date(wall);
          const w = { year: d.getUTCFullYear(), month: d.getUTCMonth() + 1, day: d.getUTCDate(), hour: d.getUTCHours(), minute: d.getUTCMinutes(), second: 0 };
          assert.equal(instantOf(w, zone), null, `${zone}: ${d.toISOString().slice(0, 16)} local is skipped`);
        }
      }
      assert.equal(gaps > 0, offsetMinutes(change, zone) > offsetMinutes(change - MINUTE, zone), `${zone} ${iso(change)}: a gap iff clocks go forward`);
      const from = dayStart - 1;
      const to = minutes[minutes.length - 1]!.t;
      for (const c of CASES) {
        const cron = CronExpression.parse(c.expression);
        for (const dst of ['cron', 'skip'] as const) {
          const expected = oracle(c, cron.fixedTime, dst, minutes).filter((t) => t > from);
          const label = `${zone} ${c.expression} dst ${dst}, change ${iso(change)}`;
          // Chained next(): nothing left out, nothing extra, in order.
          const chained = cron.nextRuns(from, expected.length + 1, zone, dst).filter((t) => t <= to);
          assert.deepEqual(chained.map(iso), expected.map(iso), label);
          // next() and prev() from between any two minutes within 2 h of the change (where the walk jumps or goes back).
          if (c.expression === '* * * * *') continue;
          for (const { t } of minutes) {
            if (t < dayStart || Math.abs(t - change) > 120 * MINUTE) continue;
            const start = t + 30_000;
            const nextExpected = expected.find((r) => r > start) ?? null;
            if (nextExpected !== null) assert.equal(iso(cron.next(start, zone, dst)), iso(nextExpected), `${label}: next(${iso(start)})`);
            const prevExpected = expected.findLast((r) => r < start) ?? null;
            if (prevExpected !== null) assert.equal(iso(cron.prev(start, zone, dst)), iso(prevExpected), `${label}: prev(${iso(start)})`);
          }
        }
      }
    }
  }
  assert.ok(checkedChanges >= 36, `${checkedChanges} changes checked`);
});
