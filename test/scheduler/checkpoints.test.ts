import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { Catalog } from '../../src/catalog/catalog.js';
import { CheckpointStore } from '../../src/catalog/checkpoint-store.js';
import { configSchema, type Config } from '../../src/config/schema.js';
import { EventLog } from '../../src/events/event-log.js';
import { JobQueue } from '../../src/queue/job-queue.js';
import { ScheduleStore } from '../../src/scheduler/schedule-store.js';
import { Scheduler } from '../../src/scheduler/scheduler.js';
import { scheduleSchema, type ScheduleInput } from '../../src/scheduler/schema.js';
import { runWorker } from '../../workers/main.js';
import { requireCriu, startTestCriuService } from '../helpers/criu.js';
import { TestRedis } from '../helpers/redis.js';
import { startCounter, type Counter } from '../helpers/targets.js';
import { allEvents, startSchedulerProcess, waitFor } from './harness.js';

// Real Redis, real CRIU service, the real worker (in this process), real targets; schedulers in this process or
// in child processes.

interface Setup {
  config: Config;
  client: Redis;
  eventLog: EventLog;
  store: ScheduleStore;
  catalog: Catalog;
  jobs: JobQueue;
  root: string;
  /** Cleanups run in reverse order of registration, before Redis and CRIU go. */
  defer(fn: () => unknown): void;
  target(ballastMiB?: number): Promise<Counter>;
  create(input: Partial<ScheduleInput> & { id: string }): Promise<void>;
  /** A Scheduler in this process; `logs` collects its log lines. */
  scheduler(logs?: string[]): Promise<Scheduler>;
  /** Waits until no job of the schedule is waiting or active. */
  settle(scheduleId: string): Promise<void>;
}

async function setup(t: TestContext): Promise<Setup | undefined> {
  const criu = await requireCriu(t);
  if (!criu) return undefined;
  const cleanups: (() => unknown)[] = [];
  t.after(async () => {
    for (const fn of cleanups.reverse()) await fn();
  });
  const defer = (fn: () => unknown) => void cleanups.push(fn);
  const redisServer = await TestRedis.start();
  defer(() => redisServer.stop());
  const service = await startTestCriuService(criu);
  defer(() => service.cleanup());
  const root = await mkdtemp(path.join(os.tmpdir(), 'ckpt-sched-store-'));
  defer(() => rm(root, { recursive: true, force: true }));
  const config = configSchema.parse({
    node: 'node-a',
    redis: { url: redisServer.url, prefix: 'ckpt' },
    storage: { root },
    criu: { socket: service.socketPath, logLevel: 2 },
    worker: { concurrency: 2, backoff: { baseDelayMs: 200, maxDelayMs: 1000 } },
    scheduler: { claimLeaseMs: 2000, sweepIntervalMs: 200, eventsLeaseMs: 1000 },
  });
  const client = new Redis(redisServer.url, { maxRetriesPerRequest: null });
  const eventLog = new EventLog(client, { key: 'ckpt:events' });
  const catalog = new Catalog(client, { prefix: 'ckpt', store: new CheckpointStore({ root }), node: 'node-a' });
  const jobs = new JobQueue({ connection: redisServer.url, prefix: 'ckpt', node: 'node-a', eventLog, defaults: config.worker });
  const store = new ScheduleStore(client, 'ckpt');
  defer(async () => {
    await jobs.close();
    client.disconnect();
  });
  const worker = await runWorker(config, { handleSignals: false });
  defer(() => worker.close());
  return {
    config,
    client,
    eventLog,
    store,
    catalog,
    jobs,
    root,
    defer,
    async target(ballastMiB = 0) {
      const c = await startCounter(ballastMiB);
      defer(() => c.kill());
      return c;
    },
    async create(input) {
      await store.create(scheduleSchema.parse({ target: { pid: 0 }, ...input }));
    },
    async scheduler(logs) {
      const stream = new Writable({
        write(chunk, _enc, done) {
          logs?.push(JSON.parse(String(chunk)).msg);
          done();
        },
      });
      const s = new Scheduler({ redis: client, store, enqueuer: jobs, eventLog, catalog, config, logger: pino({ level: 'info' }, stream) });
      await s.start();
      defer(() => s.stop());
      return s;
    },
    async settle(scheduleId) {
      await waitFor(
        `jobs of ${scheduleId} to finish`,
        async () => {
          const pending = await jobs.listJobs({ scheduleId, limit: 1000 });
          return pending.every((j) => j.state === 'completed' || j.state === 'failed') || null;
        },
        60_000,
        100,
      );
    },
  };
}

