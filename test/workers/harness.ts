import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { TestContext } from 'node:test';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { Catalog } from '../../src/catalog/catalog.js';
import { CheckpointStore } from '../../src/catalog/checkpoint-store.js';
import { configSchema, type Config, type ConfigInput } from '../../src/config/schema.js';
import type { CriuService } from '../../src/criu/criu-service.js';
import { EventLog } from '../../src/events/event-log.js';
import type { FeedEvent } from '../../src/events/types.js';
import { JobQueue } from '../../src/queue/job-queue.js';
import type { JobView } from '../../src/queue/job-view.js';
import { loadSigner } from '../../src/security/key-file.js';
import type { Signer } from '../../src/security/signer.js';
import { TargetPolicy } from '../../src/targets/policy.js';
import { CkptWorker } from '../../workers/ckpt-worker.js';
import { requireCriu, startTestCriuService } from '../helpers/criu.js';
import { TestRedis } from '../helpers/redis.js';

/** Worker settings for tests: short backoff and stall detection so retries happen within seconds. */
export const FAST_WORKER: ConfigInput['worker'] = {
  backoff: { baseDelayMs: 200, maxDelayMs: 1000, jitter: 0.2 },
  lockDurationMs: 2000,
  stalledIntervalMs: 1000,
  targetLeaseMs: 2000,
  busyWaitMs: 10_000,
  pidFreeTimeoutMs: 3000,
  shutdownGraceMs: 5000,
};

export interface Harness {
  config: Config;
  redis: TestRedis;
  criu: CriuService;
  root: string;
  /** The deployment's key (security.jobKeyFile of every config here), to sign jobs and manifests as ckpt does. */
  signer: Signer;
  client: Redis;
  eventLog: EventLog;
  store: CheckpointStore;
  catalog: Catalog;
  queue: JobQueue;
  /** Config for a node of this setup (same Redis, store and CRIU). */
  configFor(node: string, worker?: ConfigInput['worker']): Config;
  /** Runs `fn` at the end of the test, before everything set up earlier is torn down. */
  defer(fn: () => unknown): void;
  /** Starts a worker in this process (closed at the end of the test); `log` receives its service log. */
  startWorker(config?: Config, log?: Logger): Promise<CkptWorker>;
  /** Polls until the job is completed or failed. */
  waitFinished(jobId: string, timeoutMs?: number): Promise<JobView>;
  /** Every event so far about a job. */
  eventsOf(jobId: string): Promise<FeedEvent[]>;
}

/**
 * A private Redis, a private CRIU service, a temporary storage root, a JobQueue; everything is removed after the test.
 * Undefined when CRIU is unavailable (the test is then skipped, or failed in CI, by requireCriu).
 */
export async function startHarness(t: TestContext, worker: ConfigInput['worker'] = {}): Promise<Harness | undefined> {
  const located = await requireCriu(t);
  if (!located) return undefined;
  // node:test runs after-hooks first-registered first; teardown must be the reverse of setup (workers before Redis).
  const cleanups: (() => unknown)[] = [];
  const defer = (fn: () => unknown) => cleanups.push(fn);
  t.after(async () => {
    for (const fn of cleanups.reverse()) await fn();
  });
  const redis = await TestRedis.start();
  defer(() => redis.stop());
  const criu = await startTestCriuService(located);
  defer(() => criu.cleanup());
  const root = await mkdtemp(path.join(os.tmpdir(), 'ckpt-store-'));
  defer(() => rm(root, { recursive: true, force: true }));
  const keyDir = await mkdtemp(path.join(os.tmpdir(), 'ckpt-key-'));
  defer(() => rm(keyDir, { recursive: true, force: true }));
  const jobKeyFile = path.join(keyDir, 'job.key');
  const configFor = (node: string, w: ConfigInput['worker'] = {}) =>
    configSchema.parse({
      node,
      redis: { url: redis.url, prefix: 'ckpt' },
      storage: { root },
      security: { jobKeyFile },
      criu: { socket: criu.socketPath },
      worker: { ...FAST_WORKER, ...worker, ...w },
    });
  const config = configFor('node-a');
  const client = new Redis(redis.url, { maxRetriesPerRequest: null });
  client.on('error', () => undefined);
  const eventLog = new EventLog(client, { key: 'ckpt:events' });
  const signer = loadSigner(jobKeyFile);
  const store = new CheckpointStore({ root, signer });
  const catalog = new Catalog(client, { prefix: 'ckpt', store, node: config.node });
  const queue = new JobQueue({
    connection: redis.url,
    prefix: 'ckpt',
    node: config.node,
    eventLog,
    defaults: config.worker,
    checkpoints: catalog,
    signer,
  });
  defer(async () => {
    await queue.close();
    client.disconnect();
  });
  const h: Harness = {
    config,
    redis,
    criu,
    root,
    signer,
    client,
    eventLog,
    store,
    catalog,
    queue,
    configFor,
    defer,
    async startWorker(cfg = config, log) {
      const w = new CkptWorker({
        log,
        config: cfg,
        eventLog,
        criuSocket: criu.socketPath,
        catalog: new Catalog(client, { prefix: 'ckpt', store, node: cfg.node }),
        store,
        policy: new TargetPolicy({ protectedPids: () => (criu.pid ? [criu.pid] : []) }),
        signer,
      });
      await w.start();
      defer(() => w.close());
      return w;
    },
    async waitFinished(jobId, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const job = await queue.getJob(jobId);
        if (job && (job.state === 'completed' || job.state === 'failed')) return job;
        if (Date.now() > deadline) throw new Error(`job ${jobId} not finished after ${timeoutMs} ms: ${JSON.stringify(job)}`);
        await sleep(50);
      }
    },
    async eventsOf(jobId) {
      return (await eventLog.readAfter('0', 100_000)).filter((e) => e.jobId === jobId);
    },
  };
  return h;
}
