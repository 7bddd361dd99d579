// Issue 11.3: no operation on the checkpoint store follows a symlink out of the storage root. A real service (Redis,
// CRIU, worker), a real checkpoint of a real process, then its target folder swapped for a symlink to a folder
// elsewhere: DELETE, restore and the restore drill refuse it, and what lies outside the root is left alone.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rename, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { startCounter, type Counter } from '../helpers/targets.js';
import { waitUntil } from '../helpers/wait.js';
import { api, startServiceUnderTest } from './harness.js';

test('a target folder swapped for a symlink out of the storage root: DELETE, restore and verify refuse it and touch nothing outside', async (t) => {
  const svc = await startServiceUnderTest(t);
  if (!svc) return;
  const targets: Counter[] = [];
  t.after(() => Promise.all(targets.map((c) => c.kill())));
  const elsewhere = await mkdtemp(path.join(os.tmpdir(), 'ckpt-elsewhere-'));
  t.after(() => rm(elsewhere, { recursive: true, force: true }));
  const finished = (jobId: string) =>
    waitUntil(`job ${jobId} to finish`, async () => {
      const { json } = await api(svc.url, 'GET', `/api/v1/jobs/${jobId}`);
      return (json.state === 'completed' || json.state === 'failed') && json;
    }, { timeoutMs: 60_000, pollMs: 50 });

  const counter = await startCounter();
  targets.push(counter);
  const dumped = await api(svc.url, 'POST', '/api/v1/dumps', { target: { pid: counter.pid } });
  assert.equal(dumped.status, 202, dumped.text);
  const job = await finished(dumped.json.jobId);
  assert.equal(job.state, 'completed', job.failedReason);
  const id: string = job.result.checkpointId;
  const key = `python3-${counter.pid}`;

  // The attacker's move: <root>/<key> becomes a symlink to a folder elsewhere holding the same names and a file of theirs.
  const keyDir = path.join(svc.config.storage.root, key);
  const outside = path.join(elsewhere, 'victim');
  await rename(keyDir, outside);
  await symlink(outside, keyDir);
  await writeFile(path.join(outside, 'precious.txt'), 'not ckpt\'s');
  const before = (await readdir(path.join(outside, id))).sort();

  const refused = await api(svc.url, 'DELETE', `/api/v1/checkpoints/${id}`);
  assert.equal(refused.status, 409, refused.text);
  assert.equal(refused.json.error, 'unsafe_path');
  assert.equal(refused.json.code, 'EUNSAFE_PATH');
  assert.match(refused.json.message, /symbolic link/);
  const forced = await api(svc.url, 'DELETE', `/api/v1/checkpoints/${id}?force=true`);
  assert.equal(forced.status, 409, forced.text);
  assert.ok(existsSync(path.join(outside, 'precious.txt')), 'the file outside the root is still there');
  assert.deepEqual((await readdir(path.join(outside, id))).sort(), before, 'the folder outside the root is untouched');
  assert.equal((await api(svc.url, 'GET', `/api/v1/checkpoints/${id}`)).status, 200, 'a refused delete leaves the checkpoint listed');

  for (const [what, enqueue] of [
    ['restore', () => api(svc.url, 'POST', '/api/v1/restores', { checkpointId: id, replace: true })],
    ['verify', () => api(svc.url, 'POST', `/api/v1/checkpoints/${id}/verify`)],
  ] as const) {
    const res = await enqueue();
    assert.equal(res.status, 202, `${what}: ${res.text}`);
    const failed = await finished(res.json.jobId);
    assert.equal(failed.state, 'failed', `${what} must not use a folder outside the root`);
    assert.match(failed.failedReason, /symbolic link/, what);
  }
  assert.ok(counter.alive(), 'the refused restore stopped nothing');
  assert.ok(existsSync(path.join(outside, 'precious.txt')));
  assert.deepEqual((await readdir(path.join(outside, id))).sort(), before);
});
