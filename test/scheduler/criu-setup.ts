import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { Catalog } from '../../src/catalog/catalog.js';
import { CheckpointStore } from '../../src/catalog/checkpoint-store.js';
import { configSchema, type Config } from '../../src/config/schema.js';
import { EventLog } from '../../src/events/event-log.js';
import { JobQueue } from '../../src/queue/job-queue.js';
import { ScheduleStore } from '../../src/scheduler/schedule-store.js';
import { loadSigner } from '../../src/security/key-file.js';
import { Scheduler } from '../../src/scheduler/scheduler.js';
import { scheduleSchema, type ScheduleInput } from '../../src/scheduler/schema.js';
import { startService } from '../../src/app/start-service.js';
import { holdProcesses, requireCriu, startTestCriuService } from '../helpers/criu.js';
import { TestRedis } from '../helpers/redis.js';
import { startCounter, type Counter } from '../helpers/targets.js';
import { waitFor } from './harness.js';

/**
 * For the scheduler tests with real CRIU: a private Redis and CRIU service, a temporary storage root, the real worker
 * (in this process), real targets. Schedulers run in the test process or in child processes.
 */
export interface Setup {
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
  /** Holds the CRIU service (SIGSTOP) until the returned function is called: every request to it waits meanwhile. */
  holdCriu(): Promise<() => void>;
  create(input: Partial<ScheduleInput> & { id: string }): Promise<void>;
  /** A Scheduler in this process; `logs` collects its log lines. */
  scheduler(logs?: string[]): Promise<Scheduler>;
  /** Waits until no job of the schedule is waiting or active. */
  settle(scheduleId: string): Promise<void>;
}

export async function setup(t: TestContext): Promise<Setup | undefined> {
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
  const keyDir = await mkdtemp(path.join(os.tmpdir(), 'ckpt-key-'));
  defer(() => rm(keyDir, { recursive: true, force: true }));
  const config = configSchema.parse({
    node: 'node-a',
    redis: { url: redisServer.url, prefix: 'ckpt' },
    storage: { root },
    security: { jobKeyFile: path.join(keyDir, 'job.key') },
    criu: { socket: service.socketPath, logLevel: 2 },
    worker: { concurrency: 2, backoff: { baseDelayMs: 200, maxDelayMs: 1000 } },
    scheduler: { claimLeaseMs: 2000, sweepIntervalMs: 200, eventsLeaseMs: 1000 },
  });
  const client = new Redis(redisServer.url, { maxRetriesPerRequest: null });
  const eventLog = new EventLog(client, { key: 'ckpt:events' });
  const signer = loadSigner(config.security.jobKeyFile);
  const catalog = new Catalog(client, { prefix: 'ckpt', store: new CheckpointStore({ root, signer }), node: 'node-a' });
  const jobs = new JobQueue({ connection: redisServer.url, prefix: 'ckpt', node: 'node-a', eventLog, defaults: config.worker, checkpoints: catalog, signer });
  const store = new ScheduleStore(client, 'ckpt');
  defer(async () => {
    await jobs.close();
    client.disconnect();
  });
  const worker = await startService({ config, roles: { api: false, worker: true, scheduler: false }, log: pino({ level: 'silent' }), version: 'test' });
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
    async holdCriu() {
      const release = await holdProcesses([service.pid!]);
      defer(release);
      return release;
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
export async function foldersOf(root: string, targetKey: string): Promise<string[]> {
  return (await readdir(path.join(root, targetKey)).catch(() => [])).filter((n) => !n.startsWith('.')).sort();
}

