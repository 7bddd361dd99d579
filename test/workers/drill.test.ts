import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { open, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { listPids, readCmdline, readProcStat } from '../../src/common/proc.js';
import { startCounter, type Counter } from '../helpers/targets.js';
import { startHarness, type Harness } from './harness.js';

async function dumpOf(h: Harness, target: Counter): Promise<string> {
  const job = await h.waitFinished((await h.queue.enqueueDump({ target: { pid: target.pid } })).jobId);
  assert.equal(job.state, 'completed', job.failedReason);
  return job.result!.checkpointId!;
}

/** Pids running the same command line as `target`, other than it (a drill's copy left behind would be one). */
async function copiesOf(target: Counter): Promise<number[]> {
  const cmdline = await readCmdline(target.pid);
  const pids = [];
  for (const pid of await listPids()) if (pid !== target.pid && (await readCmdline(pid)) === cmdline) pids.push(pid);
  return pids;
}

async function countsOn(target: Counter): Promise<void> {
  const n = target.read();
  const deadline = Date.now() + 30_000;
  while (target.read() <= n) {
    assert.ok(Date.now() < deadline, 'the original counts on');
    await sleep(20);
  }
}

test('a drill restores a good checkpoint in a throwaway namespace, stopped, and records it; the original runs on untouched', async (t) => {
  const h = await startHarness(t);
  if (!h) return;
  await h.startWorker();
  const target = await startCounter();
  t.after(() => target.kill());
  const startTime = (await readProcStat(target.pid))!.startTime;
  const checkpointId = await dumpOf(h, target);

  const { jobId, node } = await h.queue.enqueueVerify({ checkpointId });
  assert.equal(node, 'node-a');
  const drill = await h.waitFinished(jobId);
  assert.equal(drill.state, 'completed', drill.failedReason);
  assert.equal(drill.type, 'verify');
  const verified = (await h.catalog.get(checkpointId)).verified!;
  assert.equal(verified.ok, true, JSON.stringify(verified));
  assert.ok(Date.parse(verified.at) <= Date.now());
  const events = await h.eventsOf(jobId);
  const event = events.find((e) => e.event === 'checkpoint.verified')!;
  assert.deepEqual({ ...event.data, at: undefined }, { checkpointId, ok: true, at: undefined });
  const stages = events.filter((e) => e.event === 'job.progress').map((e) => e.data.stage);
  assert.deepEqual(stages.filter((s) => ['restoring', 'checking-tree', 'holding', 'removing', 'done'].includes(s as string)), ['restoring', 'checking-tree', 'holding', 'removing', 'done']);
  assert.match((await h.queue.getJobLog(jobId))!, /Restore finished successfully/);
  assert.equal((await readProcStat(target.pid))?.startTime, startTime, 'the original is the same process');
  await countsOn(target);
  assert.deepEqual(await copiesOf(target), [], 'no copy left behind');
  assert.deepEqual(await h.catalog.refs(checkpointId), [], 'the drill released the checkpoint');

  // With the original stopped, nothing may write its count file during a drill: the copy never runs.
  const countFile = path.join(target.dir, 'count');
  process.kill(target.pid, 'SIGSTOP');
  const [before, mtime] = [await readFile(countFile, 'utf8'), (await stat(countFile)).mtimeMs];
  const again = await h.waitFinished((await h.queue.enqueueVerify({ checkpointId })).jobId);
  assert.equal(again.state, 'completed', again.failedReason);
  assert.equal(await readFile(countFile, 'utf8'), before);
  assert.equal((await stat(countFile)).mtimeMs, mtime);
  process.kill(target.pid, 'SIGCONT');
  await countsOn(target);
});

test("a drill of a checkpoint whose image was damaged in place fails with CRIU's reason and records it; the original is untouched", async (t) => {
  const h = await startHarness(t);
  if (!h) return;
  await h.startWorker();
  const target = await startCounter();
  t.after(() => target.kill());
  const checkpointId = await dumpOf(h, target);
  const checkpoint = await h.catalog.get(checkpointId);
  // An image CRIU cannot read although the manifest vouches for it (as when it was written wrong): same size, other
  // bytes, and the manifest re-sealed over them, so the size and SHA-256 checks pass and only a restore finds out.
  const dir = h.store.pathOf(checkpoint);
  const core = path.join(dir, `core-${target.pid}.img`);
  const size = (await stat(core)).size;
  const fh = await open(core, 'r+');
  await fh.write(Buffer.alloc(4, 0xff), 0, 4, 0);
  await fh.close();
  assert.equal((await stat(core)).size, size);
  const { signature: _, ...manifest } = JSON.parse(await readFile(path.join(dir, 'manifest.json'), 'utf8'));
  manifest.sha256[`core-${target.pid}.img`] = createHash('sha256').update(await readFile(core)).digest('hex');
  const resealed = { ...manifest, signature: h.signer.sign('manifest', manifest) };
  await writeFile(path.join(dir, 'manifest.json'), JSON.stringify(resealed));
  await h.catalog.add(resealed);

  const { jobId } = await h.queue.enqueueVerify({ checkpointId });
  const drill = await h.waitFinished(jobId);
  assert.equal(drill.state, 'failed');
  assert.equal(drill.attemptsMade, 1);
  assert.match(drill.failedReason!, new RegExp(`^drill of checkpoint ${checkpointId} failed: Error \\(criu/image\\.c:\\d+\\): Head magic doesn't match for core-${target.pid}\\.img\n`));
  const verified = (await h.catalog.get(checkpointId)).verified!;
  assert.equal(verified.ok, false);
  assert.match(verified.reason!, /Error \(criu\//);
  const event = (await h.eventsOf(jobId)).find((e) => e.event === 'checkpoint.verified')!;
  assert.equal(event.data.ok, false);
  assert.equal(event.data.reason, verified.reason);
  await countsOn(target);
  assert.deepEqual(await copiesOf(target), []);
});
