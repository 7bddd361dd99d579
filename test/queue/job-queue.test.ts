import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { Catalog } from '../../src/catalog/catalog.js';
import { CheckpointStore } from '../../src/catalog/checkpoint-store.js';
import { makeCheckpoint } from '../catalog/fixtures.js';
import { UnknownCheckpointError } from '../../src/queue/errors.js';
import { ValidationError } from '../../src/common/validation.js';
import { configSchema } from '../../src/config/schema.js';
import { EventLog } from '../../src/events/event-log.js';
import { Queue } from 'bullmq';
import { JobQueue } from '../../src/queue/job-queue.js';
import { queueNameFor } from '../../src/queue/keys.js';
import { isJobLive, NodeQueues } from '../../src/queue/node-queues.js';
import { TestRedis } from '../helpers/redis.js';
import { throwawaySigner } from '../helpers/signer.js';

const CP1 = '20261127T134501Z-00000001';
const CP2 = '20261127T134502Z-00000002';
const CP3 = '20261127T134503Z-00000003';

async function setup(t: TestContext) {
  const server = await TestRedis.start();
  const redis = new Redis(server.url);
  const eventLog = new EventLog(redis, { key: 'ckpt:events' });
  const refs: string[] = [];
  const checkpoints = new Map([
    [CP1, { node: 'node-a', target: { key: 'python3-100' } }],
    [CP2, { node: 'node-b', target: { key: 'python3-200' } }],
    [CP3, { node: 'node-b', target: { key: 'python3-300' } }],
  ]);
  const queue = new JobQueue({
    connection: server.url,
    prefix: 'ckpt',
    node: 'node-a',
    eventLog,
    defaults: configSchema.parse({}).worker,
    signer: throwawaySigner(),
    checkpoints: {
      get: async (id) => checkpoints.get(id) ?? null,
      acquireRef: async (id, jobId) => void refs.push(`${id}:${jobId}`),
    },
  });
  t.after(async () => {
    await queue.close();
    redis.disconnect();
    await server.stop();
  });
  return { queue, eventLog, refs, redis };
}

test('enqueueDump validates, enqueues on the node, announces job.waiting; the job reads back as a JobView', async (t) => {
  const { queue, eventLog } = await setup(t);
  await assert.rejects(queue.enqueueDump({ target: { pid: 'x' } }), (err: unknown) => {
    assert.ok(err instanceof ValidationError);
    assert.equal(err.issues[0]!.field, 'target.pid');
    return true;
  });
  const { jobId, node } = await queue.enqueueDump({ target: { pid: 4242 }, scheduleId: 'nightly' });
  assert.equal(node, 'node-a');
  const view = (await queue.getJob(jobId))!;
  assert.equal(view.type, 'dump');
  assert.equal(view.state, 'waiting');
  assert.equal(view.node, 'node-a');
  assert.equal(view.scheduleId, 'nightly');
  assert.equal(view.attemptsMade, 0);
  assert.deepEqual(view.progress, { stage: 'queued', percent: 0, bytesWritten: 0, bytesExpected: 0 });
  assert.match((view.data as { checkpointId: string }).checkpointId, /^\d{8}T\d{6}Z-[0-9a-f]{8}$/);
  assert.equal((await queue.enqueueDump({ target: { pid: 1 }, node: 'node-b' })).node, 'node-b');

  const events = await eventLog.readAfter('0');
  assert.deepEqual(
    events.map((e) => [e.event, e.jobId, e.jobType, e.scheduleId]),
    [
      ['job.waiting', jobId, 'dump', 'nightly'],
      ['job.waiting', events[1]!.jobId, 'dump', undefined],
    ],
  );
  assert.equal(await queue.getJob('no-such-job'), null);
  assert.equal(await queue.getJobLog('no-such-job'), null);
  assert.equal(await queue.getJobLog(jobId), '');
});

