// A private ckpt stack for benchmarks that go through the queue: Redis, a CRIU service, the catalog and store in a
// temporary root, a JobQueue and a CkptWorker, and a follower of the event stream. close() removes everything.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { Catalog } from '../../src/catalog/catalog.js';
import { CheckpointStore } from '../../src/catalog/checkpoint-store.js';
import { configSchema, type Config } from '../../src/config/schema.js';
import { CriuClient, locateCriu, type LocatedCriu } from '../../src/criu/index.js';
import { EventLog } from '../../src/events/event-log.js';
import type { FeedEvent } from '../../src/events/types.js';
import { JobQueue } from '../../src/queue/job-queue.js';
import { TargetPolicy } from '../../src/targets/policy.js';
import { startTestCriuService } from '../../test/helpers/criu.js';
import { TestRedis } from '../../test/helpers/redis.js';
import { CkptWorker } from '../../workers/ckpt-worker.js';

export interface QueueHarnessOptions {
  /** storage.sync of the worker's store. */
  sync: boolean;
  /** Folder-name prefix of the temporary storage root. */
  name: string;
}

export interface QueueHarness {
  criu: LocatedCriu;
  config: Config;
  /** The storage root (checkpoints, and room for a benchmark's own folders). */
  root: string;
  queue: JobQueue;
  catalog: Catalog;
  store: CheckpointStore;
  /** A CriuClient on the same CRIU service, for direct baselines. */
  client: CriuClient;
  /** Resolves each job's finishing event (job.completed, or a final job.failed, which throws). */
  waitFinished(jobIds: Set<string>): Promise<Map<string, FeedEvent>>;
  close(): Promise<void>;
}

export async function startQueueHarness(options: QueueHarnessOptions): Promise<QueueHarness> {
  const criu = await locateCriu();
  const redisServer = await TestRedis.start();
  const service = await startTestCriuService(criu);
  const root = await mkdtemp(path.join(os.tmpdir(), `${options.name}-`));
  const config = configSchema.parse({
    node: 'bench',
    redis: { url: redisServer.url, prefix: 'ckpt' },
    storage: { root, sync: options.sync },
    criu: { socket: service.socketPath },
    worker: { concurrency: 2 },
  });
  const redis = new Redis(redisServer.url, { maxRetriesPerRequest: null });
  const blocking = new Redis(redisServer.url, { maxRetriesPerRequest: null });
  const eventLog = new EventLog(redis, { key: 'ckpt:events' });
  const store = new CheckpointStore({ root, sync: options.sync });
  const catalog = new Catalog(redis, { prefix: 'ckpt', store, node: config.node });
  const queue = new JobQueue({
    connection: redisServer.url,
    prefix: 'ckpt',
    node: config.node,
    eventLog,
    defaults: config.worker,
    checkpoints: catalog,
  });
  const worker = new CkptWorker({
    config,
    eventLog,
    criuSocket: service.socketPath,
    catalog,
    store,
    policy: new TargetPolicy({ protectedPids: () => (service.pid ? [service.pid] : []) }),
  });
  await worker.start();

  let lastEventId = await eventLog.lastId();
  async function waitFinished(jobIds: Set<string>): Promise<Map<string, FeedEvent>> {
    const done = new Map<string, FeedEvent>();
    while (done.size < jobIds.size) {
      for (const e of await eventLog.waitAfter(blocking, lastEventId, 5000)) {
        lastEventId = e.id;
        if ((e.event === 'job.completed' || (e.event === 'job.failed' && e.data.final)) && jobIds.has(e.jobId!)) done.set(e.jobId!, e);
      }
    }
    for (const [id, e] of done) if (e.event === 'job.failed') throw new Error(`job ${id} failed: ${e.data.reason}`);
    return done;
  }

  return {
    criu,
    config,
    root,
    queue,
    catalog,
    store,
    client: new CriuClient({ socketPath: service.socketPath }),
    waitFinished,
    async close() {
      await worker.close();
      await queue.close();
      redis.disconnect();
      blocking.disconnect();
      await service.cleanup();
      await redisServer.stop();
      await rm(root, { recursive: true, force: true });
    },
  };
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}
