// What the README promises about the CLI, against a real `ckpt up` (real Redis, CRIU, processes): the catalog
// commands, --pid-file and --match, jobs filters, restore-batch, exit code 130, and `ckpt worker` with the
// configuration's precedence (flags over CKPT_* over the file). One `ckpt up` for the file: the parts share it.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { requireCriu } from '../helpers/criu.js';
import { startCounter, waitGone, type Counter } from '../helpers/targets.js';
import { countsOn, waitUntil } from '../helpers/wait.js';
import { runCli, spawnCli } from './run.js';
import { startCkptUp, stopChild } from './server.js';

test('the README claims of the CLI', async (t) => {
  if (!(await requireCriu(t))) return;
  const srv = await startCkptUp();
  t.after(() => srv.stop());
  const ckpt = (...args: string[]) => runCli(args, { CKPT_URL: srv.url });
  const targets: Counter[] = [];
  t.after(() => Promise.all(targets.map((c) => c.kill())));
  const counter = async (ballastMiB = 0, options: { ignoreTerm?: boolean } = {}) => {
    const c = await startCounter(ballastMiB, options);
    targets.push(c);
    return c;
  };
  const dumpJson = async (...args: string[]) => {
    const r = await ckpt('dump', ...args, '--wait', '--json');
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout);
  };
  const a = await counter();

  await t.test('dump --pid-file and --match name the process; jobs --state / --type filter', async () => {
    const pidFile = path.join(a.dir, 'app.pid');
    await writeFile(pidFile, `${a.pid}\n`);
    const byFile = await dumpJson('--pid-file', pidFile);
    assert.equal(byFile.state, 'completed');
    const byMatch = await dumpJson('--match', `counter\\.py ${a.dir}/`);
    assert.equal(byMatch.state, 'completed');
    for (const job of [byFile, byMatch]) {
      const shown = JSON.parse((await ckpt('checkpoints', 'show', job.result.checkpointId, '--json')).stdout);
      assert.equal(shown.target.pid, a.pid);
    }
    const failed = await ckpt('dump', '--pid', '4000000', '--wait');
    assert.equal(failed.code, 1);

    const completedDumps = JSON.parse((await ckpt('jobs', '--state', 'completed', '--type', 'dump', '--json')).stdout).items;
    assert.ok(completedDumps.length >= 2);
    for (const j of completedDumps) assert.deepEqual([j.type, j.state], ['dump', 'completed']);
    assert.ok([byFile.id, byMatch.id].every((id) => completedDumps.some((j: { id: string }) => j.id === id)));
    const restores = JSON.parse((await ckpt('jobs', '--type', 'restore', '--json')).stdout).items;
    assert.deepEqual(restores, []);
  });

  await t.test('checkpoints pin / rm (refused, exit 1) / unpin / rm --force', async () => {
    const id = (await dumpJson('--pid', String(a.pid))).result.checkpointId;
    assert.equal((await ckpt('checkpoints', 'pin', id)).code, 0);
    const refused = await ckpt('checkpoints', 'rm', id);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /^ckpt: .*pinned/m);
    assert.equal((await ckpt('checkpoints', 'show', id)).code, 0, 'still there');
    assert.equal((await ckpt('checkpoints', 'unpin', id)).code, 0);
    assert.equal(JSON.parse((await ckpt('checkpoints', 'show', id, '--json')).stdout).pinned, false);
    assert.equal((await ckpt('checkpoints', 'pin', id)).code, 0);
    const forced = await ckpt('checkpoints', 'rm', id, '--force');
    assert.equal(forced.code, 0, forced.stderr);
    assert.equal((await ckpt('checkpoints', 'show', id)).code, 1, 'gone');
  });

  await t.test('restore-batch --wait restores every checkpoint', async () => {
    const [c, d] = [await counter(), await counter()];
    const ids = [];
    for (const x of [c, d]) ids.push((await dumpJson('--pid', String(x.pid), '--stop')).result.checkpointId);
    await Promise.all([waitGone(c.pid), waitGone(d.pid)]);
    const [atC, atD] = [c.read(), d.read()];
    const r = await ckpt('restore-batch', ...ids, '--concurrency', '2', '--wait');
    assert.equal(r.code, 0, r.stderr);
    await countsOn(c, atC);
    await countsOn(d, atD);
  });

  await t.test('Ctrl-C while waiting: exit code 130, and the job goes on', async () => {
    // A rollback of a running original that ignores SIGTERM waits for it (replaceGraceMs 30 s here): a long job.
    const stubborn = await counter(0, { ignoreTerm: true });
    const id = (await dumpJson('--pid', String(stubborn.pid))).result.checkpointId;
    const child = spawnCli(['restore', id, '--replace', '--wait'], { CKPT_URL: srv.url });
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    await waitUntil('the CLI to wait for its restore', () => /^queued restore job/m.test(stderr), { timeoutMs: 30_000 });
    child.kill('SIGINT');
    assert.equal(await exited, 130, stderr);
    const jobId = /ckpt job (\S+)/.exec(stderr)?.[1];
    assert.ok(jobId, stderr);
    const job = JSON.parse((await ckpt('job', jobId, '--json')).stdout);
    assert.ok(['waiting', 'active', 'delayed'].includes(job.state), `the job goes on: ${job.state}`);
  });

  await t.test('ckpt worker: flags over CKPT_* over the config file; it serves its node', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'ckpt-worker-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const config = path.join(dir, 'worker.yaml');
    await writeFile(
      config,
      ['node: from-file', 'redis: { url: "redis://127.0.0.1:1" }', `storage: { root: ${path.join(dir, 'from-file')} }`, `criu: { runtimeDir: ${path.join(dir, 'run')} }`, ''].join('\n'),
    );
    const worker = spawnCli(['worker', '--config', config, '--storage-root', srv.storageRoot], {
      CKPT_NODE: 'from-env',
      CKPT_REDIS_URL: srv.redisUrl,
      CKPT_STORAGE_ROOT: path.join(dir, 'from-env'),
    });
    let out = '';
    worker.stdout!.setEncoding('utf8').on('data', (s: string) => (out += s));
    worker.stderr!.setEncoding('utf8').on('data', (s: string) => (out += s));
    t.after(() => stopChild(worker));
    const b = await counter();
    // Jobs for a node are accepted once a worker serves it (422 before): this one, once it runs.
    await waitUntil(`the worker to run\n${out}`, () => /"msg":"worker running"/.test(out), { timeoutMs: 60_000 });
    // Enqueued for node from-env, which only this worker serves: its env node and env Redis won over the file.
    const enq = await fetch(`${srv.url}/api/v1/dumps`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ target: { pid: b.pid }, node: 'from-env' }),
    });
    assert.equal(enq.status, 202, await enq.clone().text());
    const { jobId } = (await enq.json()) as { jobId: string };
    const job = await waitUntil(`job ${jobId} on node from-env to finish\n${out}`, async () => {
      const j = JSON.parse((await ckpt('job', jobId, '--json')).stdout);
      return (j.state === 'completed' || j.state === 'failed') && j;
    }, { timeoutMs: 60_000, pollMs: 200 });
    assert.equal(job.state, 'completed', `${job.failedReason}\n${out}`);
    assert.equal(job.node, 'from-env');
    // --storage-root won over CKPT_STORAGE_ROOT: the checkpoint is where ckpt up finds it.
    const cp = JSON.parse((await ckpt('checkpoints', 'show', job.result.checkpointId, '--json')).stdout);
    assert.equal(cp.node, 'from-env');
    assert.equal((await ckpt('checkpoints', 'show', job.result.checkpointId)).code, 0);
    const files = await import('node:fs').then((fs) => fs.existsSync(path.join(srv.storageRoot, cp.target.key, cp.id)));
    assert.ok(files, 'the images are under the --storage-root');
    await stopChild(worker);
    assert.equal(worker.exitCode, 0, out);
  });
});