test('a deterministic job id enqueues once: the second enqueue returns the existing job', async (t) => {
  const { queue, eventLog } = await setup(t);
  const first = await queue.enqueueDump({ target: { pid: 7 } }, { jobId: 'sched-nightly-1795787400000' });
  assert.deepEqual(first, { jobId: 'sched-nightly-1795787400000', node: 'node-a' });
  const again = await queue.enqueueDump({ target: { pid: 7 } }, { jobId: 'sched-nightly-1795787400000' });
  assert.deepEqual(again, { jobId: 'sched-nightly-1795787400000', node: 'node-a', existing: true });
  const elsewhere = await queue.enqueueDump({ target: { pid: 7 }, node: 'node-b' }, { jobId: 'sched-nightly-1795787400000' });
  assert.deepEqual(elsewhere, { jobId: 'sched-nightly-1795787400000', node: 'node-a', existing: true });
  assert.equal((await queue.listJobs()).length, 1);
  assert.equal((await eventLog.readAfter('0')).length, 1, 'announced once');
  await assert.rejects(queue.enqueueDump({ target: { pid: 7 } }, { jobId: 'a:b' }), ValidationError);
});

test('enqueueDumps adds several dumps in one call: each announced once, in order; an id taken or a bad request fails alone', async (t) => {
  const { queue, eventLog } = await setup(t);
  await queue.enqueueDump({ target: { pid: 7 } }, { jobId: 'sched-a-1795787400000' });
  const outcomes = await queue.enqueueDumps([
    { input: { target: { pid: 1 }, scheduleId: 'b' }, jobId: 'sched-b-1795787400000' },
    { input: { target: { pid: 7 } }, jobId: 'sched-a-1795787400000' },
    { input: { target: { pid: 'x' } }, jobId: 'sched-c-1795787400000' },
    { input: { target: { pid: 2 }, node: 'node-b' }, jobId: 'sched-d-1795787400000' },
    { input: { target: { pid: 3 } }, jobId: 'sched-e-1795787400000' },
  ]);
  assert.deepEqual(outcomes[0], { status: 'fulfilled', value: { jobId: 'sched-b-1795787400000', node: 'node-a' } });
  assert.deepEqual(outcomes[1], { status: 'fulfilled', value: { jobId: 'sched-a-1795787400000', node: 'node-a', existing: true } });
  const refused = outcomes[2] as PromiseRejectedResult;
  assert.ok(refused.status === 'rejected' && refused.reason instanceof ValidationError, 'the bad request alone is refused');
  assert.match(refused.reason.message, /target\.pid/);
  assert.deepEqual(outcomes[3], { status: 'fulfilled', value: { jobId: 'sched-d-1795787400000', node: 'node-b' } });
  assert.deepEqual(outcomes[4], { status: 'fulfilled', value: { jobId: 'sched-e-1795787400000', node: 'node-a' } });
  const waiting = (await eventLog.readAfter('0')).filter((e) => e.event === 'job.waiting').map((e) => e.jobId);
  assert.deepEqual(waiting, ['sched-a-1795787400000', 'sched-b-1795787400000', 'sched-d-1795787400000', 'sched-e-1795787400000']);
  const jobs = await queue.listJobs();
  assert.deepEqual(jobs.map((j) => j.id).sort(), ['sched-a-1795787400000', 'sched-b-1795787400000', 'sched-d-1795787400000', 'sched-e-1795787400000']);
  assert.equal(jobs.find((j) => j.id === 'sched-d-1795787400000')?.node, 'node-b');
  assert.equal(jobs.find((j) => j.id === 'sched-b-1795787400000')?.scheduleId, 'b');
});

test('an enqueue whose add Redis refuses fails, and leaves its job id free: the same request again adds the job', async (t) => {
  const { queue, redis, eventLog } = await setup(t);
  // A real refusal: an ACL user that may claim job ids and publish events, and read node-b's queue but not write it.
  await redis.call('ACL', 'SETUSER', 'no-node-b', 'on', '>secret', '~ckpt:jobs:*', '~ckpt:events*', '~ckpt:jobs.node-a:*', '%R~ckpt:jobs.node-b:*', '&*', '+@all');
  const refused = new JobQueue({
    connection: `redis://no-node-b:secret@127.0.0.1:${redis.options.port}`,
    prefix: 'ckpt',
    node: 'node-a',
    eventLog,
    defaults: configSchema.parse({}).worker,
    signer: throwawaySigner(),
  });
  t.after(() => refused.close());
  const request = { target: { pid: 4242 }, node: 'node-b' };
  const [mixed, lone] = await refused.enqueueDumps([
    { input: { target: { pid: 4241 } }, jobId: 'on-node-a' },
    { input: request, jobId: 'retried-dump' },
  ]);
  assert.equal(mixed!.status, 'fulfilled', 'a request for another node is not failed with it');
  assert.equal(lone!.status, 'rejected');
  assert.match(String((lone as PromiseRejectedResult).reason), /NOPERM/);
  assert.equal(await queue.getJob('retried-dump'), null);
  assert.deepEqual((await eventLog.readAfter('0')).map((e) => [e.event, e.jobId]), [['job.waiting', 'on-node-a']], 'nothing announced for it');

  const again = await queue.enqueueDump(request, { jobId: 'retried-dump' });
  assert.deepEqual(again, { jobId: 'retried-dump', node: 'node-b' }, 'added now, not reported as existing');
  assert.equal((await queue.getJob('retried-dump'))?.state, 'waiting');
  assert.equal((await eventLog.readAfter('0')).filter((e) => e.jobId === 'retried-dump').length, 1);
});