/** Checkpoint folders on disk for a target (complete ones; attempt folders start with '.'). */
async function foldersOf(root: string, targetKey: string): Promise<string[]> {
  return (await readdir(path.join(root, targetKey)).catch(() => [])).filter((n) => !n.startsWith('.')).sort();
}

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

test('overlap skip: ticks during a slow dump give schedule.skipped, never a second job at the same time', async (t) => {
  const s = await setup(t);
  if (!s) return;
  // 256 MiB at CRIU's most verbose log level: a dump (with the queue around it) takes longer than the 1 s between ticks.
  const target = await s.target(256);
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

test('retention keepLast 2 after 5 runs: 2 in the catalog, 2 folders on disk; pinned and in-use ones survive', async (t) => {
  const s = await setup(t);
  if (!s) return;
  const target = await s.target(16);
  // A schedule that does not tick during the test: its runs are trigger-now runs, one after another.
  await s.create({ id: 'keep2', cron: '0 0 1 1 *', target: { pid: target.pid }, retention: { keepLast: 2 } });
  const logs: string[] = [];
  const scheduler = await s.scheduler(logs);
  const pruned = () => allEvents(s.eventLog, 'checkpoint.pruned', 'keep2');
  const run = async () => {
    const { jobId } = await scheduler.trigger('keep2');
    await s.settle('keep2');
    return jobId;
  };

  const jobIds: string[] = [];
  for (let i = 0; i < 5; i++) jobIds.push(await run());
  await waitFor('3 prunes', async () => (await pruned()).length === 3 || null);
  let listed = await s.catalog.list({ schedule: 'keep2', limit: Infinity });
  assert.deepEqual(listed.map((c) => c.jobId), [jobIds[4], jobIds[3]], 'the newest two remain');
  const key = listed[0]!.target.key;
  assert.deepEqual(await foldersOf(s.root, key), listed.map((c) => c.id).sort());
  for (const e of await pruned()) {
    assert.equal(e.data.reason, 'keepLast');
    assert.ok((e.data.bytes as number) > 16 * 1024 * 1024);
  }
  const prunedIds = (await pruned()).map((e) => e.data.checkpointId);
  for (const id of prunedIds) {
    assert.ok(logs.some((l) => new RegExp(`^pruned checkpoint ${id} of schedule keep2 \\(keepLast 2\\): freed \\d+ bytes$`).test(l)), `log line for ${id}`);
  }

  // Pin the older of the two, and let a (pretend) waiting restore hold the newer: two more runs remove neither.
  const [inUse, pinned] = listed;
  await s.catalog.pin(pinned!.id);
  await s.catalog.acquireRef(inUse!.id, 'restore-job-1');
  jobIds.push(await run(), await run());
  await sleep(1000); // the pruner has had its chance
  listed = await s.catalog.list({ schedule: 'keep2', limit: Infinity });
  assert.deepEqual(
    listed.map((c) => c.jobId),
    [jobIds[6], jobIds[5], jobIds[4], jobIds[3]],
    'pinned one kept, in-use one kept, and the newest two',
  );
  assert.equal((await foldersOf(s.root, key)).length, 4);

  // The restore is done: the next run removes it (beyond the newest two unpinned), the pinned one stays.
  await s.catalog.releaseRef(inUse!.id, 'restore-job-1');
  jobIds.push(await run());
  await waitFor('the formerly in-use one to go', async () => (await pruned()).some((e) => e.data.checkpointId === inUse!.id) || null);
  listed = await s.catalog.list({ schedule: 'keep2', limit: Infinity });
  assert.deepEqual(listed.map((c) => c.jobId), [jobIds[7], jobIds[6], jobIds[3]]);
  assert.equal(listed[2]!.pinned, true);
  assert.deepEqual(await foldersOf(s.root, key), listed.map((c) => c.id).sort());
});
