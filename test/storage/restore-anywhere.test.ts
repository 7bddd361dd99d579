// Checkpoints that outlive their node: two workers with different node names and different storage roots on this one
// machine share a real s3rver bucket; real CRIU dumps and restores of real processes.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { stringify } from 'yaml';
import { runCli } from '../cli/run.js';
import { TestS3 } from '../helpers/s3.js';
import { startCounter, startMarkerCounter } from '../helpers/targets.js';
import { waitUntil } from '../helpers/wait.js';
import { startHarness } from '../workers/harness.js';
import { completed, countsPast, stages, startNode, startWithBucket } from './two-nodes.js';

test('node A dumps, uploads and drops its copy; node B downloads, verifies and restores it and the counter goes on; a byte flipped in the bucket is refused naming the file', async (t) => {
  const started = await startWithBucket(t);
  if (!started) return;
  const { h, s3, remote } = started;
  const a = await startNode(h, 'node-a', remote, { keepLocal: false });
  const b = await startNode(h, 'node-b', remote, { keepLocal: false });
  const counter = await startCounter(16);
  h.defer(() => counter.kill());

  // Dumped with --stop on node A: committed, uploaded (progress in the feed), local copy dropped.
  const dump = await h.queue.enqueueDump({ target: { pid: counter.pid }, node: 'node-a', leaveRunning: false });
  const dumped = await completed(h, dump.jobId);
  const id = dumped.result!.checkpointId!;
  const events = await h.eventsOf(dump.jobId);
  assert.ok((await stages(h, dump.jobId)).includes('uploading'), 'the upload is a stage of the dump job');
  const uploading = events.filter((e) => e.event === 'job.progress' && e.data.stage === 'uploading');
  assert.ok(uploading.some((e) => Number(e.data.bytesWritten) > 0), 'upload progress in bytes');
  const uploaded = events.find((e) => e.event === 'checkpoint.uploaded');
  assert.deepEqual(uploaded?.data, { checkpointId: id, node: 'node-a', location: 'remote', bucket: `${s3.bucket}/ckpt`, bytes: dumped.result!.bytes });
  const listed = await h.catalog.get(id);
  assert.equal(listed.location, 'remote');
  assert.equal(await a.store.readManifest(listed.target.key, id), null, "node A's copy is gone (storage.keepLocal false)");
  assert.ok((await s3.keys()).includes(`ckpt/${listed.target.key}/${id}/manifest.json`));
  await waitUntil(`the dumped pid ${counter.pid} to be dead (leaveRunning false)`, () => !counter.alive());
  const dumpedAt = counter.read();

  // Restored on node B, which never had it.
  const restore = await h.queue.enqueueRestore({ checkpointId: id, node: 'node-b' });
  const restored = await completed(h, restore.jobId);
  assert.equal(restored.node, 'node-b');
  const restoreStages = await stages(h, restore.jobId);
  for (const stage of ['downloading', 'verifying', 'restoring']) assert.ok(restoreStages.includes(stage), `${stage} in ${restoreStages}`);
  assert.ok(restoreStages.indexOf('downloading') < restoreStages.indexOf('restoring'));
  assert.equal(restored.result!.restoredPid, counter.pid);
  await countsPast(counter, dumpedAt);
  assert.ok(await b.store.readManifest(listed.target.key, id), 'node B keeps the checked copy it restored from');

  // A second checkpoint (the process keeps running); one byte of its biggest object flipped in the bucket.
  const second = await completed(h, (await h.queue.enqueueDump({ target: { pid: counter.pid }, node: 'node-a' })).jobId);
  const secondId = second.result!.checkpointId!;
  const files = (await h.catalog.get(secondId)).files;
  const biggest = Object.entries(files).sort((x, y) => y[1] - x[1])[0]![0];
  await s3.flipByte(`ckpt/${listed.target.key}/${secondId}/files/${biggest}`);
  const refused = await h.waitFinished((await h.queue.enqueueRestore({ checkpointId: secondId, node: 'node-b' })).jobId, 90_000);
  assert.equal(refused.state, 'failed');
  assert.match(refused.failedReason!, new RegExp(`checkpoint ${secondId} from bucket .* is refused: ${biggest.replace('.', '\\.')}`));
  assert.equal(refused.attemptsMade, 1, 'damage is final: not retried');
  assert.equal(await b.store.readManifest(listed.target.key, secondId), null, 'nothing damaged is left in place');
  const leftovers = (await readdir(path.join(b.config.storage.root, listed.target.key))).filter((n) => n.startsWith('.tmp-'));
  assert.deepEqual(leftovers, []);
  assert.ok(counter.alive(), 'the running process was not touched');

  // Deleted on node A: node B, told through Redis, drops the copy it downloaded; the bucket keeps nothing of it.
  await a.catalog.delete(id);
  await waitUntil(`node B to drop its copy of ${id}`, async () => (await b.store.readManifest(listed.target.key, id)) === null, { timeoutMs: 20_000 });
  assert.deepEqual(await s3.keys(`ckpt/${listed.target.key}/${id}/`), []);
});

