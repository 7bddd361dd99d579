// Issue 14: whoever can write to Redis must not be root on the workers. Jobs added to a node's queue behind ckpt's
// back (BullMQ directly), replayed signatures, and catalog entries rewritten in Redis, against a real service (API,
// worker, its own CRIU service) on a private Redis.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Queue, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { EventLog } from '../../src/events/event-log.js';
import { signJobData } from '../../src/queue/job-signature.js';
import { queueNameFor } from '../../src/queue/keys.js';
import { jobKeyFileOf, loadSigner } from '../../src/security/key-file.js';
import { TargetPolicy } from '../../src/targets/policy.js';
import { CkptWorker } from '../../workers/ckpt-worker.js';
import { isAlive, killAndReap, startCounter, type Counter } from '../helpers/targets.js';
import { api, startServiceUnderTest, type ServiceUnderTest } from '../api/harness.js';
import { startHarness } from './harness.js';

const CP = '20261127T134501Z-1a2b3c4d';

interface Attacker {
  svc: ServiceUnderTest;
  node: string;
  redis: Redis;
  /** The node's BullMQ queue, as anyone with Redis access can open it. */
  bull: Queue;
  events: EventLog;
  /** A folder for files a refused command would have written. */
  dir: string;
}

async function setup(t: TestContext): Promise<Attacker | undefined> {
  const svc = await startServiceUnderTest(t);
  if (!svc) return undefined;
  const redis = new Redis(svc.redis.url, { maxRetriesPerRequest: null });
  const bull = new Queue(queueNameFor(svc.config.node), { connection: redis, prefix: svc.config.redis.prefix });
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ckpt-attacker-'));
  t.after(async () => {
    await bull.close();
    redis.disconnect();
    await rm(dir, { recursive: true, force: true });
  });
  return { svc, node: svc.config.node, redis, bull, events: new EventLog(redis, { key: `${svc.config.redis.prefix}:events` }), dir };
}

/** Waits until the job has finished (completed or failed) and returns it with its state. */
async function finished(bull: Queue, id: string, timeoutMs = 60_000): Promise<{ job: Job; state: string }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const job = await bull.getJob(id);
    if (job?.finishedOn) return { job, state: await job.getState() };
    if (Date.now() > deadline) throw new Error(`job ${id} not finished after ${timeoutMs} ms`);
    await sleep(50);
  }
}

async function viaApi(svc: ServiceUnderTest, pathname: string, body: unknown): Promise<any> {
  const res = await api(svc.url, 'POST', pathname, body);
  assert.equal(res.status, 202, res.text);
  const deadline = Date.now() + 60_000;
  for (;;) {
    const job = (await api(svc.url, 'GET', `/api/v1/jobs/${res.json.jobId}`)).json;
    if (job?.state === 'completed' || job?.state === 'failed') return job;
    if (Date.now() > deadline) throw new Error(`job ${res.json.jobId} not finished: ${JSON.stringify(job)}`);
    await sleep(50);
  }
}

/** A checkpoint of a fresh counter (still running), made through the API. */
async function checkpointOf(t: TestContext, a: Attacker): Promise<{ target: Counter; checkpointId: string; key: string }> {
  const target = await startCounter();
  t.after(() => target.kill());
  const dump = await viaApi(a.svc, '/api/v1/dumps', { target: { pid: target.pid } });
  assert.equal(dump.state, 'completed', dump.failedReason);
  const checkpointId = dump.result.checkpointId as string;
  const key = (await api(a.svc.url, 'GET', `/api/v1/checkpoints/${checkpointId}`)).json.target.key as string;
  return { target, checkpointId, key };
}

async function refusedEvent(a: Attacker, jobId: string) {
  return (await a.events.readAfter('0', 100_000)).find((e) => e.event === 'job.refused' && e.jobId === jobId);
}

