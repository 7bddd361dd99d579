import assert from 'node:assert/strict';
import { test } from 'node:test';
import { backoffDelay } from '../../src/queue/backoff.js';

const settings = { baseDelayMs: 1000, maxDelayMs: 60_000, jitter: 0.2 };

test('backoff doubles per attempt, capped at maxDelayMs', () => {
  const exact = { ...settings, jitter: 0 };
  assert.deepEqual(
    [1, 2, 3, 4, 5, 6, 7, 8].map((n) => backoffDelay(n, exact)),
    [1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000],
  );
  assert.equal(backoffDelay(10_000, exact), 60_000, 'huge attempt counts do not overflow');
});

test('jitter moves each delay by at most the configured fraction, both ways, and never past the cap', () => {
  assert.equal(backoffDelay(3, settings, () => 0), 3200);
  assert.equal(backoffDelay(3, settings, () => 1), 4800);
  assert.equal(backoffDelay(3, settings, () => 0.5), 4000);
  assert.equal(backoffDelay(7, settings, () => 1), 60_000);
  const seen = new Set(Array.from({ length: 200 }, () => backoffDelay(2, settings)));
  assert.ok(seen.size > 50, 'random jitter spreads retries out');
  for (const d of seen) assert.ok(d >= 1600 && d <= 2400, `${d}`);
});
