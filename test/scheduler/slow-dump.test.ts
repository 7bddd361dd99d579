import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setup } from './criu-setup.js';
import { allEvents, waitFor } from './harness.js';

test('overlap skip: ticks during a slow dump give schedule.skipped, never a second job at the same time', async (t) => {
  const s = await setup(t);
  if (!s) return;
  const target = await s.target();
  // A dump slower than the 1 s between ticks, whatever the machine: the CRIU service is held (SIGSTOP), so the first
  // tick's job connects and then waits for CRIU's reply until the test lets the service go on.
  const releaseCriu = await s.holdCriu();
  await s.create({
    id: 'slow',
    cron: '* * * * * *',
    target: { pid: target.pid },
    overlap: 'skip',
    retention: { keepLast: 1 },
  });
  await s.scheduler();
  await waitFor('two ticks skipped for overlap', async () => (await allEvents(s.eventLog, 'schedule.skipped', 'slow')).length >= 2, 40_000);
  await s.store.pause('slow');
  releaseCriu();
  await s.settle('slow');

  const fired = await allEvents(s.eventLog, 'schedule.fired', 'slow');
  const skipped = await allEvents(s.eventLog, 'schedule.skipped', 'slow');
  assert.ok(skipped.length >= 2);
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
