// What stays on a node's disk with a bucket: a refused upload (the bucket gone from a real s3rver) and the local cache
// bound (storage.localCacheBytes), with real CRIU dumps of a real process.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TestS3 } from '../helpers/s3.js';
import { startCounter } from '../helpers/targets.js';
import { waitUntil } from '../helpers/wait.js';
import { startHarness } from '../workers/harness.js';
import { completed, startNode, startWithBucket } from './two-nodes.js';

test('an upload the bucket refuses fails the attempt and leaves the checkpoint listed `local`; the retry uploads it (`local+remote`); one that fails for good stays `local`', async (t) => {
  // A second between attempts: time to give the bucket back before the retry.
  const started = await startWithBucket(t, { attempts: 4, backoff: { baseDelayMs: 1000, maxDelayMs: 1000, jitter: 0 } });
  if (!started) return;
  const { h, s3, remote } = started;
  const a = await startNode(h, 'node-a', remote, { keepLocal: true });
  const counter = await startCounter();
  h.defer(() => counter.kill());

  await s3.removeBucket();
  const dump = await h.queue.enqueueDump({ target: { pid: counter.pid }, node: 'node-a' });
  const failed = await waitUntil('the first attempt to fail', async () => (await h.eventsOf(dump.jobId)).find((e) => e.event === 'job.failed'), { timeoutMs: 60_000 });
  assert.equal(failed.data.final, false, 'retried');
  assert.match(String(failed.data.reason), /upload of checkpoint \S+ to bucket ckpt-test\/ckpt failed: /);
  const created = (await h.eventsOf(dump.jobId)).find((e) => e.event === 'checkpoint.created');
  const id = String(created!.data.checkpointId);
  // Whole on this disk, and listed so: never as in the bucket while it is not.
  assert.ok(['local', 'uploading'].includes((await h.catalog.get(id)).location), (await h.catalog.get(id)).location);
  assert.ok(await a.store.readManifest((await h.catalog.get(id)).target.key, id));

  await s3.restoreBucket();
  const done = await completed(h, dump.jobId);
  assert.equal(done.result!.checkpointId, id);
  assert.ok(done.attemptsMade >= 2, `attempts: ${done.attemptsMade}`);
  const listed = await h.catalog.get(id);
  assert.equal(listed.location, 'local+remote');
  assert.ok((await s3.keys()).includes(`ckpt/${listed.target.key}/${id}/manifest.json`));
  const events = await h.eventsOf(dump.jobId);
  assert.equal(events.filter((e) => e.event === 'checkpoint.created').length, 1, 'one checkpoint, adopted by the retry');
  assert.equal(events.filter((e) => e.event === 'checkpoint.uploaded').length, 1);

  // The object store is gone for every attempt: the job fails for good, the checkpoint is kept here and listed `local`.
  await s3.stop();
  const refused = await h.queue.enqueueDump({ target: { pid: counter.pid }, node: 'node-a' });
  const gaveUp = await h.waitFinished(refused.jobId, 120_000);
  assert.equal(gaveUp.state, 'failed');
  assert.match(gaveUp.failedReason!, /upload of checkpoint .* failed/);
  const kept = String((await h.eventsOf(refused.jobId)).find((e) => e.event === 'checkpoint.created')!.data.checkpointId);
  assert.equal((await h.catalog.get(kept)).location, 'local');
  assert.ok(await a.store.readManifest(listed.target.key, kept), 'still whole on this disk');
  assert.equal((await h.eventsOf(refused.jobId)).filter((e) => e.event === 'checkpoint.uploaded').length, 0);
});

test('storage.localCacheBytes: local copies of uploaded checkpoints are dropped oldest first beyond the bound, never one a restore holds', async (t) => {
  const started = await startWithBucket(t);
  if (!started) return;
  const { h, s3, remote } = started;
  const counter = await startCounter(4);
  h.defer(() => counter.kill());
  // How big a dump of this process is, measured on a node without a bound.
  await startNode(h, 'probe', remote, { keepLocal: true });
  const probe = await completed(h, (await h.queue.enqueueDump({ target: { pid: counter.pid }, node: 'probe' })).jobId);
  const bytes = probe.result!.bytes!;
  // Room for two and a half.
  const a = await startNode(h, 'node-a', remote, { keepLocal: true, localCacheBytes: Math.floor(bytes * 2.5) });

  const ids: string[] = [];
  const dumpOnA = async () => {
    ids.push((await completed(h, (await h.queue.enqueueDump({ target: { pid: counter.pid }, node: 'node-a' })).jobId)).result!.checkpointId!);
  };
  await dumpOnA();
  // The oldest is held by a restore (a ref, as a waiting restore job takes it).
  await h.catalog.acquireRef(ids[0]!, 'restore-holding-it');
  for (let i = 0; i < 3; i++) await dumpOnA();

  const key = (await h.catalog.get(ids[0]!)).target.key;
  const where = await Promise.all(ids.map(async (id) => [(await h.catalog.get(id)).location, (await a.store.readManifest(key, id)) !== null]));
  assert.deepEqual(
    where,
    [
      ['local+remote', true], // in use: kept though the oldest
      ['remote', false], // dropped third dump
      ['remote', false], // dropped at the fourth
      ['local+remote', true],
    ],
    `sizes: ${bytes} (probe), bound ${Math.floor(bytes * 2.5)}`,
  );
  const keys = await s3.keys();
  for (const id of ids) assert.ok(keys.includes(`ckpt/${key}/${id}/manifest.json`), `${id} in the bucket`);
});