test('encryption on: no object in the bucket holds what the process held in memory; FLUSHALL, `ckpt catalog rebuild` from the bucket, restore on another node, retention removes the objects but never a pinned checkpoint', async (t) => {
  const started = await startWithBucket(t);
  if (!started) return;
  const { h, s3 } = started;
  const keyDir = await mkdtemp(path.join(os.tmpdir(), 'ckpt-enc-'));
  h.defer(() => rm(keyDir, { recursive: true, force: true }));
  const encryptionKeyFile = path.join(keyDir, 'storage.key');
  await writeFile(encryptionKeyFile, randomBytes(32).toString('hex'), { mode: 0o600 });
  const remote = await s3.remoteConfig({ encryptionKeyFile });
  const a = await startNode(h, 'node-a', remote, { keepLocal: true });
  const b = await startNode(h, 'node-b', remote, { keepLocal: true });
  const marker = `ckpt-marker-${randomBytes(8).toString('hex')}`;
  const target = await startMarkerCounter(marker);
  h.defer(() => target.kill());

  const dumped = await completed(h, (await h.queue.enqueueDump({ target: { pid: target.pid }, node: 'node-a' })).jobId);
  const id = dumped.result!.checkpointId!;
  const before = await h.catalog.get(id);
  assert.equal(before.location, 'local+remote');
  // The marker is in the dumped memory (so the check below can fail) ...
  const localDir = a.store.pathOf(before);
  const local = await Promise.all(Object.keys(before.files).map((f) => readFile(path.join(localDir, f))));
  assert.ok(local.some((bytes) => bytes.includes(marker)), 'the images hold the marker');
  // ... and in no object of the bucket, read raw with the bucket's credentials.
  const keys = await s3.keys();
  assert.equal(keys.length, Object.keys(before.files).length + 1);
  for (const key of keys) {
    const { bytes } = await s3.get(key);
    assert.ok(!bytes.includes(marker), `${key} holds the marker`);
    assert.ok(!bytes.includes(before.target.key), `${key} holds the target's name`);
  }

  // Redis loses everything; node B's catalog is rebuilt from the bucket (node B has no folder of it).
  const { Redis } = await import('ioredis');
  const admin = new Redis(h.redis.url);
  await admin.flushall();
  admin.disconnect();
  const configFile = path.join(keyDir, 'node-b.yaml');
  await writeFile(
    configFile,
    stringify({ node: 'node-b', redis: { url: h.redis.url }, storage: { root: b.config.storage.root, remote }, security: { jobKeyFile: h.config.security.jobKeyFile } }),
    { mode: 0o600 },
  );
  const cli = await runCli(['catalog', 'rebuild', '--config', configFile]);
  assert.equal(cli.code, 0, cli.stderr);
  assert.match(cli.stdout, new RegExp(`catalog of node node-b rebuilt from .* and bucket ${s3.bucket}/ckpt: 1 added, 0 listed already, 0 skipped`));
  const after = await h.catalog.get(id);
  assert.equal(after.location, 'remote');
  const { location: _a, ...manifestAfter } = after;
  const { location: _b, ...manifestBefore } = before;
  assert.deepEqual(manifestAfter, manifestBefore, 'the same manifest, from the bucket');

  // Restored on node B from the encrypted objects: the process runs on.
  process.kill(target.pid, 'SIGKILL');
  await waitUntil(`the killed pid ${target.pid} to be dead`, () => !target.alive());
  const count = target.read();
  const restored = await completed(h, (await h.queue.enqueueRestore({ checkpointId: id, node: 'node-b' })).jobId);
  assert.equal(restored.result!.restoredPid, target.pid);
  await countsPast(target, count);

  // Retention: a pinned checkpoint stays (objects too); once unpinned, deleting it removes its objects.
  await h.catalog.pin(id);
  await assert.rejects(a.catalog.delete(id), { code: 'EPINNED' });
  assert.equal((await s3.keys()).length, keys.length);
  await h.catalog.unpin(id);
  const deleted = await a.catalog.delete(id);
  assert.deepEqual(deleted, { id, filesRemoved: true });
  assert.deepEqual(await s3.keys(), [], 'the bucket holds nothing of it');
  assert.equal(await a.store.readManifest(before.target.key, id), null);
});
