import assert from 'node:assert/strict';
import { test } from 'node:test';
import cron from 'node-cron';
import { CronExpression, CronSyntaxError, nextRuns } from '../../src/scheduler/cron.js';
import { TickPool } from '../../src/scheduler/tick-pool.js';

const iso = (ts: number[] | Date[]) => ts.map((t) => new Date(t).toISOString());
const utc = (s: string) => Date.parse(s);

test('day-of-month and day-of-week both restricted: a day matching either fires (crontab(5))', () => {
  // The 13th of the month, or any Friday. 2026-01-01 is a Thursday.
  const runs = nextRuns({ cron: '0 0 13 * 5', timezone: 'UTC' }, 6, utc('2026-01-01T00:00:00Z'));
  assert.deepEqual(iso(runs), [
    '2026-01-02T00:00:00.000Z', // Friday
    '2026-01-09T00:00:00.000Z', // Friday
    '2026-01-13T00:00:00.000Z', // Tuesday the 13th
    '2026-01-16T00:00:00.000Z',
    '2026-01-23T00:00:00.000Z',
    '2026-01-30T00:00:00.000Z',
  ]);
  const c = CronExpression.parse('0 0 13 * 5');
  assert.equal(c.eitherDayMatches, true);
  // The tick pool's shared timer gets the time fields only; the day rule is applied per schedule.
  assert.equal(c.tickPattern, '0 0 0 * * *');
  assert.equal(c.matchesDay(2026, 1, 13), true);
  assert.equal(c.matchesDay(2026, 1, 16), true);
  assert.equal(c.matchesDay(2026, 1, 14), false);
});

test('only one of the day fields restricted: both must match (a * day field matches every day)', () => {
  assert.deepEqual(iso(nextRuns({ cron: '0 0 13 * *', timezone: 'UTC' }, 2, utc('2026-01-01T00:00:00Z'))), [
    '2026-01-13T00:00:00.000Z',
    '2026-02-13T00:00:00.000Z',
  ]);
  assert.deepEqual(iso(nextRuns({ cron: '0 0 * * fri', timezone: 'UTC' }, 2, utc('2026-01-01T00:00:00Z'))), [
    '2026-01-02T00:00:00.000Z',
    '2026-01-09T00:00:00.000Z',
  ]);
  // A day field starting with * counts as unrestricted even with a step (Vixie cron): odd days that are Mondays.
  const c = CronExpression.parse('0 0 */2 * 1');
  assert.equal(c.eitherDayMatches, false);
  assert.deepEqual(iso(c.nextRuns(utc('2026-01-01T00:00:00Z'), 3, 'UTC')), [
    '2026-01-05T00:00:00.000Z',
    '2026-01-19T00:00:00.000Z',
    '2026-02-09T00:00:00.000Z',
  ]);
});

test('either-day rule also holds where node-cron would refuse the pair (31st of February or a Monday)', () => {
  const runs = nextRuns({ cron: '0 12 31 2 mon', timezone: 'UTC' }, 3, utc('2026-01-01T00:00:00Z'));
  assert.deepEqual(iso(runs), ['2026-02-02T12:00:00.000Z', '2026-02-09T12:00:00.000Z', '2026-02-16T12:00:00.000Z']);
});

test('where node-cron applies the same rule, our next runs are exactly node-cron\'s (dst skip: node-cron\'s way with DST)', () => {
  const exprs = ['*/2 * * * * *', '0 0 * * mon-fri', '30 2 * * *', '0 0 1 jan,jul *', '@weekly', '15 */3 1-10 * *', '5 4 * * sun', '7 7 7 * * *'];
  for (const timezone of ['UTC', 'Europe/Berlin', 'America/New_York', 'Asia/Kolkata']) {
    for (const e of exprs) {
      const c = CronExpression.parse(e);
      const task = cron.createTask(c.tickPattern, () => undefined, { timezone });
      try {
        // node-cron counts from its own "now": ask again when a second boundary passed between the two reads.
        let from: number;
        let theirs: number[];
        do {
          from = Date.now();
          theirs = task.getNextRuns(6).map((d) => d.getTime());
        } while (Math.floor(Date.now() / 1000) !== Math.floor(from / 1000));
        const mine = c.nextRuns(from, 6, timezone, 'skip');
        assert.deepEqual(iso(mine), iso(theirs), `${e} in ${timezone}`);
      } finally {
        void task.destroy();
      }
    }
  }
});

