import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { setup, foldersOf } from './criu-setup.js';
import { allEvents, startSchedulerProcess } from './harness.js';

test('every 2 s on a real target, 3 scheduler processes, 11 s: one checkpoint per tick, no duplicates', async (t) => {
  const s = await setup(t);
  if (!s) return;
  const target = await s.target();
  const procs = await Promise.all([1, 2, 3].map(() => startSchedulerProcess(s.config)));
  s.defer(() => Promise.all(procs.map((p) => p.kill())));
  // Start the 11 s window just after an even second, so it holds the ticks at +1.9 s ... +9.9 s.
  await sleep(2000 - (Date.now() % 2000) + 100);
  const from = Date.now();
  await s.create({ id: 'every-2s', cron: '*/2 * * * * *', target: { pid: target.pid } });
  await sleep(11_000 - (Date.now() - from));
  assert.deepEqual(await Promise.all(procs.map((p) => p.stop())), [0, 0, 0]);
  await s.settle('every-2s');

  const checkpoints = await s.catalog.list({ schedule: 'every-2s', limit: Infinity });
  assert.ok(checkpoints.length === 5 || checkpoints.length === 6, `${checkpoints.length} checkpoints`);
  const ticks = checkpoints.map((c) => Number(c.jobId.replace(/^sched-every-2s-/, ''))).sort((a, b) => a - b);
  assert.equal(new Set(ticks).size, ticks.length, 'two checkpoints for one tick');
  for (let i = 1; i < ticks.length; i++) assert.equal(ticks[i]! - ticks[i - 1]!, 2000);
  assert.ok(ticks[0]! > from && ticks[ticks.length - 1]! <= from + 11_000);
  for (const c of checkpoints) {
    assert.equal(c.scheduleId, 'every-2s');
    assert.equal(c.target.pid, target.pid);
  }
  assert.equal((await foldersOf(s.root, checkpoints[0]!.target.key)).length, checkpoints.length);
  const fired = await allEvents(s.eventLog, 'schedule.fired', 'every-2s');
  assert.equal(fired.length, checkpoints.length);
  assert.ok(target.alive(), 'leaveRunning: the target keeps running');
});