test('the reproduction: a restore job with exec_cmd added straight to the queue is refused, the command never runs, the service stays healthy', async (t) => {
  const a = await setup(t);
  if (!a) return;
  const { target, checkpointId, key } = await checkpointOf(t, a);
  await killAndReap(target.pid); // restorable: nothing but the refusal stands in the way
  const proof = path.join(a.dir, 'pwned');

  await a.bull.add(
    'restore',
    { checkpointId, target: key, node: a.node, criu: { execCmd: ['/bin/sh', '-c', `id > ${proof}`] } },
    { jobId: 'injected-exec', attempts: 5 },
  );
  const { job, state } = await finished(a.bull, 'injected-exec');
  assert.equal(state, 'failed');
  assert.equal(job.attemptsMade, 1, 'failed at once, not retried');
  assert.match(job.failedReason, /no signature/);
  assert.equal(existsSync(proof), false, 'the command never ran');
  assert.equal(isAlive(target.pid), false, 'nothing was restored');
  const refused = await refusedEvent(a, 'injected-exec');
  assert.equal(refused?.data.code, 'EJOB_UNSIGNED', 'announced as a security event');

  // Healthy: /healthz, then the real restore and a dump of the restored process work.
  assert.equal((await api(a.svc.url, 'GET', '/healthz')).status, 200);
  const restore = await viaApi(a.svc, '/api/v1/restores', { checkpointId });
  assert.equal(restore.state, 'completed', restore.failedReason);
  assert.ok(isAlive(target.pid));
  const dump = await viaApi(a.svc, '/api/v1/dumps', { target: { pid: target.pid } });
  assert.equal(dump.state, 'completed', dump.failedReason);
});

test('unsigned jobs, replayed signatures and signed jobs that break the schema are refused; the processes are untouched', async (t) => {
  const a = await setup(t);
  if (!a) return;
  const one = await checkpointOf(t, a);
  const two = await startCounter();
  t.after(() => two.kill());
  await killAndReap(one.target.pid);

  // A valid shape, no signature.
  await a.bull.add('restore', { checkpointId: one.checkpointId, target: one.key, node: a.node }, { jobId: 'unsigned' });
  const unsigned = await finished(a.bull, 'unsigned');
  assert.equal(unsigned.state, 'failed');
  assert.match(unsigned.job.failedReason, /no signature/);
  assert.equal(isAlive(one.target.pid), false);

  // A real, signed dump job's data: its signature does not carry over to another job, nor to other data.
  const genuine = (await a.bull.getJobs(['completed'])).find((j) => j.name === 'dump')!;
  assert.ok(genuine.data.signature, 'jobs enqueued by ckpt are signed');
  await a.bull.add('dump', genuine.data, { jobId: 'replayed-as-another-job' });
  // Same id and signature, other data (once the job is gone, as BullMQ drops finished jobs past keepCompleted).
  await genuine.remove();
  await a.bull.add('dump', { ...genuine.data, target: { pid: two.pid }, leaveRunning: false }, { jobId: genuine.id });
  for (const id of ['replayed-as-another-job', genuine.id!]) {
    const { job, state } = await finished(a.bull, id);
    assert.equal(state, 'failed', id);
    assert.match(job.failedReason, /signature does not verify/, id);
    assert.equal((await refusedEvent(a, id))?.data.code, 'EJOB_SIGNATURE');
  }
  assert.ok(two.alive(), 'the replay on other data did not dump-and-stop the second process');
  assert.equal((await api(a.svc.url, 'GET', `/api/v1/checkpoints?target=python3-${two.pid}`)).json.items.length, 0);

  // Signed with the deployment's key (a buggy or older producer): the worker's schema check still refuses.
  const signer = loadSigner(jobKeyFileOf(a.svc.config));
  const proof = path.join(a.dir, 'pwned');
  const signed = (jobId: string, data: object) => signJobData(signer, { type: 'restore', jobId, node: a.node }, data);
  await a.bull.add('restore', signed('dotdot', { checkpointId: '../../../etc', target: one.key, node: a.node }), { jobId: 'dotdot' });
  await a.bull.add(
    'restore',
    signed('exec', { checkpointId: one.checkpointId, target: one.key, node: a.node, criu: { execCmd: ['/bin/sh', '-c', `id > ${proof}`] } }),
    { jobId: 'exec' },
  );
  await a.bull.add('restore', signed('outside', { checkpointId: one.checkpointId, target: '../../tmp', node: a.node }), { jobId: 'outside' });
  const dotdot = await finished(a.bull, 'dotdot');
  assert.match(dotdot.job.failedReason, /checkpointId: not a checkpoint id/);
  const exec = await finished(a.bull, 'exec');
  assert.match(exec.job.failedReason, /criu: Unrecognized key: "execCmd"/);
  const outside = await finished(a.bull, 'outside');
  assert.match(outside.job.failedReason, /target: not a target key/);
  for (const id of ['dotdot', 'exec', 'outside']) {
    assert.deepEqual((await refusedEvent(a, id))?.data.code, 'EJOB_INVALID', id);
  }
  assert.deepEqual((await refusedEvent(a, 'exec'))?.data.fields, ['criu']);
  assert.equal(existsSync(proof), false);
  assert.equal(isAlive(one.target.pid), false, 'nothing was restored');
  assert.equal((await api(a.svc.url, 'GET', '/healthz')).status, 200);
});

