// Two nodes as users run them, on this one machine: node A a whole service (API, scheduler, worker), node B a worker
// and an API of its own, each with its own storage root and CRIU service, on one Redis, sharing an s3rver bucket.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import type { ConfigInput } from '../../src/config/schema.js';
import { jobKeyFileOf } from '../../src/security/key-file.js';
import { api, startServiceUnderTest, type ServiceUnderTest } from '../api/harness.js';
import { TestS3 } from '../helpers/s3.js';
import { waitUntil } from '../helpers/wait.js';

export interface TwoServices {
  /** Node A (`test-node`): API, scheduler and worker. */
  a: ServiceUnderTest;
  s3: TestS3;
  /** Node B's API. */
  bUrl: string;
  bRoot: string;
  /** Starts node B's worker (again, after stopWorkerB). */
  startWorkerB(): Promise<void>;
  stopWorkerB(): Promise<void>;
}

/** Both nodes up (node B's worker running); undefined when CRIU is missing. Everything stops after the test. */
export async function startTwoServices(t: TestContext): Promise<TwoServices | undefined> {
  const s3 = await TestS3.start();
  const remote = await s3.remoteConfig();
  const a = await startServiceUnderTest(t, { storage: { remote, keepLocal: true } });
  // Registered after the services' own cleanup: the bucket outlives them.
  t.after(() => s3.stop());
  if (!a) return undefined;
  const bDir = await mkdtemp(path.join(os.tmpdir(), 'ckpt-node-b-'));
  t.after(() => rm(bDir, { recursive: true, force: true }));
  const bRoot = path.join(bDir, 'checkpoints');
  const b: ConfigInput = {
    node: 'node-b',
    storage: { root: bRoot, remote, keepLocal: true },
    criu: { runtimeDir: path.join(bDir, 'run') },
    // The deployment's one key, copied to every node.
    security: { jobKeyFile: jobKeyFileOf(a.config) },
  };
  const bApi = await a.startAnother(b);
  let worker: { close(): Promise<void> } | undefined;
  const two: TwoServices = {
    a,
    s3,
    bUrl: bApi.url,
    bRoot,
    async startWorkerB() {
      worker = await a.startWorker(b);
    },
    async stopWorkerB() {
      await worker?.close();
      worker = undefined;
    },
  };
  await two.startWorkerB();
  return two;
}

/** Polls the job through the API until it has finished (completed or failed). */
export async function finished(url: string, jobId: string): Promise<any> {
  return waitUntil(
    `job ${jobId} to finish`,
    async () => {
      const job = (await api(url, 'GET', `/api/v1/jobs/${jobId}`)).json;
      return job?.state === 'completed' || job?.state === 'failed' ? job : undefined;
    },
    { timeoutMs: 90_000, pollMs: 100 },
  );
}
