// Two (or more) nodes on this one machine for the storage tests: each a worker with its own node name and storage
// root, on the harness's Redis and CRIU, sharing one bucket.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Catalog } from '../../src/catalog/catalog.js';
import { CheckpointStore } from '../../src/catalog/checkpoint-store.js';
import { remoteStorageSchema, type Config, type ConfigInput } from '../../src/config/schema.js';
import { RemoteStore } from '../../src/storage/remote-store.js';
import { TargetPolicy } from '../../src/targets/policy.js';
import { CkptWorker } from '../../workers/ckpt-worker.js';
import { TestS3 } from '../helpers/s3.js';
import type { Counter } from '../helpers/targets.js';
import { startHarness, type Harness } from '../workers/harness.js';

export type RemoteInput = NonNullable<NonNullable<ConfigInput['storage']>['remote']>;

export interface Node {
  config: Config;
  store: CheckpointStore;
  catalog: Catalog;
}

/** A worker of its own node, with its own storage root, on the harness's Redis and CRIU, sharing the bucket. */
export async function startNode(h: Harness, node: string, remote: RemoteInput, storage: { keepLocal: boolean; localCacheBytes?: number }): Promise<Node> {
  const root = await mkdtemp(path.join(os.tmpdir(), `ckpt-${node}-`));
  h.defer(() => rm(root, { recursive: true, force: true }));
  const base = h.configFor(node);
  const config: Config = { ...base, storage: { ...base.storage, root, ...storage, remote: remoteStorageSchema.parse(remote) } };
  const store = new CheckpointStore({ root, signer: h.signer });
  const bucket = new RemoteStore({ config: config.storage.remote!, signer: h.signer });
  const catalog = new Catalog(h.client, { prefix: 'ckpt', store, node, remote: bucket });
  const worker = new CkptWorker({
    config,
    eventLog: h.eventLog,
    criuSocket: h.criu.socketPath,
    catalog,
    store,
    remote: bucket,
    policy: new TargetPolicy({ protectedPids: () => (h.criu.pid ? [h.criu.pid] : []) }),
    signer: h.signer,
  });
  await worker.start();
  h.defer(async () => {
    await worker.close();
    bucket.close();
  });
  return { config, store, catalog };
}

export async function completed(h: Harness, jobId: string) {
  const job = await h.waitFinished(jobId, 90_000);
  assert.equal(job.state, 'completed', job.failedReason);
  return job;
}

/** Waits until the process counts past `value`: it runs on from where it was dumped. */
export async function countsPast(counter: Counter, value: number): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!(counter.alive() && counter.read() > value)) {
    if (Date.now() > deadline) throw new Error(`pid ${counter.pid} did not count past ${value} (alive: ${counter.alive()})`);
    await sleep(20);
  }
}

export async function stages(h: Harness, jobId: string): Promise<string[]> {
  return (await h.eventsOf(jobId)).filter((e) => e.event === 'job.progress').map((e) => String(e.data.stage));
}

/** The harness (Redis, CRIU) and an s3rver bucket, both stopped after the test; undefined when CRIU is missing. */
export async function startWithBucket(
  t: TestContext,
  worker: ConfigInput['worker'] = {},
): Promise<{ h: Harness; s3: TestS3; remote: RemoteInput } | undefined> {
  const h = await startHarness(t, worker);
  if (!h) return undefined;
  const s3 = await TestS3.start();
  h.defer(() => s3.stop());
  return { h, s3, remote: await s3.remoteConfig() };
}
