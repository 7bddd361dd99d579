import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { open, readdir, readFile, stat, truncate } from 'node:fs/promises';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { manifestSchema } from '../../src/catalog/manifest.js';
import { isAlive, killAndReap, startCounter, waitGone } from '../helpers/targets.js';
import { startHarness } from './harness.js';

test('dump through the queue makes a catalogued checkpoint; restore brings the process back and it keeps counting', async (t) => {
  const h = await startHarness(t);
  if (!h) return;
  await h.startWorker();
  const target = await startCounter(16);
  t.after(() => target.kill());

  // The target counts on while the dump is committed: the restored count starts from the frozen moment, after this one.
  const countBeforeDump = target.read();
  const { jobId, node } = await h.queue.enqueueDump({ target: { pid: target.pid } });
  assert.equal(node, 'node-a');
  const dump = await h.waitFinished(jobId);
  assert.equal(dump.state, 'completed', dump.failedReason);
  assert.equal(dump.attemptsMade, 1, JSON.stringify(dump));
  assert.equal(dump.progress.percent, 100);
  assert.equal(typeof dump.result!.commitMs, 'number', 'the time from CRIU\'s reply to the catalog is reported');
  const checkpointId = dump.result!.checkpointId!;
  assert.ok(target.alive(), 'leaveRunning is the default: the target keeps running');

  // Catalogued, with a valid manifest and CRIU's stats, in <root>/<target key>/<id>/.
  const [listed] = await h.catalog.list({ targetKey: `python3-${target.pid}` });
  assert.equal(listed?.id, checkpointId);
  const dir = h.store.pathOf(listed!);
  const manifest = manifestSchema.parse(JSON.parse(await readFile(path.join(dir, 'manifest.json'), 'utf8')));
  assert.equal(manifest.jobId, jobId);
  assert.equal(manifest.target.pid, target.pid);
  assert.equal(manifest.node, 'node-a');
  assert.ok((manifest.stats as { pagesWritten: number }).pagesWritten > 16 * 256, 'at least the ballast was written');
  assert.ok(manifest.bytes > 16 * 1024 * 1024);
  assert.equal(manifest.files['pages-1.img'], (await stat(path.join(dir, 'pages-1.img'))).size);
  assert.equal(manifest.bytes, Object.values(manifest.files).reduce((a, b) => a + b, 0));
  assert.deepEqual(Object.keys(manifest.sha256!).sort(), Object.keys(manifest.files).sort(), 'every file hashed');
  for (const [name, digest] of Object.entries(manifest.sha256!)) {
    assert.equal(digest, createHash('sha256').update(await readFile(path.join(dir, name))).digest('hex'), name);
  }
  assert.match(await readFile(path.join(dir, 'dump.log'), 'utf8'), /Dumping finished successfully/);
  assert.match((await h.queue.getJobLog(jobId))!, /Dumping finished successfully/);

  // Events of the dump, in order, each once.
  const names = (await h.eventsOf(jobId)).map((e) => e.event);
  assert.equal(names[0], 'job.waiting');
  assert.equal(names[1], 'job.active');
  assert.equal(names.at(-1), 'job.completed');
  assert.equal(names.filter((n) => n === 'checkpoint.created').length, 1);
  assert.ok(names.includes('job.progress') && names.includes('job.log'));
  assert.ok(names.indexOf('checkpoint.created') < names.indexOf('job.completed'));
  assert.ok(names.lastIndexOf('job.log') < names.indexOf('checkpoint.created'), 'every log line before the result');

  // Restore: the process is gone first (its pid must be free).
  await killAndReap(target.pid); // keeps its folder: the restored process writes there again
  await waitGone(target.pid);
  const killedAt = target.read();
  const restore = await h.queue.enqueueRestore({ checkpointId });
  const restored = await h.waitFinished(restore.jobId);
  assert.equal(restored.state, 'completed', restored.failedReason);
  assert.equal(restored.result!.restoredPid, target.pid);
  assert.ok(isAlive(target.pid));
  // It goes on from the dumped count, below where the original (left running) was killed; the job completes as soon
  // as CRIU has restored it, so its first write may come after the job's end.
  const wrote = async (check: (n: number) => boolean) => {
    for (let deadline = Date.now() + 30_000; !check(target.read()); await sleep(20)) assert.ok(Date.now() < deadline, 'the restored counter goes on');
  };
  await wrote((n) => n !== killedAt);
  const before = target.read();
  assert.ok(before >= countBeforeDump, `not before the dump: ${before} >= ${countBeforeDump}`);
  assert.ok(before < killedAt, `back to the dumped count: ${before} < ${killedAt}`);
  await wrote((n) => n > before);
  assert.deepEqual(await h.catalog.refs(checkpointId), [], 'the restore released its ref');

  // The checkpoint folder stays private, also with what the restore added (its log, stats-restore).
  assert.equal((await stat(dir)).mode & 0o777, 0o700);
  const files = await readdir(dir);
  assert.ok(files.includes(`restore-${restore.jobId}.log`) && files.includes('stats-restore'));
  for (const f of files) assert.equal((await stat(path.join(dir, f))).mode & 0o777, 0o600, f);
});

