// A checkpoint deleted through another node's API: the node holding its folder is told over Redis pub/sub and drops
// it at once, and a node that was down drops it when its worker starts. Real services, workers, CRIU and s3rver.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { api } from '../api/harness.js';
import { startCounter } from '../helpers/targets.js';
import { waitUntil } from '../helpers/wait.js';
import { finished, startTwoServices } from './two-services.js';

test("deleted through node B's API, a checkpoint of node A goes from A's disk at once; one of node B deleted while B's worker is down goes when it starts", async (t) => {
  const nodes = await startTwoServices(t);
  if (!nodes) return;
  const { a, s3, bUrl, bRoot } = nodes;
  const counter = await startCounter();
  t.after(() => counter.kill());
  const dumpOn = async (node: string) => {
    const dump = await api(a.url, 'POST', '/api/v1/dumps', { target: { pid: counter.pid }, node });
    assert.equal(dump.status, 202, dump.text);
    const job = await finished(a.url, dump.json.jobId);
    assert.equal(job.state, 'completed', job.failedReason);
    const checkpoint = (await api(a.url, 'GET', `/api/v1/checkpoints/${job.result.checkpointId}`)).json;
    assert.equal(checkpoint.location, 'local+remote', 'kept on its node and in the bucket');
    return checkpoint as { id: string; target: { key: string } };
  };

  // Made and kept on node A; deleted through node B's API, which can only tell node A.
  const onA = await dumpOn('test-node');
  const folderA = path.join(a.config.storage.root, onA.target.key, onA.id);
  assert.ok(existsSync(folderA), folderA);
  const deleted = await api(bUrl, 'DELETE', `/api/v1/checkpoints/${onA.id}`);
  assert.equal(deleted.status, 200, deleted.text);
  assert.deepEqual(deleted.json, { id: onA.id, filesRemoved: false });
  assert.equal((await api(a.url, 'GET', `/api/v1/checkpoints/${onA.id}`)).status, 404, 'unlisted at once');
  await waitUntil(`node A's worker to remove ${folderA}`, () => !existsSync(folderA), { timeoutMs: 20_000 });
  // Node A removes the objects before its folder, then forgets the checkpoint.
  assert.deepEqual(await s3.keys(`ckpt/${onA.target.key}/${onA.id}/`), []);

  // Made and kept on node B; deleted through node A's API while node B's worker is down.
  const onB = await dumpOn('node-b');
  const folderB = path.join(bRoot, onB.target.key, onB.id);
  assert.ok(existsSync(folderB), folderB);
  await nodes.stopWorkerB();
  const deletedWhileDown = await api(a.url, 'DELETE', `/api/v1/checkpoints/${onB.id}`);
  assert.deepEqual(deletedWhileDown.json, { id: onB.id, filesRemoved: false });
  assert.ok(existsSync(folderB), 'no worker of node B to remove it yet');
  assert.ok((await s3.keys(`ckpt/${onB.target.key}/${onB.id}/`)).length > 0, 'its objects wait for node B too');
  // The worker's start finishes what was left for its node before it takes jobs.
  await nodes.startWorkerB();
  assert.ok(!existsSync(folderB), `node B's worker removed ${folderB} at its start`);
  assert.deepEqual(await s3.keys(`ckpt/${onB.target.key}/${onB.id}/`), []);
});
