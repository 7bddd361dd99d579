import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test, type TestContext } from 'node:test';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { configSchema, type ConfigInput } from '../../src/config/schema.js';
import { EventLog } from '../../src/events/event-log.js';
import { JobQueue } from '../../src/queue/job-queue.js';
import { ScheduleStore } from '../../src/scheduler/schedule-store.js';
import { Scheduler, TriggerError, type SchedulerOptions } from '../../src/scheduler/scheduler.js';
import { scheduleSchema, type ScheduleInput } from '../../src/scheduler/schema.js';
import { TestRedis } from '../helpers/redis.js';
import { throwawaySigner } from '../helpers/signer.js';
import { startCounter, type Counter } from '../helpers/targets.js';
import { allEvents, waitFor } from './harness.js';
import { cronTicks } from './ticks.js';

// Schedulers in this process (each with its own Redis connections, exactly as in separate processes), the real
// JobQueue, no worker: jobs stay waiting.

let server: TestRedis;
let redis: Redis;
let target: Counter;

before(async () => {
  server = await TestRedis.start();
  redis = new Redis(server.url);
  target = await startCounter();
});
after(async () => {
  await target.kill();
  redis.disconnect();
  await server.stop();
});

function env(t: TestContext, scheduler: ConfigInput['scheduler'] = {}) {
  const prefix = `s${randomUUID().slice(0, 8)}`;
  const config = configSchema.parse({
    node: 'test-node',
    redis: { url: server.url, prefix },
    scheduler: { claimLeaseMs: 1000, sweepIntervalMs: 200, eventsLeaseMs: 1000, ...scheduler },
  });
  const eventLog = new EventLog(redis, { key: `${prefix}:events` });
  const store = new ScheduleStore(redis, prefix);
  const jobs = new JobQueue({ connection: server.url, prefix, node: 'test-node', eventLog, defaults: config.worker, signer: throwawaySigner() });
  const started: Scheduler[] = [];
  t.after(async () => {
    for (const s of started) await s.stop();
    await jobs.close();
  });
  const newScheduler = async (options: Partial<Pick<SchedulerOptions, 'random' | 'enqueuer'>> = {}) => {
    const s = new Scheduler({ redis, store, enqueuer: jobs, eventLog, config, logger: pino({ level: 'silent' }), ...options });
    started.push(s);
    await s.start();
    return s;
  };
  const create = (input: Partial<ScheduleInput> & { id: string }) =>
    store.create(scheduleSchema.parse({ cron: '* * * * * *', target: { pid: target.pid }, overlap: 'queue', ...input }));
  return { config, eventLog, store, jobs, newScheduler, create };
}

test('missed ticks after every scheduler was down: runOnce enqueues the latest one once, skip reports it', async (t) => {
  const { eventLog, store, jobs, newScheduler, create } = env(t);
  await create({ id: 'catch-up', cron: '*/2 * * * * *', missed: 'runOnce' });
  await create({ id: 'no-catch-up', cron: '*/2 * * * * *', missed: 'skip' });
  const first = await newScheduler();
  await waitFor('both schedules to tick', async () => {
    const states = await store.getStates(['catch-up', 'no-catch-up']);
    return [...states.values()].every((s) => s.lastTickAt) || null;
  });
  await first.stop();
  const stoppedAt = Date.now();
  const lastTick = (await store.getState('catch-up')).lastTickAt!;
  await waitFor('two ticks to pass with no scheduler', async () => cronTicks({ cron: '*/2 * * * * *' }, lastTick, Date.now()).length >= 3, 10_000);

  const restartedAt = Date.now();
  await newScheduler();
  const missed = await waitFor('the missed tick to be run', async () =>
    (await allEvents(eventLog, 'schedule.fired', 'catch-up')).find((e) => e.data.source === 'missed'),
  );
  const tick = missed.data.tickAt as number;
  assert.ok(tick > lastTick && tick > stoppedAt && tick <= restartedAt, 'the latest tick that passed while down');
  assert.equal(restartedAt - tick < 2000, true, 'it is the latest, not an earlier one');
  assert.ok(await jobs.getJob(missed.jobId!), 'and it has a job');
  // Only that one: no jobs for the other ticks that passed while down.
  const ids = (await jobs.listJobs({ scheduleId: 'catch-up', limit: 100 })).map((j) => Number(j.id.split('-').pop()));
  assert.deepEqual(ids.filter((x) => x > lastTick && x < restartedAt), [tick]);

  const skipped = await waitFor('the skip policy to report', async () =>
    (await allEvents(eventLog, 'schedule.skipped', 'no-catch-up')).find((e) => e.data.source === 'missed'),
  );
  assert.match(String(skipped.data.reason), /^missed: no scheduler handled it when it was due \(policy skip\)$/);
  const skipIds = (await jobs.listJobs({ scheduleId: 'no-catch-up', limit: 100 })).map((j) => Number(j.id.split('-').pop()));
  assert.deepEqual(skipIds.filter((x) => x > lastTick && x < restartedAt), [], 'skip: no job for missed ticks');
});

