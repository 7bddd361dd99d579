import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setup } from './criu-setup.js';
import { allEvents, waitFor } from './harness.js';

test('overlap skip: ticks during a slow dump give schedule.skipped, never a second job at the same time', async (t) => {
  const s = await setup(t);
  if (!s) return;
  // 1 GiB at CRIU's most verbose log level: a dump takes longer than the 1 s between ticks (2.8 s measured here).
  const target = await s.bigTarget(1024);
  await s.create({
    id: 'slow',
    cron: '* * * * * *',
    target: { pid: target.pid },
    criu: { logLevel: 4 },
    overlap: 'skip',
    retention: { keepLast: 1 },
  });
  await s.scheduler();
  await waitFor('a tick skipped for overlap', async () => (await allEvents(s.eventLog, 'schedule.skipped', 'slow')).length > 0, 40_000);
  await s.store.pause('slow');
  await s.settle('slow');

  const fired = await allEvents(s.eventLog, 'schedule.fired', 'slow');
  const skipped = await allEvents(s.eventLog, 'schedule.skipped', 'slow');
  assert.ok(skipped.length >= 1);
  const finishedAt = new Map<string, number>();
  for (const e of await allEvents(s.eventLog, 'job.completed')) finishedAt.set(e.jobId!, e.ts);
  for (const skip of skipped) {
    assert.equal(skip.data.reason, 'previous run still active');
    const tick = skip.data.tickAt as number;
    // The job of an earlier tick was really still running at that tick.
    const running = fired.filter((f) => (f.data.tickAt as number) < tick && (finishedAt.get(f.jobId!) ?? Infinity) > tick);
    assert.equal(running.length, 1, `tick ${tick}: exactly one earlier job still running`);
  }
  const ticks = new Set([...fired, ...skipped].map((e) => e.data.tickAt));
  assert.equal(ticks.size, fired.length + skipped.length, 'each tick is fired or skipped, once');
  const jobs = await s.jobs.listJobs({ scheduleId: 'slow', limit: 100 });
  assert.equal(jobs.length, fired.length);
  assert.ok(jobs.every((j) => j.state === 'completed'), JSON.stringify(jobs.map((j) => [j.state, j.failedReason])));
});
