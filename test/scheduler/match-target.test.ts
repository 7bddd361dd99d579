import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setup } from './criu-setup.js';
import { allEvents, waitFor } from './harness.js';

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

test('a match schedule: its tick\'s job carries the match (signed), the worker resolves it to the running process and dumps it', async (t) => {
  const s = await setup(t);
  if (!s) return;
  const target = await s.target();
  const match = `counter\\.py ${escape(target.dir)}/`;
  await s.create({ id: 'by-match', cron: '*/2 * * * * *', target: { match } });
  await s.scheduler();
  const created = await waitFor('a checkpoint of the schedule', async () => (await allEvents(s.eventLog, 'checkpoint.created')).find((e) => e.jobId?.startsWith('sched-by-match-')), 60_000);
  const job = await s.jobs.getJob(created.jobId!);
  assert.match(job!.id, /^sched-by-match-\d+$/, 'a tick\'s job, not a trigger-now');
  assert.deepEqual('target' in job!.data ? job!.data.target : undefined, { match }, 'the job carries the spec as the schedule has it');
  const [checkpoint] = await s.catalog.list({ scheduleId: 'by-match', limit: 1 });
  assert.equal(checkpoint!.target.pid, target.pid, 'the worker resolved the match to the running process');
  assert.ok(target.alive(), 'leaveRunning');
});
