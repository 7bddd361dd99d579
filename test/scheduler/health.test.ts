import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pino } from 'pino';
import { ScheduleStore } from '../../src/scheduler/schedule-store.js';
import { Scheduler } from '../../src/scheduler/scheduler.js';
import { scheduleSchema } from '../../src/scheduler/schema.js';
import { startCounter } from '../helpers/targets.js';
import { startHarness } from '../workers/harness.js';
import { allEvents, waitFor } from './harness.js';

/** Stream ids compare as (ms, seq). */
const reached = (cursor: string | null, id: string) => {
  if (!cursor) return false;
  const [a, b] = [cursor.split('-').map(Number), id.split('-').map(Number)];
  return a[0]! > b[0]! || (a[0] === b[0] && a[1]! >= b[1]!);
};

test('schedule health: a dump retried twice and then failed for good is one failure, not three (job.failed with final false does not count)', async (t) => {
  // Real Redis, worker and CRIU service; the CRIU service is down, so every attempt fails and is retried (3 attempts).
  const h = await startHarness(t, { attempts: 3 });
  if (!h) return;
  const target = await startCounter();
  h.defer(() => target.kill());
  const config = { ...h.config, scheduler: { ...h.config.scheduler, unhealthyAfter: 2, eventsLeaseMs: 1000 } };
  const store = new ScheduleStore(h.client, 'ckpt');
  await store.create(scheduleSchema.parse({ id: 'flaky', cron: '0 0 1 1 *', target: { pid: target.pid } }));
  // The event follower reads from the stream's start, so it sees every event of this test whenever it takes the lead.
  await h.client.set('ckpt:scheduler:events:cursor', '0-0');
  const scheduler = new Scheduler({ redis: h.client, store, enqueuer: h.queue, eventLog: h.eventLog, config, logger: pino({ level: 'silent' }) });
  await scheduler.start();
  h.defer(() => scheduler.stop());

  await h.criu.stop();
  const { jobId } = await scheduler.trigger('flaky');
  await h.startWorker();
  const job = await h.waitFinished(jobId);
  assert.equal(job.state, 'failed');
  const failed = (await h.eventsOf(jobId)).filter((e) => e.event === 'job.failed');
  assert.deepEqual(failed.map((e) => e.data.final), [false, false, true], 'two attempts retried, the third final');

  // Wait until the scheduler has handled the final failure (its event cursor is past it).
  const finalId = failed[2]!.id;
  await waitFor('the scheduler to handle the final job.failed', async () => reached(await h.client.get('ckpt:scheduler:events:cursor'), finalId) || null);
  const state = await store.getState('flaky');
  assert.equal(state.consecutiveFailures, 1);
  assert.equal(state.unhealthy, false);
  assert.match(state.lastFailure!.reason, new RegExp(`job ${jobId} failed`));
  assert.deepEqual(await allEvents(h.eventLog, 'schedule.unhealthy', 'flaky'), []);
});

test('a target that does not resolve: each tick\'s job fails for good in the worker (ETARGET_GONE), the schedule turns unhealthy after N and keeps running', async (t) => {
  const h = await startHarness(t);
  if (!h) return;
  const config = { ...h.config, scheduler: { ...h.config.scheduler, unhealthyAfter: 2, eventsLeaseMs: 1000 } };
  const store = new ScheduleStore(h.client, 'ckpt');
  await store.create(scheduleSchema.parse({ id: 'ghost', cron: '* * * * * *', target: { pid: 999_999 }, overlap: 'queue' }));
  await h.client.set('ckpt:scheduler:events:cursor', '0-0');
  const scheduler = new Scheduler({ redis: h.client, store, enqueuer: h.queue, eventLog: h.eventLog, config, logger: pino({ level: 'silent' }) });
  await scheduler.start();
  h.defer(() => scheduler.stop());
  await h.startWorker();

  const unhealthy = await waitFor('the schedule to turn unhealthy', async () => (await allEvents(h.eventLog, 'schedule.unhealthy', 'ghost'))[0], 60_000);
  assert.equal(unhealthy.data.consecutiveFailures, 2);
  assert.match(String(unhealthy.data.reason), /^job sched-ghost-\d+ failed: .*pid 999999/);
  const failed = (await allEvents(h.eventLog, 'job.failed')).filter((e) => e.jobId?.startsWith('sched-ghost-'));
  assert.ok(failed.length >= 2);
  assert.ok(failed.every((e) => e.data.code === 'ETARGET_GONE' && e.data.final === true), 'failed at once, not retried');
  const state = await store.getState('ghost');
  assert.equal(state.unhealthy, true);
  assert.equal((await store.get('ghost'))!.schedule.enabled, true);
  assert.deepEqual(scheduler.armedIds(), ['ghost'], 'still ticking');
  assert.deepEqual(await allEvents(h.eventLog, 'schedule.skipped', 'ghost'), [], 'the ticks were not skipped: their jobs ran and failed');
});