/**
 * A real checkpoint of a counter whose pages image `damage` then changes; the counter is killed and a restore of the
 * checkpoint runs to its end. Returns the restore job, the pid, and the checkpoint's folder.
 */
async function restoreDamaged(t: TestContext, damage: (pages: string, size: number) => Promise<void>) {
  const h = await startHarness(t);
  if (!h) return undefined;
  await h.startWorker();
  const target = await startCounter();
  t.after(() => target.kill());
  const dump = await h.waitFinished((await h.queue.enqueueDump({ target: { pid: target.pid } })).jobId);
  assert.equal(dump.state, 'completed', dump.failedReason);
  const checkpoint = await h.catalog.get(dump.result!.checkpointId!);
  const dir = h.store.pathOf(checkpoint);
  const pages = path.join(dir, 'pages-1.img');
  await damage(pages, (await stat(pages)).size);
  await killAndReap(target.pid);
  const restore = await h.waitFinished((await h.queue.enqueueRestore({ checkpointId: checkpoint.id })).jobId);
  return { restore, pid: target.pid, dir };
}

test('a checkpoint whose image was cut short is refused before CRIU runs, naming the file', async (t) => {
  let size = 0;
  const r = await restoreDamaged(t, async (pages, was) => {
    size = was;
    await truncate(pages, Math.floor(size / 2));
  });
  if (!r) return;
  assert.equal(r.restore.state, 'failed');
  assert.equal(r.restore.attemptsMade, 1, 'not retried: retrying cannot mend it');
  assert.match(r.restore.failedReason!, new RegExp(`damaged.*pages-1\\.img is ${Math.floor(size / 2)} bytes, the manifest says ${size}`));
  assert.equal(isAlive(r.pid), false, 'nothing was restored');
});

test('a checkpoint with one byte of an image changed (same size) is refused before CRIU runs, naming the file', async (t) => {
  const r = await restoreDamaged(t, async (pages, size) => {
    // One bit of process memory rots in place: the size stays, the content does not.
    const handle = await open(pages, 'r+');
    const byte = Buffer.alloc(1);
    await handle.read(byte, 0, 1, Math.floor(size / 2));
    byte[0] = byte[0]! ^ 0x01;
    await handle.write(byte, 0, 1, Math.floor(size / 2));
    await handle.close();
    assert.equal((await stat(pages)).size, size);
  });
  if (!r) return;
  assert.equal(r.restore.state, 'failed');
  assert.equal(r.restore.attemptsMade, 1, 'not retried: retrying cannot mend it');
  assert.match(r.restore.failedReason!, /damaged.*pages-1\.img does not match its SHA-256 in the manifest/);
  assert.doesNotMatch(r.restore.failedReason!, /dump\.log|pagemap/, 'only the changed file is named');
  assert.equal(isAlive(r.pid), false, 'nothing was restored');
  assert.equal((await readdir(r.dir)).includes(`restore-${r.restore.id}.log`), false, 'CRIU never ran');
});
