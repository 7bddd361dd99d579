import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test, type TestContext } from 'node:test';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import type { ConfigInput } from '../../src/config/schema.js';
import { EventLog } from '../../src/events/event-log.js';
import { JobQueue } from '../../src/queue/job-queue.js';
import { queueNameFor } from '../../src/queue/keys.js';
import { nextRuns } from '../../src/scheduler/cron.js';
import { ScheduleStore } from '../../src/scheduler/schedule-store.js';
import { tickJobId } from '../../src/scheduler/tick-job.js';
import { scheduleSchema } from '../../src/scheduler/schema.js';
import { TickClaims } from '../../src/scheduler/tick-claims.js';
import { TestRedis } from '../helpers/redis.js';
import { throwawaySigner } from '../helpers/signer.js';
import { startCounter, type Counter } from '../helpers/targets.js';
import { allEvents, killAllSchedulerProcesses, runCrashingScheduler, startSchedulerProcess, waitFor } from './harness.js';
import { cronTicks } from './ticks.js';

// No worker runs here: jobs stay waiting, which is enough to count them. (checkpoints.test.ts runs the real worker.)

let server: TestRedis;
let redis: Redis;
let target: Counter;

before(async () => {
  server = await TestRedis.start();
  redis = new Redis(server.url);
  target = await startCounter();
});
after(async () => {
  await killAllSchedulerProcesses();
  await target.kill();
  redis.disconnect();
  await server.stop();
});

interface Env {
  config: ConfigInput;
  store: ScheduleStore;
  eventLog: EventLog;
  jobs: JobQueue;
  claims: TickClaims;
}

function env(t: TestContext): Env {
  const prefix = `x${randomUUID().slice(0, 8)}`;
  const config: ConfigInput = {
    node: 'test-node',
    redis: { url: server.url, prefix },
    scheduler: { claimLeaseMs: 1000, sweepIntervalMs: 200, eventsLeaseMs: 1000 },
  };
  const eventLog = new EventLog(redis, { key: `${prefix}:events` });
  const jobs = new JobQueue({ connection: server.url, prefix, node: 'test-node', eventLog, defaults: { attempts: 1, keepCompleted: 100, keepFailed: 100 }, signer: throwawaySigner() });
  t.after(() => jobs.close());
  return { config, store: new ScheduleStore(redis, prefix), eventLog, jobs, claims: new TickClaims(redis, { prefix, ttlMs: 86_400_000 }) };
}

const tickOf = (jobId: string) => Number(jobId.slice(jobId.lastIndexOf('-') + 1));

test('3 scheduler processes, a schedule every second, 5 ticks or more: one job per tick, no tick twice, none left out', async (t) => {
  const { config, store, eventLog, jobs } = env(t);
  const schedule = scheduleSchema.parse({ id: 'every-second', cron: '* * * * * *', target: { pid: target.pid }, overlap: 'queue' });
  await store.create(schedule);
  const procs = await Promise.all([1, 2, 3].map(() => startSchedulerProcess(config)));
  // Counted by events, not in a wall-clock window.
  await waitFor('5 ticks to fire', async () => (await jobs.listJobs({ scheduleId: 'every-second', limit: 1000 })).length >= 5, 30_000, 100);
  assert.deepEqual(await Promise.all(procs.map((p) => p.stop())), [0, 0, 0]);

  const listed = await jobs.listJobs({ scheduleId: 'every-second', limit: 1000 });
  const ticks = listed.map((j) => tickOf(j.id)).sort((a, b) => a - b);
  assert.ok(ticks.length >= 5, `${ticks.length} ticks`);
  assert.equal(new Set(ticks).size, ticks.length, 'a tick has two jobs');
  assert.deepEqual(ticks, cronTicks(schedule, ticks[0]!, ticks.at(-1)!), 'a job for every tick from the first to the last');
  for (const j of listed) assert.equal(j.id, tickJobId('every-second', tickOf(j.id)));

  const fired = await allEvents(eventLog, 'schedule.fired', 'every-second');
  assert.deepEqual(fired.map((e) => e.data.tickAt as number).sort((a, b) => a - b), ticks, 'one schedule.fired per job');
  const waiting = await allEvents(eventLog, 'job.waiting');
  assert.equal(waiting.length, ticks.length, 'one job.waiting per tick');
});