test('missedTickToleranceMs: at start, a missed tick younger than it runs once, an older one is skipped naming the limit', async (t) => {
  const { eventLog, store, jobs, newScheduler, create } = env(t, { missedTickToleranceMs: 30 * 60_000 });
  // Daily schedules whose latest tick was a minute and two hours ago; both last ticked before that, so that tick
  // passed while no scheduler ran. Their next ticks are a day away: nothing else happens during the test.
  const now = Date.now();
  const daily = (ms: number) => {
    const d = new Date(ms);
    return `${d.getUTCSeconds()} ${d.getUTCMinutes()} ${d.getUTCHours()} * * *`;
  };
  const young = Math.floor((now - 60_000) / 1000) * 1000;
  const old = Math.floor((now - 2 * 3_600_000) / 1000) * 1000;
  await create({ id: 'young', cron: daily(young) });
  await create({ id: 'old', cron: daily(old) });
  for (const id of ['young', 'old']) await store.recordTick(id, now - 3 * 3_600_000);
  await newScheduler();
  const fired = await waitFor('the young missed tick to run', async () => (await allEvents(eventLog, 'schedule.fired', 'young'))[0]);
  assert.deepEqual([fired.data.source, fired.data.tickAt], ['missed', young]);
  assert.ok(await jobs.getJob(fired.jobId!), 'it has a job');
  const outcome = await waitFor('the old missed tick to be handled', async () =>
    (await allEvents(eventLog, undefined, 'old')).find((e) => e.event === 'schedule.fired' || e.event === 'schedule.skipped'),
  );
  assert.deepEqual([outcome.event, outcome.data.source, outcome.data.tickAt], ['schedule.skipped', 'missed', old]);
  assert.match(String(outcome.data.reason), /older than missedTickToleranceMs \(1800000 ms\)$/);
  assert.deepEqual(await jobs.listJobs({ scheduleId: 'old', limit: 10 }), [], 'no job for it');
  assert.deepEqual(await allEvents(eventLog, 'schedule.fired', 'old'), []);
});

test('jitterMs: each tick\'s dump is enqueued the drawn part of jitterMs after the tick', async (t) => {
  const { eventLog, jobs, newScheduler, create } = env(t);
  await create({ id: 'spread', cron: '*/2 * * * * *', jitterMs: 1600 });
  // The draw is fixed: 0.75 of 1600 ms. (Without jitter the job follows its tick within milliseconds.)
  await newScheduler({ random: () => 0.75 });
  const fired = await waitFor('two ticks', async () => {
    const f = await allEvents(eventLog, 'schedule.fired', 'spread');
    return f.length >= 2 && f;
  }, 20_000);
  for (const e of fired) {
    const job = (await jobs.getJob(e.jobId!))!;
    const afterTick = job.createdAt - Number(e.data.tickAt);
    assert.equal(e.data.source, 'cron');
    assert.ok(afterTick >= 1200, `job ${job.id} enqueued ${afterTick} ms after its tick`);
    assert.ok(Number(e.data.lagMs) >= 1200, `lag ${e.data.lagMs} ms`);
  }
});

test('a tick enqueues the schedule\'s target spec as it is (a match stays a match): the worker resolves it, the scheduler never does', async (t) => {
  const { eventLog, jobs, newScheduler, create } = env(t);
  const match = `no-process-is-called-${randomUUID()}`;
  await create({ id: 'by-match', target: { match } });
  await create({ id: 'by-workload', target: { workload: 'trainer' } });
  await newScheduler();
  for (const id of ['by-match', 'by-workload']) {
    const fired = await waitFor(`a tick of ${id}`, async () => (await allEvents(eventLog, 'schedule.fired', id))[0]);
    const job = await jobs.getJob(fired.jobId!);
    assert.deepEqual(job && 'target' in job.data ? job.data.target : undefined, id === 'by-match' ? { match } : { workload: 'trainer' }, 'the job carries the spec, not a pid');
  }
  assert.deepEqual(
    [...(await allEvents(eventLog, 'schedule.skipped', 'by-match')), ...(await allEvents(eventLog, 'schedule.skipped', 'by-workload'))],
    [],
    'nothing matches the spec now, and the ticks still enqueued: resolving is the worker\'s',
  );
});