test('run times are read in the schedule time zone; a fixed time DST skips runs after the gap (dst skip: not at all)', () => {
  // 09:00 in Berlin is 08:00 UTC in winter, 07:00 in summer.
  assert.deepEqual(iso(nextRuns({ cron: '0 9 * * *', timezone: 'Europe/Berlin' }, 1, utc('2026-01-10T00:00:00Z'))), ['2026-01-10T08:00:00.000Z']);
  assert.deepEqual(iso(nextRuns({ cron: '0 9 * * *', timezone: 'Europe/Berlin' }, 1, utc('2026-07-10T00:00:00Z'))), ['2026-07-10T07:00:00.000Z']);
  // 02:30 does not exist in Berlin on 2026-03-29 (clocks jump 02:00 -> 03:00 at 01:00Z): cron(8) runs it at 03:00.
  assert.deepEqual(iso(nextRuns({ cron: '30 2 * * *', timezone: 'Europe/Berlin' }, 3, utc('2026-03-27T12:00:00Z'))), [
    '2026-03-28T01:30:00.000Z',
    '2026-03-29T01:00:00.000Z',
    '2026-03-30T00:30:00.000Z',
  ]);
  assert.deepEqual(iso(nextRuns({ cron: '30 2 * * *', timezone: 'Europe/Berlin', dst: 'skip' }, 3, utc('2026-03-27T12:00:00Z'))), [
    '2026-03-28T01:30:00.000Z',
    '2026-03-30T00:30:00.000Z',
    '2026-03-31T00:30:00.000Z',
  ]);
});

test('prev finds the latest run time before an instant (missed-tick catch-up)', () => {
  const c = CronExpression.parse('*/2 * * * * *');
  assert.equal(c.prev(utc('2026-05-01T10:00:03.500Z'), 'UTC'), utc('2026-05-01T10:00:02Z'));
  assert.equal(c.prev(utc('2026-05-01T10:00:02Z'), 'UTC'), utc('2026-05-01T10:00:00Z'));
  const fri13 = CronExpression.parse('0 0 13 * 5');
  assert.equal(fri13.prev(utc('2026-01-15T00:00:00Z'), 'UTC'), utc('2026-01-13T00:00:00Z'));
  assert.equal(fri13.prev(utc('2026-01-13T00:00:00Z'), 'UTC'), utc('2026-01-09T00:00:00Z'));
});

