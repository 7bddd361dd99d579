import assert from 'node:assert/strict';
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { readProcStatus } from '../../src/common/proc.js';
import { startCounter } from '../helpers/targets.js';
import { startHarness, type Harness } from './harness.js';
import { spawnWorkerProcess, type WorkerProcess } from './worker-process.js';

/** Waits until CRIU writes the target's memory into the job's attempt folder. */
async function untilDumping(h: Harness, jobId: string, pid: number): Promise<void> {
  const { checkpointId } = (await h.queue.getJob(jobId))!.data as { checkpointId: string };
  const pages = path.join(h.root, `python3-${pid}`, `.tmp-${checkpointId}`, 'pages-1.img');
  const deadline = Date.now() + 30_000;
  while (!((await stat(pages).catch(() => null))?.size ?? 0)) {
    if (Date.now() > deadline) throw new Error(`CRIU wrote no pages into ${pages} within 30 s: ${JSON.stringify(await h.queue.getJob(jobId))}`);
    await sleep(2);
  }
}

/** When the worker process began its shutdown (it prints the time as it handles SIGTERM). */
function stoppingAt(worker: WorkerProcess): number {
  const m = /stopping at (\d+)/.exec(worker.output());
  assert.ok(m, `the worker said when it stopped: ${worker.output()}`);
  return Number(m[1]);
}

test('SIGTERM: a running dump finishes within the grace period, then the worker exits', async (t) => {
  const h = await startHarness(t);
  if (!h) return;
  const target = await startCounter(128);
  h.defer(() => target.kill());
  const worker = await spawnWorkerProcess(h.configFor('node-a', { shutdownGraceMs: 30_000 }), h.root);
  h.defer(() => worker.child.kill('SIGKILL'));

  const { jobId } = await h.queue.enqueueDump({ target: { pid: target.pid } });
  await untilDumping(h, jobId, target.pid);
  worker.child.kill('SIGTERM');
  assert.equal(await worker.exited, 0, worker.output());
  const job = await h.waitFinished(jobId, 1000);
  assert.equal(job.state, 'completed', job.failedReason);
  assert.equal(job.attemptsMade, 1);
  // The dump was still running when the shutdown began: the grace period is what let it finish.
  assert.ok(job.finishedAt! >= stoppingAt(worker), `finished at ${job.finishedAt}, shutdown began at ${stoppingAt(worker)}`);
});

test('SIGTERM past the grace period: the dump is aborted, the job handed back unharmed, the target never left frozen', async (t) => {
  const h = await startHarness(t);
  if (!h) return;
  const target = await startCounter(384);
  h.defer(() => target.kill());
  const worker = await spawnWorkerProcess(h.configFor('node-a', { shutdownGraceMs: 0 }), h.root);
  h.defer(() => worker.child.kill('SIGKILL'));

  const { jobId } = await h.queue.enqueueDump({ target: { pid: target.pid } });
  await untilDumping(h, jobId, target.pid);
  worker.child.kill('SIGTERM');
  assert.equal(await worker.exited, 0, worker.output());

  const st = await readProcStatus(target.pid);
  assert.ok(st && st.state !== 'T' && st.state !== 't' && st.tracerPid === 0, `target ${JSON.stringify(st)}`);
  const handedBack = (await h.queue.getJob(jobId))!;
  assert.equal(handedBack.state, 'waiting');
  assert.equal(handedBack.attemptsMade, 0, 'a shutdown does not use up an attempt');
  assert.match((await h.queue.getJobLog(jobId))!, /handed back: the worker is shutting down/);
  const targetDir = path.join(h.root, `python3-${target.pid}`);
  assert.equal(await readdir(targetDir).catch((err: NodeJS.ErrnoException) => err.code), 'ENOENT', 'the aborted attempt folder is gone, with the target folder it emptied');

  await h.startWorker();
  const job = await h.waitFinished(jobId);
  assert.equal(job.state, 'completed', job.failedReason);
  assert.equal(job.attemptsMade, 1);
  assert.equal((await h.catalog.list({ targetKey: `python3-${target.pid}` })).length, 1);
  assert.ok(target.alive());
});