test('a scheduler SIGKILLed right after claiming a tick: another process enqueues that tick, exactly once', async (t) => {
  const { config, store, eventLog, jobs, claims } = env(t);
  const schedule = scheduleSchema.parse({ id: 'crashy', cron: '*/2 * * * * *', target: { pid: target.pid }, overlap: 'queue' });
  await store.create(schedule);
  const procs = await Promise.all([1, 2].map(() => startSchedulerProcess(config)));
  t.after(() => Promise.all(procs.map((p) => p.stop())));

  // A third replica claims the coming tick, and dies before doing anything else.
  const crashed = await runCrashingScheduler(config, 'crash-after-claim', 'crashy', 'next');
  assert.equal(crashed.signal, 'SIGKILL');
  assert.ok(crashed.claimedTick, 'it claimed the tick');
  const tick = crashed.claimedTick;

  // At the tick, the live replicas find it claimed; when the dead owner's lease runs out, one of them takes it over.
  const claim = await waitFor('the tick to be taken over and enqueued', async () => {
    const c = await claims.get('crashy', tick);
    return c?.state === 'enqueued' ? c : null;
  });
  assert.ok(procs.some((p) => p.instanceId === claim.owner), 'a live replica finished it');
  assert.equal(claim.takeovers, 1);
  assert.equal(claim.jobId, tickJobId('crashy', tick));
  assert.ok(await jobs.getJob(tickJobId('crashy', tick)), 'the tick has its job');

  // Neighbouring ticks go on as usual: wait until the replicas have fired the tick after the crashed one.
  await waitFor('the next tick to fire', async () =>
    (await allEvents(eventLog, 'schedule.fired', 'crashy')).some((e) => (e.data.tickAt as number) > tick),
  );
  const listed = await jobs.listJobs({ scheduleId: 'crashy', limit: 1000 });
  const ticks = listed.map((j) => tickOf(j.id));
  assert.equal(ticks.filter((x) => x === tick).length, 1, 'exactly one job for the crashed tick');
  assert.equal(new Set(ticks).size, ticks.length, 'no tick has two jobs');
  const fired = (await allEvents(eventLog, 'schedule.fired', 'crashy')).filter((e) => e.data.tickAt === tick);
  assert.equal(fired.length, 1);
  assert.equal(fired[0]!.data.source, 'recovery');
});

test('a scheduler SIGKILLed between claiming the job id and adding the job: the tick is taken over and its job added, once', async (t) => {
  const { config, store, eventLog, jobs, claims } = env(t);
  const schedule = scheduleSchema.parse({ id: 'half-added', cron: '*/2 * * * * *', target: { pid: target.pid }, overlap: 'queue' });
  await store.create(schedule);
  const tick = nextRuns(schedule, 1, Date.now() - 20_000)[0]!.getTime();
  const crashed = await runCrashingScheduler(config, 'crash-before-add', 'half-added', tick);
  assert.equal(crashed.signal, 'SIGKILL');
  assert.equal(crashed.claimedTick, tick);
  const jobId = tickJobId('half-added', tick);
  assert.equal(await jobs.getJob(jobId), null, 'the dead scheduler added no job');

  const procs = await Promise.all([1, 2].map(() => startSchedulerProcess(config)));
  t.after(() => Promise.all(procs.map((p) => p.stop())));
  const claim = await waitFor('the abandoned tick to be finished', async () => {
    const c = await claims.get('half-added', tick);
    return c?.state === 'enqueued' ? c : null;
  });
  assert.equal(claim.jobId, jobId);
  const job = await jobs.getJob(jobId);
  assert.ok(job, 'the tick has its job');
  assert.equal(job.state, 'waiting');
  const waiting = (await allEvents(eventLog, 'job.waiting')).filter((e) => e.jobId === jobId);
  assert.equal(waiting.length, 1, 'announced once');
  assert.equal(waiting[0]!.data.checkpointId, (job.data as { checkpointId: string }).checkpointId, 'the announced checkpoint is the job\'s');
  const fired = (await allEvents(eventLog, 'schedule.fired', 'half-added')).filter((e) => e.data.tickAt === tick);
  assert.equal(fired.length, 1);
});

test('killed after enqueueing but before marking the claim, and the job then finished and was removed: no second job', async (t) => {
  const { config, store, eventLog, jobs, claims } = env(t);
  const schedule = scheduleSchema.parse({ id: 'gone-job', cron: '*/2 * * * * *', target: { pid: target.pid }, overlap: 'queue' });
  await store.create(schedule);
  // A tick in the past that no live replica will fire again.
  const tick = nextRuns(schedule, 1, Date.now() - 20_000)[0]!.getTime();
  const crashed = await runCrashingScheduler(config, 'crash-after-enqueue', 'gone-job', tick);
  assert.equal(crashed.signal, 'SIGKILL');
  assert.equal(crashed.claimedTick, tick);
  const jobId = tickJobId('gone-job', tick);
  // The job "finished" and was removed by the queue's retention.
  const queue = new Queue(queueNameFor('test-node'), { connection: redis, prefix: config.redis!.prefix });
  t.after(() => queue.close());
  assert.equal(await queue.remove(jobId), 1);

  const procs = await Promise.all([1, 2].map(() => startSchedulerProcess(config)));
  t.after(() => Promise.all(procs.map((p) => p.stop())));
  const claim = await waitFor('the abandoned tick to be finished', async () => {
    const c = await claims.get('gone-job', tick);
    return c?.state === 'enqueued' ? c : null;
  });
  assert.equal(claim.jobId, jobId);
  assert.equal(await jobs.getJob(jobId), null, 'not enqueued a second time');
  const waiting = (await allEvents(eventLog, 'job.waiting')).filter((e) => e.jobId === jobId);
  assert.equal(waiting.length, 1, 'the job was added once, by the process that died');
  const fired = (await allEvents(eventLog, 'schedule.fired', 'gone-job')).filter((e) => e.data.tickAt === tick);
  assert.equal(fired.length, 1, 'the tick is reported once, by the taker-over');
  // And a finished tick stays finished: nobody can claim it again.
  assert.equal(await claims.claim('gone-job', tick, 'late-replica', 1000), false);
});
