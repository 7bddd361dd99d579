// Redis loses everything; the checkpoint folders remain: `ckpt catalog rebuild` (and a worker's start) list them again.
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { Redis } from 'ioredis';
import pino from 'pino';
import { startService } from '../../src/app/start-service.js';
import { newCheckpointId } from '../../src/common/checkpoint-id.js';
import { api, FeedRecorder, startServiceUnderTest } from '../api/harness.js';
import { runCli } from '../cli/run.js';
import { startCounter } from '../helpers/targets.js';
import { waitUntil } from '../helpers/wait.js';

test('after FLUSHALL, `ckpt catalog rebuild` lists every checkpoint again with the same manifest, partial attempts never; a restore works; a worker start rebuilds by itself', async (t) => {
  const svc = await startServiceUnderTest(t);
  if (!svc) return;
  const targets = await Promise.all([startCounter(), startCounter()]);
  t.after(() => Promise.all(targets.map((x) => x.kill())));
  const feed = await FeedRecorder.open(svc.url);
  t.after(() => feed.close());
  feed.send({ op: 'subscribe', channels: ['job'] });
  await feed.waitFor((m) => m.type === 'subscribed');
  const finished = async (jobId: string) => {
    const done = await feed.waitFor((m) => m.type === 'event' && m.jobId === jobId && /^job\.(completed|failed)$/.test(m.event));
    assert.equal(done.event, 'job.completed', JSON.stringify(done.data));
    return done.data.result;
  };
  for (const target of [targets[0]!, targets[0]!, targets[1]!]) {
    const enq = await api(svc.url, 'POST', '/api/v1/dumps', { target: { pid: target.pid } });
    assert.equal(enq.status, 202, enq.text);
    await finished(enq.json.jobId);
  }
  const before = (await api(svc.url, 'GET', '/api/v1/checkpoints')).json.items;
  assert.equal(before.length, 3);

  // What must not count: an unfinished attempt (CRIU images, no manifest), and a folder whose manifest is cut short.
  const root = svc.config.storage.root;
  const targetDir = path.join(root, before[0].target.key);
  const attempt = path.join(targetDir, `.tmp-${newCheckpointId()}`);
  await mkdir(attempt, { mode: 0o700 });
  await writeFile(path.join(attempt, 'pages-1.img'), 'half a dump');
  const torn = path.join(targetDir, newCheckpointId());
  await mkdir(torn, { mode: 0o700 });
  const someManifest = await readFile(path.join(targetDir, before[0].id, 'manifest.json'), 'utf8');
  await writeFile(path.join(torn, 'manifest.json'), someManifest.slice(0, 200));

  const admin = new Redis(svc.redis.url);
  await admin.flushall();
  assert.deepEqual((await api(svc.url, 'GET', '/api/v1/checkpoints')).json.items, []);

  const cli = await runCli(['catalog', 'rebuild', '--redis-url', svc.config.redis.url, '--storage-root', root, '--node', svc.config.node]);
  assert.equal(cli.code, 0, cli.stderr);
  assert.match(cli.stdout, /3 added, 0 listed already, 1 skipped/);
  assert.ok(cli.stdout.includes(`skipped ${torn}:`), cli.stdout);
  assert.ok(!cli.stdout.includes('.tmp-'), 'attempt folders are not even considered');

  const after = (await api(svc.url, 'GET', '/api/v1/checkpoints')).json.items;
  assert.deepEqual(after, before, 'the same checkpoints, same manifests, same order');
  // Twice is harmless.
  const again = await runCli(['catalog', 'rebuild', '--json', '--redis-url', svc.config.redis.url, '--storage-root', root, '--node', svc.config.node]);
  assert.equal(again.code, 0, again.stderr);
  assert.deepEqual(JSON.parse(again.stdout).added, []);
  assert.equal(JSON.parse(again.stdout).present.length, 3);

  // The rebuilt catalog is usable: a restore from it.
  const victim = targets[1]!;
  const checkpoint = before.find((c: any) => c.target.pid === victim.pid);
  process.kill(victim.pid, 'SIGKILL');
  await waitUntil(`the killed pid ${victim.pid} to be dead`, () => !victim.alive());
  // FLUSHALL took the worker's presence too: restores are refused (422 ENODE_UNSERVED) until its next beat.
  const restore = await waitUntil('the worker to announce its node again', async () => {
    const res = await api(svc.url, 'POST', '/api/v1/restores', { checkpointId: checkpoint.id });
    return !(res.status === 422 && res.json.code === 'ENODE_UNSERVED') && res;
  }, { timeoutMs: 30_000, pollMs: 200 });
  assert.equal(restore.status, 202, restore.text);
  assert.equal((await finished(restore.json.jobId)).restoredPid, victim.pid);
  assert.ok(victim.alive());

  // Redis empty again: a worker that starts finds no checkpoint of its node listed and rebuilds, saying so in its log.
  await admin.flushall();
  let logged = '';
  const log = pino({ level: 'info' }, new Writable({ write: (c, _e, done) => ((logged += c.toString()), done()) }));
  admin.disconnect();
  // Its own criu.runtimeDir: the running service holds the first one (one instance per runtime folder).
  const config = { ...svc.config, criu: { ...svc.config.criu, runtimeDir: `${svc.config.criu.runtimeDir}-worker` } };
  const worker = await startService({ config, roles: { api: false, worker: true, scheduler: false }, log, version: 'test' });
  await worker.close();
  assert.deepEqual((await api(svc.url, 'GET', '/api/v1/checkpoints')).json.items, before);
  const line = logged.split('\n').map((l) => (l ? JSON.parse(l) : {})).find((l) => /catalog rebuilt/.test(l.msg));
  assert.ok(line, logged);
  assert.equal(line.added.length, 3);
  assert.deepEqual(line.skipped.map((s: any) => s.dir), [torn]);
});
