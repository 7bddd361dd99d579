import assert from 'node:assert/strict';
import { test } from 'node:test';
import { planRetention, type RetainedCheckpoint } from '../../src/retention/plan.js';

const NOW = Date.parse('2026-06-10T12:00:00Z');
const HOUR = 3_600_000;

/** Checkpoints c0 (oldest) .. c<n-1> (newest), one an hour, ending at NOW. */
function series(n: number, bytes = 100, pinned: number[] = []): RetainedCheckpoint[] {
  return Array.from({ length: n }, (_, i) => ({
    id: `c${i}`,
    created: new Date(NOW - (n - 1 - i) * HOUR).toISOString(),
    bytes,
    pinned: pinned.includes(i),
  }));
}

const ids = (plan: ReturnType<typeof planRetention>) => plan.map((p) => `${p.checkpoint.id}:${p.reason}`);

test('keepLast: the oldest beyond N go, oldest first', () => {
  assert.deepEqual(ids(planRetention(series(5), { keepLast: 2 }, new Set(), NOW)), ['c0:keepLast', 'c1:keepLast', 'c2:keepLast']);
});

test('pinned checkpoints are never removed and do not count toward keepLast', () => {
  assert.deepEqual(ids(planRetention(series(5, 100, [0]), { keepLast: 2 }, new Set(), NOW)), ['c1:keepLast', 'c2:keepLast']);
});

test('a checkpoint a restore uses stays (it keeps its place in the count)', () => {
  assert.deepEqual(ids(planRetention(series(5), { keepLast: 2 }, new Set(['c1']), NOW)), ['c0:keepLast', 'c2:keepLast']);
});

test('maxAge: older ones go, but never the newest', () => {
  assert.deepEqual(ids(planRetention(series(5), { maxAge: 2.5 * HOUR }, new Set(), NOW)), ['c0:maxAge', 'c1:maxAge']);
  const old = series(3).map((c) => ({ ...c, created: new Date(NOW - 100 * HOUR).toISOString() }));
  assert.deepEqual(ids(planRetention(old, { maxAge: HOUR }, new Set(), NOW)).length, 2);
});

test('maxTotalBytes: oldest removable ones go until the total fits; pinned bytes count', () => {
  // 5 x 100 bytes, pinned c4 (newest) included: keep 250 -> remove c0, c1, c2 (total 200).
  assert.deepEqual(ids(planRetention(series(5, 100, [4]), { maxTotalBytes: 250 }, new Set(), NOW)), [
    'c0:maxTotalBytes',
    'c1:maxTotalBytes',
    'c2:maxTotalBytes',
  ]);
  // Limit smaller than one checkpoint: everything but the newest.
  assert.equal(planRetention(series(4), { maxTotalBytes: 1 }, new Set(), NOW).length, 3);
  // An in-use old one is skipped: the next oldest goes instead.
  assert.deepEqual(ids(planRetention(series(4), { maxTotalBytes: 300 }, new Set(['c0']), NOW)), ['c1:maxTotalBytes']);
});

test('rules combine: keepLast first, then age, then bytes', () => {
  const plan = planRetention(series(6), { keepLast: 4, maxAge: 2.5 * HOUR, maxTotalBytes: 150 }, new Set(), NOW);
  assert.deepEqual(ids(plan), ['c0:keepLast', 'c1:keepLast', 'c2:maxAge', 'c3:maxTotalBytes', 'c4:maxTotalBytes']);
});
