import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setup } from './criu-setup.js';
import { waitFor } from './harness.js';

test('a schedule with verify: 2 drills every 2nd of its checkpoints, each once, and the drills pass', async (t) => {
  const s = await setup(t);
  if (!s) return;
  const target = await s.target();
  const scheduler = await s.scheduler();
  await s.create({ id: 'drilled', cron: '* * * * * *', target: { pid: target.pid }, verify: 2 });
  await waitFor('4 checkpoints', async () => (await s.catalog.list({ scheduleId: 'drilled', limit: Infinity })).length >= 4, 60_000);
  await s.store.pause('drilled');
  await s.settle('drilled');
  const made = (await s.catalog.list({ scheduleId: 'drilled', limit: Infinity })).reverse(); // oldest first
  const expected = made.filter((_, i) => i % 2 === 1).map((c) => c.id);
  // The scheduler drills as it follows checkpoint.created: wait until it has handled the last one, and the drills ran.
  const drills = await waitFor(
    'the drills',
    async () => {
      const jobs = await s.jobs.listJobs({ type: 'verify', limit: 1000 });
      return jobs.length >= expected.length && jobs.every((j) => j.state === 'completed' || j.state === 'failed') && jobs;
    },
    60_000,
  );
  await scheduler.stop();
  const drilled = drills.map((j) => (j.data as { checkpointId: string }).checkpointId).sort();
  assert.deepEqual(drilled, [...expected].sort(), `made ${made.map((c) => c.id).join(', ')}`);
  for (const j of drills) {
    assert.equal(j.state, 'completed', j.failedReason);
    assert.equal(j.scheduleId, 'drilled');
  }
  for (const c of await s.catalog.list({ scheduleId: 'drilled', limit: Infinity })) assert.equal(c.verified?.ok, expected.includes(c.id) ? true : undefined, c.id);
  assert.ok(target.alive());
});
