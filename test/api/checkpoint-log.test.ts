// GET /api/v1/checkpoints/:id/log: CRIU's whole dump log, from the checkpoint's folder on this node. A dump's job log
// in Redis keeps only its end (workers/bounded-criu-log.ts); this is where the rest is.
import assert from 'node:assert/strict';
import { readFile, rm, symlink } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { Catalog } from '../../src/catalog/catalog.js';
import { CheckpointStore } from '../../src/catalog/checkpoint-store.js';
import { newCheckpointId } from '../../src/common/checkpoint-id.js';
import { createRedis } from '../../src/queue/redis.js';
import { manifestFor } from '../catalog/fixtures.js';
import { runCli } from '../cli/run.js';
import { throwawaySigner } from '../helpers/signer.js';
import { startCounter } from '../helpers/targets.js';
import { api, jobIn, startServiceUnderTest } from './harness.js';

test("a checkpoint's log is its dump.log byte for byte (API and CLI); another node's is a 422 naming that node", async (t) => {
  const svc = await startServiceUnderTest(t, { criu: { logLevel: 4 } });
  if (!svc) return;
  const counter = await startCounter();
  t.after(() => counter.kill());
  const { jobId } = (await api(svc.url, 'POST', '/api/v1/dumps', { target: { pid: counter.pid } })).json;
  const id: string = (await jobIn(svc.url, jobId, ['completed'])).result.checkpointId;
  const file = path.join(svc.config.storage.root, `python3-${counter.pid}`, id, 'dump.log');
  const onDisk = await readFile(file);

  const res = await fetch(`${svc.url}/api/v1/checkpoints/${id}/log`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type')!, /^text\/plain/);
  assert.ok(Buffer.from(await res.arrayBuffer()).equals(onDisk), 'exactly the bytes of dump.log');
  assert.ok(onDisk.toString().split('\n').length > 500, 'a level-4 log, much longer than the job log keeps');
  const jobLog = (await api(svc.url, 'GET', `/api/v1/jobs/${jobId}/log`)).text;
  assert.ok(jobLog.includes(`GET /api/v1/checkpoints/${id}/log`), 'the job log points here');

  const cli = await runCli(['--url', svc.url, 'checkpoints', 'log', id]);
  assert.equal(cli.code, 0, cli.stderr);
  assert.equal(cli.stdout, onDisk.toString(), 'the CLI prints it as it is');

  // A checkpoint whose files are on another node (listed in the shared catalog, no folder here).
  const redis = createRedis(svc.redis.url);
  t.after(() => redis.disconnect());
  const store = new CheckpointStore({ root: svc.config.storage.root, signer: throwawaySigner() });
  const elsewhere = manifestFor(newCheckpointId(), { node: 'node-b' });
  await new Catalog(redis, { prefix: svc.config.redis.prefix, store, node: 'node-b' }).add(elsewhere);
  const other = await api(svc.url, 'GET', `/api/v1/checkpoints/${elsewhere.id}/log`);
  assert.equal(other.status, 422, other.text);
  assert.equal(other.json.code, 'ECHECKPOINT_ELSEWHERE');
  assert.match(other.json.message, /on node node-b, not on this node \(test-node\)/);
  const cliOther = await runCli(['--url', svc.url, 'checkpoints', 'log', elsewhere.id]);
  assert.equal(cliOther.code, 1);
  assert.match(cliOther.stderr, /node node-b/);

  // A log swapped for a symbolic link (to a secret elsewhere) is refused, not followed.
  await rm(file);
  await symlink('/etc/shadow', file);
  const planted = await api(svc.url, 'GET', `/api/v1/checkpoints/${id}/log`);
  assert.equal(planted.status, 409, planted.text);
  assert.equal(planted.json.code, 'EUNSAFE_PATH');
  assert.doesNotMatch(planted.text, /root:/);
  // Removed by hand: 404 saying what is missing.
  await rm(file);
  const missing = await api(svc.url, 'GET', `/api/v1/checkpoints/${id}/log`);
  assert.equal(missing.status, 404, missing.text);
  assert.match(missing.json.message, /has no dump\.log in its folder on node test-node/);
});