test('restores go to the checkpoint node unless told otherwise; unknown checkpoints are ECHECKPOINT_NOT_FOUND', async (t) => {
  const { queue, eventLog, refs } = await setup(t);
  const r = await queue.enqueueRestore({ checkpointId: CP2 });
  assert.equal(r.node, 'node-b');
  assert.deepEqual(refs, [`${CP2}:${r.jobId}`], 'the checkpoint is marked in use from the moment the restore waits');
  assert.equal((await queue.enqueueRestore({ checkpointId: CP2, node: 'node-c' })).node, 'node-c');
  const view = (await queue.getJob(r.jobId))!;
  assert.deepEqual(view.data, { checkpointId: CP2, node: 'node-b', target: 'python3-200' });
  assert.equal((await eventLog.readAfter('0'))[0]!.target, 'python3-200');
  await assert.rejects(queue.enqueueRestore({ checkpointId: '20261127T000000Z-ffffffff' }), (err: unknown) => {
    assert.ok(err instanceof UnknownCheckpointError);
    assert.equal(err.code, 'ECHECKPOINT_NOT_FOUND');
    return true;
  });
});

test('a batch restore is a parent waiting for one child per checkpoint, each on its checkpoint node', async (t) => {
  const { queue, eventLog, refs } = await setup(t);
  await assert.rejects(queue.enqueueBatchRestore({ checkpointIds: [CP1, '20261127T000000Z-ffffffff'] }), UnknownCheckpointError);
  const { batchId, jobIds } = await queue.enqueueBatchRestore({ checkpointIds: [CP1, CP2, CP3], concurrency: 3 });
  assert.equal(jobIds.length, 3);
  assert.deepEqual(refs, [CP1, CP2, CP3].map((cp, i) => `${cp}:${jobIds[i]}`));
  const parent = (await queue.getJob(batchId))!;
  assert.equal(parent.type, 'restore-batch');
  assert.equal(parent.state, 'waiting-children');
  assert.equal(parent.node, 'node-a');
  const children = await Promise.all(jobIds.map((id) => queue.getJob(id)));
  assert.deepEqual(
    children.map((c) => [c!.type, c!.state, c!.node, (c!.data as { batch?: unknown }).batch]),
    [
      ['restore', 'waiting', 'node-a', { id: batchId, concurrency: 3 }],
      ['restore', 'waiting', 'node-b', { id: batchId, concurrency: 3 }],
      ['restore', 'waiting', 'node-b', { id: batchId, concurrency: 3 }],
    ],
  );
  assert.deepEqual(
    (await eventLog.readAfter('0')).map((e) => e.jobId),
    [batchId, ...jobIds],
  );
});

