import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { Catalog } from '../../src/catalog/catalog.js';
import { CheckpointStore } from '../../src/catalog/checkpoint-store.js';
import { configSchema, type Config, type ConfigInput } from '../../src/config/schema.js';
import { CriuClient, locateCriu, type LocatedCriu } from '../../src/criu/index.js';
import { EventLog } from '../../src/events/event-log.js';
import { JobQueue } from '../../src/queue/job-queue.js';
import { TargetPolicy } from '../../src/targets/policy.js';
import { startTestCriuService } from '../../test/helpers/criu.js';
import { TestRedis } from '../../test/helpers/redis.js';
import { throwawaySigner } from '../../test/helpers/signer.js';
import { CkptWorker } from '../../workers/ckpt-worker.js';
import { JobFollower } from './job-follower.js';

/** The queue side of ckpt (queue, worker, catalog) on a private Redis and CRIU service, plus a bare CriuClient to compare with. */
export interface BenchService {
  criuBin: LocatedCriu;
  config: Config;
  /** Temporary folder: storage.root is `<dir>/checkpoints`, workloads.root `<dir>/workloads`. */
  dir: string;
  redis: Redis;
  eventLog: EventLog;
  store: CheckpointStore;
  catalog: Catalog;
  queue: JobQueue;
  client: CriuClient;
  jobs: JobFollower;
  close(): Promise<void>;
}

/** Starts it; `config` adds to the defaults (node `bench`, prefix `ckpt`). */
export async function startBenchService(name: string, config: ConfigInput = {}): Promise<BenchService> {
  const criuBin = await locateCriu();
  const redisServer = await TestRedis.start();
  const service = await startTestCriuService(criuBin);
  const dir = await mkdtemp(path.join(os.tmpdir(), `ckpt-bench-${name}-`));
  const parsed = configSchema.parse({
    node: 'bench',
    redis: { url: redisServer.url, prefix: 'ckpt' },
    workloads: { root: path.join(dir, 'workloads') },
    criu: { socket: service.socketPath },
    ...config,
    storage: { root: path.join(dir, 'checkpoints'), ...config.storage },
  });
  const redis = new Redis(redisServer.url, { maxRetriesPerRequest: null });
  const blocking = new Redis(redisServer.url, { maxRetriesPerRequest: null });
  const eventLog = new EventLog(redis, { key: 'ckpt:events', maxLen: parsed.events.maxLen });
  const signer = throwawaySigner();
  const store = new CheckpointStore({ root: parsed.storage.root, sync: parsed.storage.sync, signer });
  const catalog = new Catalog(redis, { prefix: 'ckpt', store, node: parsed.node });
  const queue = new JobQueue({ connection: redisServer.url, prefix: 'ckpt', node: parsed.node, eventLog, defaults: parsed.worker, checkpoints: catalog, signer });
  const worker = new CkptWorker({
    config: parsed,
    eventLog,
    criuSocket: service.socketPath,
    catalog,
    store,
    policy: new TargetPolicy({ protectedPids: () => (service.pid ? [service.pid] : []) }),
    signer,
  });
  await worker.start();
  return {
    criuBin,
    config: parsed,
    dir,
    redis,
    eventLog,
    store,
    catalog,
    queue,
    client: new CriuClient({ socketPath: service.socketPath }),
    jobs: await JobFollower.start(eventLog, blocking),
    async close() {
      await worker.close();
      await queue.close();
      redis.disconnect();
      blocking.disconnect();
      await service.cleanup();
      await redisServer.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