test('a catalog entry rewritten in Redis, or a manifest altered on disk, does not steer a restore', async (t) => {
  const a = await setup(t);
  if (!a) return;
  const one = await checkpointOf(t, a);
  const two = await checkpointOf(t, a);
  await Promise.all([killAndReap(one.target.pid), killAndReap(two.target.pid)]);
  const entry = `${a.svc.config.redis.prefix}:catalog:cp:${one.checkpointId}`;
  const original = (await a.redis.hget(entry, 'manifest'))!;
  const otherManifest = (await a.redis.hget(`${a.svc.config.redis.prefix}:catalog:cp:${two.checkpointId}`, 'manifest'))!;

  // Pointing outside the storage root: the API does not sign such a job.
  await a.redis.hset(entry, 'manifest', JSON.stringify({ ...JSON.parse(original), target: { ...JSON.parse(original).target, key: '../../../tmp' } }));
  const outside = await api(a.svc.url, 'POST', '/api/v1/restores', { checkpointId: one.checkpointId });
  assert.equal(outside.status, 400, outside.text);
  assert.match(outside.json.message, /target: not a target key/);

  // Pointing at another checkpoint (a genuine, signed manifest of another folder): refused, neither is restored.
  await a.redis.hset(entry, 'manifest', otherManifest);
  const swapped = await viaApi(a.svc, '/api/v1/restores', { checkpointId: one.checkpointId });
  assert.equal(swapped.state, 'failed');
  assert.match(swapped.failedReason, /catalog entry .* does not match its signed manifest/);
  assert.equal(isAlive(one.target.pid), false);
  assert.equal(isAlive(two.target.pid), false);

  // The entry put right, but the manifest on disk altered: its signature no longer verifies.
  await a.redis.hset(entry, 'manifest', original);
  const manifestFile = path.join(a.svc.config.storage.root, one.key, one.checkpointId, 'manifest.json');
  const onDisk = JSON.parse(await readFile(manifestFile, 'utf8'));
  await writeFile(manifestFile, JSON.stringify({ ...onDisk, target: { ...onDisk.target, pid: two.target.pid } }), { mode: 0o600 });
  const altered = await viaApi(a.svc, '/api/v1/restores', { checkpointId: one.checkpointId });
  assert.equal(altered.state, 'failed');
  assert.match(altered.failedReason, /not trusting checkpoint folder .*: its signature does not verify/);
  assert.equal(altered.attemptsMade, 1, 'not retried');
  assert.equal(isAlive(one.target.pid), false);

  // Put back as committed, it restores.
  await writeFile(manifestFile, JSON.stringify(onDisk), { mode: 0o600 });
  const restored = await viaApi(a.svc, '/api/v1/restores', { checkpointId: one.checkpointId });
  assert.equal(restored.state, 'completed', restored.failedReason);
  assert.ok(isAlive(one.target.pid));
});

test('a refused job is logged as one structured security line', async (t) => {
  const h = await startHarness(t);
  if (!h) return;
  const lines: { fields: Record<string, unknown>; message: string }[] = [];
  const log = { warn: (fields: Record<string, unknown>, message: string) => void lines.push({ fields, message }) };
  const worker = new CkptWorker({
    config: h.config,
    eventLog: h.eventLog,
    criuSocket: h.criu.socketPath,
    catalog: h.catalog,
    store: h.store,
    policy: new TargetPolicy({}),
    signer: h.signer,
    log: log as unknown as Logger,
  });
  await worker.start();
  h.defer(() => worker.close());
  const bull = new Queue(queueNameFor(h.config.node), { connection: h.client, prefix: h.config.redis.prefix });
  h.defer(() => bull.close());

  await bull.add('dump', { target: { pid: process.pid }, node: h.config.node, checkpointId: CP }, { jobId: 'unsigned-dump' });
  const { state } = await finished(bull, 'unsigned-dump');
  assert.equal(state, 'failed');
  assert.deepEqual(lines, [
    {
      fields: {
        security: 'job.refused',
        jobId: 'unsigned-dump',
        jobType: 'dump',
        node: h.config.node,
        code: 'EJOB_UNSIGNED',
        fields: [],
        reason: "dump job unsigned-dump refused: its data has no signature (not enqueued by ckpt's API or scheduler)",
      },
      message: "dump job unsigned-dump refused: its data has no signature (not enqueued by ckpt's API or scheduler)",
    },
  ]);
});