test('listJobs: every node, newest first, filtered by state, type and schedule, limited; counts per type and state', async (t) => {
  const { queue, redis } = await setup(t);
  // Apart by a few ms: listing orders by creation time (ms).
  const a = await queue.enqueueDump({ target: { pid: 1 }, scheduleId: 's1' });
  await sleep(3);
  const b = await queue.enqueueDump({ target: { pid: 2 }, node: 'node-b' });
  await sleep(3);
  const c = await queue.enqueueRestore({ checkpointId: CP2 });
  await sleep(3);
  const d = await queue.enqueueDump({ target: { pid: 3 }, scheduleId: 's1' });
  assert.deepEqual((await queue.listJobs()).map((j) => j.id), [d.jobId, c.jobId, b.jobId, a.jobId]);
  assert.deepEqual((await queue.listJobs({ type: 'restore' })).map((j) => j.id), [c.jobId]);
  assert.deepEqual((await queue.listJobs({ scheduleId: 's1' })).map((j) => j.id), [d.jobId, a.jobId]);
  assert.deepEqual((await queue.listJobs({ limit: 2 })).map((j) => j.id), [d.jobId, c.jobId]);
  assert.deepEqual(await queue.listJobs({ state: 'completed' }), []);
  assert.equal((await queue.listJobs({ state: 'waiting' })).length, 4);

  const counts = await queue.countsByTypeAndState();
  const count = (type: string, state: string) => counts.find((r) => r.type === type && r.state === state)?.count;
  assert.equal(count('dump', 'waiting'), 3);
  assert.equal(count('restore', 'waiting'), 1);
  assert.equal(count('dump', 'completed'), 0);
  assert.equal(count('restore-batch', 'waiting-children'), 0);
  assert.equal(counts.length, 5 * 6, 'dump, restore, restore-batch, verify, migrate: each in 6 states');

  const jobStates = new NodeQueues(redis, 'ckpt');
  t.after(() => jobStates.close());
  assert.equal(await isJobLive(jobStates, c.jobId), true, 'a waiting restore still holds its checkpoint');
  assert.equal(await isJobLive(jobStates, 'gone'), false);
});

test('pruneIndex forgets the jobs BullMQ removed; live jobs and young claims stay findable', async (t) => {
  const { queue, redis } = await setup(t);
  const live = await queue.enqueueDump({ target: { pid: 4242 } });
  const removed = await queue.enqueueDump({ target: { pid: 4243 } });
  // What retention (keepCompleted / keepFailed) does to a finished job.
  const bull = new Queue(queueNameFor('node-a'), { connection: redis, prefix: 'ckpt' });
  t.after(() => bull.close());
  assert.equal(await bull.remove(removed.jobId), 1);
  assert.equal(await queue.getJob(removed.jobId), null);

  assert.equal(await queue.pruneIndex(60_000), 0, 'claims younger than the limit are left alone');
  await sleep(5);
  assert.equal(await queue.pruneIndex(1), 1);
  assert.equal(await redis.hexists('ckpt:jobs:node-of', removed.jobId), 0);
  assert.equal(await redis.zscore('ckpt:jobs:claimed-at', removed.jobId), null);
  assert.equal((await queue.getJob(live.jobId))?.state, 'waiting');
  assert.equal(await queue.pruneIndex(1), 0, 'nothing left to forget');
  assert.equal(await redis.hlen('ckpt:jobs:node-of'), 1);
});

test('with the real Catalog: a restore goes to the node of its checkpoint, which is in use (undeletable) from the moment it waits', async (t) => {
  const server = await TestRedis.start();
  const redis = new Redis(server.url);
  const root = await mkdtemp(path.join(os.tmpdir(), 'ckpt-queue-catalog-'));
  const signer = throwawaySigner();
  const store = new CheckpointStore({ root, signer });
  const catalog = new Catalog(redis, { prefix: 'ckpt', store, node: 'node-a' });
  const queue = new JobQueue({
    connection: server.url,
    prefix: 'ckpt',
    node: 'node-a',
    eventLog: new EventLog(redis, { key: 'ckpt:events' }),
    defaults: configSchema.parse({}).worker,
    signer,
    checkpoints: catalog,
  });
  t.after(async () => {
    await queue.close();
    redis.disconnect();
    await server.stop();
    await rm(root, { recursive: true, force: true });
  });
  const onB = await catalog.add(await makeCheckpoint(store, { node: 'node-b', key: 'python3-200' }));

  const restore = await queue.enqueueRestore({ checkpointId: onB.id });
  assert.equal(restore.node, 'node-b');
  assert.equal((await queue.getJob(restore.jobId))!.node, 'node-b');
  assert.deepEqual(await catalog.refs(onB.id), [restore.jobId]);
  await assert.rejects(catalog.delete(onB.id, { force: true }), (err: { code?: string }) => err.code === 'EINUSE');
  await assert.rejects(queue.enqueueRestore({ checkpointId: '20261127T000000Z-ffffffff' }), (err: { code?: string }) => err.code === 'ECHECKPOINT_NOT_FOUND');
});