test('invalid expressions are refused with the field and the reason', () => {
  const cases: [string, RegExp][] = [
    ['60 * * * *', /minute field "60" is not valid \(allowed: 0-59/],
    ['* 24 * * *', /hour field "24" is not valid/],
    ['0 0 32 * *', /day-of-month field "32" is not valid/],
    ['0 0 * 13 *', /month field "13" is not valid/],
    ['0 0 * * 8', /day-of-week field "8" is not valid/],
    ['*/0 * * * *', /minute field "\*\/0" is not valid/],
    ['1 2 3', /expected 5 fields \(minute hour day-of-month month day-of-week\) or 6 \(seconds first\), got 3/],
    ['* * * * * * *', /got 7/],
    ['0 0 31 2 *', /day-of-month "31" never occurs in month "2"/],
    ['0 0 L * *', /L, W and # are not crontab\(5\) syntax/],
    ['0 0 * * 5#2', /L, W and # are not crontab\(5\) syntax/],
    ['@reboot', /unknown nickname @reboot/],
    ['', /empty expression/],
  ];
  for (const [expr, message] of cases) {
    assert.throws(() => CronExpression.parse(expr), (e: unknown) => e instanceof CronSyntaxError && message.test(e.message), expr);
  }
});

test('6 fields: seconds first; nicknames expand', () => {
  assert.deepEqual(iso(nextRuns({ cron: '*/20 * * * * *', timezone: 'UTC' }, 3, utc('2026-01-01T00:00:05Z'))), [
    '2026-01-01T00:00:20.000Z',
    '2026-01-01T00:00:40.000Z',
    '2026-01-01T00:01:00.000Z',
  ]);
  assert.deepEqual(iso(nextRuns({ cron: '@hourly', timezone: 'UTC' }, 1, utc('2026-01-01T00:00:05Z'))), ['2026-01-01T01:00:00.000Z']);
});

test('the tick pool fires the ticks: with both day fields restricted it fires on either day, and only then', async (t) => {
  // Fake clock from Thursday 2026-01-01; the pool's timers and Date follow it.
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: utc('2026-01-01T00:00:00Z') });
  const pool = new TickPool();
  const either = CronExpression.parse('0 0 13 * 5');
  const fridays = CronExpression.parse('0 0 * * 5');
  const fired = { either: [] as number[], fridays: [] as number[] };
  pool.subscribe(either, 'UTC', 'cron', (tickMs) => fired.either.push(tickMs));
  pool.subscribe(fridays, 'UTC', 'cron', (tickMs) => fired.fridays.push(tickMs));
  assert.equal(pool.taskCount, 2);
  // Same time fields, other day fields: one shared timer, each subscriber with its own day rule.
  const stopThirteenths = pool.subscribe(CronExpression.parse('0 0 13 * 2'), 'UTC', 'cron', () => undefined);
  assert.equal(pool.taskCount, 2);
  stopThirteenths();
  assert.equal(pool.taskCount, 2, 'still used by the first subscriber');
  // node-cron alone, for contrast: it requires both fields (a Friday the 13th: none in January 2026, then Feb 13).
  const rawFired: number[] = [];
  const raw = cron.createTask('0 0 13 * 5', (ctx) => void rawFired.push(ctx.date.getTime()), { timezone: 'UTC' });
  void raw.start();
  try {
    for (let hour = 0; hour < 31 * 24; hour++) {
      t.mock.timers.tick(3600_000);
      // node-cron calls back from a promise chain: let it run (setImmediate is not mocked).
      await new Promise((resolve) => setImmediate(resolve));
    }
  } finally {
    pool.close();
    void raw.destroy();
  }
  assert.deepEqual(rawFired, []);
  assert.deepEqual(iso(fired.either), iso(either.nextRuns(utc('2026-01-01T00:00:00Z'), 6, 'UTC')));
  assert.deepEqual(iso(fired.either), [
    '2026-01-02T00:00:00.000Z',
    '2026-01-09T00:00:00.000Z',
    '2026-01-13T00:00:00.000Z',
    '2026-01-16T00:00:00.000Z',
    '2026-01-23T00:00:00.000Z',
    '2026-01-30T00:00:00.000Z',
  ]);
  assert.deepEqual(iso(fired.fridays), ['2026-01-02T00:00:00.000Z', '2026-01-09T00:00:00.000Z', '2026-01-16T00:00:00.000Z', '2026-01-23T00:00:00.000Z', '2026-01-30T00:00:00.000Z']);
});

test('the tick pool fires across DST as next-runs shows: a fixed time moved past the gap, wildcard ticks on both passes', (t) => {
  // America/New_York: 2027-03-14 02:00 -> 03:00 (07:00Z); 2027-11-07 02:00 -> 01:00 (06:00Z).
  const zone = 'America/New_York';
  for (const [expression, from, hours, policiesDiffer] of [
    ['30 2 * * *', '2027-03-13T12:00:00Z', 48, true],
    ['*/30 * * * *', '2027-11-07T04:00:00Z', 4, true],
    ['*/30 * * * *', '2027-03-14T05:00:00Z', 4, false], // wildcard ticks in a gap are not made up for
  ] as const) {
    t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: utc(from) });
    const pool = new TickPool();
    const c = CronExpression.parse(expression);
    const ticks: number[] = [];
    const skipTicks: number[] = [];
    pool.subscribe(c, zone, 'cron', (tickMs) => ticks.push(tickMs));
    pool.subscribe(c, zone, 'skip', (tickMs) => skipTicks.push(tickMs));
    assert.equal(pool.taskCount, 2, 'one timer per DST policy');
    for (let minute = 0; minute < hours * 60; minute++) t.mock.timers.tick(60_000);
    pool.close();
    t.mock.timers.reset();
    const end = utc(from) + hours * 3600_000;
    const expected = (dst: 'cron' | 'skip') => c.nextRuns(utc(from), 1000, zone, dst).filter((x) => x <= end);
    assert.deepEqual(iso(ticks), iso(expected('cron')), `${expression} from ${from}`);
    assert.deepEqual(iso(skipTicks), iso(expected('skip')), `${expression} from ${from}, dst skip`);
    assert.equal(ticks.length !== skipTicks.length, policiesDiffer);
  }
});