test('the ticks of one moment are enqueued together (one enqueueDumps call for several), each tick\'s job once', async (t) => {
  const { eventLog, jobs, newScheduler, create } = env(t);
  const ids = ['m1', 'm2', 'm3', 'm4', 'm5'];
  for (const id of ids) await create({ id });
  // The real queue, with each batch's size noted on the way.
  const batches: number[] = [];
  await newScheduler({
    enqueuer: {
      enqueueDump: (input, opts) => jobs.enqueueDump(input, opts),
      getJob: (id) => jobs.getJob(id),
      enqueueDumps: (requests) => (batches.push(requests.length), jobs.enqueueDumps(requests)),
    },
  });
  const fired = await waitFor('each schedule to fire twice', async () => {
    const events = await allEvents(eventLog, 'schedule.fired');
    return ids.every((id) => events.filter((e) => e.scheduleId === id).length >= 2) ? events : null;
  });
  const waiting = (await allEvents(eventLog, 'job.waiting')).map((e) => e.jobId!);
  assert.equal(new Set(waiting).size, waiting.length, 'each job announced once');
  for (const e of fired) assert.ok(waiting.includes(e.data.jobId as string), `tick ${e.data.jobId} has its job`);
  assert.ok(batches.some((n) => n > 1), `ticks of one second enqueued together (batch sizes ${batches.join(', ')})`);
});

test('overlap skip: a tick while the previous job still waits gives schedule.skipped, not a second job', async (t) => {
  const { eventLog, jobs, newScheduler, create } = env(t);
  await create({ id: 'one-at-a-time', overlap: 'skip' });
  await newScheduler();
  await waitFor('2 skipped ticks', async () => (await allEvents(eventLog, 'schedule.skipped', 'one-at-a-time')).length >= 2);
  const listed = await jobs.listJobs({ scheduleId: 'one-at-a-time', limit: 100 });
  assert.equal(listed.length, 1, 'no worker runs here: the first job never finishes, so no second one');
  const skipped = await allEvents(eventLog, 'schedule.skipped', 'one-at-a-time');
  assert.ok(skipped.every((e) => e.data.reason === 'previous run still active'));
});

test('changes through the store in another process are picked up; pause, resume, trigger-now', async (t) => {
  const { eventLog, store, jobs, newScheduler, create } = env(t);
  const a = await newScheduler();
  const b = await newScheduler();
  const armed = (ids: string[]) => waitFor(`armed ${ids}`, async () => [a, b].every((s) => s.armedIds().join() === ids.join()) || null, 5000);

  await create({ id: 'live', cron: '0 0 1 1 *' });
  await armed(['live']);
  await store.pause('live');
  await armed([]);
  await store.resume('live');
  await armed(['live']);
  await store.update(scheduleSchema.parse({ id: 'live', cron: '0 0 1 1 *', target: { pid: target.pid }, enabled: false }));
  await armed([]);
  await store.update(scheduleSchema.parse({ id: 'live', cron: '0 0 1 1 *', target: { pid: target.pid } }));
  await armed(['live']);

  const { jobId } = await a.trigger('live');
  assert.match(jobId, /^sched-live-manual-[0-9a-f-]{36}$/);
  const job = await jobs.getJob(jobId);
  assert.equal(job?.scheduleId, 'live');
  const fired = await allEvents(eventLog, 'schedule.fired', 'live');
  assert.equal(fired.length, 1);
  assert.equal(fired[0]!.data.manual, true);
  assert.equal((await store.getState('live')).lastJobId, jobId);

  await store.update(scheduleSchema.parse({ id: 'live', cron: '0 0 1 1 *', target: { pid: 999_999 } }));
  await assert.rejects(a.trigger('live'), (e: unknown) => e instanceof TriggerError && e.code === 'ETARGET_GONE');
  await assert.rejects(a.trigger('nope'), (e: unknown) => (e as { code?: string }).code === 'ESCHEDULE_NOT_FOUND');

  await store.delete('live');
  await armed([]);
});
