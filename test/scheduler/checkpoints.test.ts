import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setup, foldersOf } from './criu-setup.js';
import { allEvents, startSchedulerProcess, waitFor } from './harness.js';
import { cronTicks } from './ticks.js';

test('every 2 s on a real target, 3 scheduler processes, 5 checkpoints or more: one per tick, no duplicates, every tick accounted for', async (t) => {
  const s = await setup(t);
  if (!s) return;
  const target = await s.target();
  const procs = await Promise.all([1, 2, 3].map(() => startSchedulerProcess(s.config)));
  s.defer(() => Promise.all(procs.map((p) => p.kill())));
  const schedule = { id: 'every-2s', cron: '*/2 * * * * *', target: { pid: target.pid } };
  const createdAt = Date.now();
  await s.create(schedule);
  // Counted, not in a wall-clock window: however slow the machine, 5 checkpoints are made, then the replicas stop.
  const made = async () => (await s.catalog.list({ scheduleId: 'every-2s', limit: Infinity })).length;
  await waitFor('5 checkpoints', async () => (await made()) >= 5, 120_000, 250);
  assert.deepEqual(await Promise.all(procs.map((p) => p.stop())), [0, 0, 0]);
  await s.settle('every-2s');

  const checkpoints = await s.catalog.list({ scheduleId: 'every-2s', limit: Infinity });
  const ticks = checkpoints.map((c) => Number(c.jobId.replace(/^sched-every-2s-/, ''))).sort((a, b) => a - b);
  assert.equal(new Set(ticks).size, ticks.length, 'two checkpoints for one tick');
  assert.ok(ticks.length >= 5, `${ticks.length} checkpoints`);
  // Every tick from the first to the last is accounted for once: a checkpoint, or (overlap: skip, the default) skipped
  // because the previous dump was still running, which a loaded machine makes happen.
  const skipped = await allEvents(s.eventLog, 'schedule.skipped', 'every-2s');
  for (const e of skipped) assert.equal(e.data.reason, 'previous run still active');
  const accounted = [...ticks, ...skipped.map((e) => e.data.tickAt as number)].sort((a, b) => a - b);
  assert.deepEqual(accounted, cronTicks(schedule, accounted[0]!, accounted.at(-1)!), 'every tick from the first to the last, once');
  assert.ok(ticks[0]! >= createdAt, 'no tick from before the schedule existed');
  for (const c of checkpoints) {
    assert.equal(c.scheduleId, 'every-2s');
    assert.equal(c.target.pid, target.pid);
  }
  assert.equal((await foldersOf(s.root, checkpoints[0]!.target.key)).length, checkpoints.length);
  const fired = await allEvents(s.eventLog, 'schedule.fired', 'every-2s');
  assert.equal(fired.length, checkpoints.length);
  assert.ok(target.alive(), 'leaveRunning: the target keeps running');
});
