// Issue 11.5: what a failed dump leaves. A real CRIU refusal (established TCP without tcpEstablished) through the real
// API: a one-line reason pointing at the job's log endpoint (not at the removed attempt folder), CRIU's lines in their
// own field without the harmless RLIMIT_NOFILE one, the log served there, and no empty target folder in the store.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, statfs } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { startCounter } from '../helpers/targets.js';
import { waitUntil } from '../helpers/wait.js';
import { api, serviceWithTcpPair, startServiceUnderTest } from './harness.js';

test('a failed dump: one-line reason pointing at GET /jobs/:id/log, details apart, no empty <comm>-<pid>/ folder left', async (t) => {
  const scene = await serviceWithTcpPair(t);
  if (!scene) return;
  const { svc, pair, feed } = scene;

  const res = await api(svc.url, 'POST', '/api/v1/dumps', { target: { pid: pair.pid } });
  assert.equal(res.status, 202, res.text);
  const jobId: string = res.json.jobId;
  const job = await waitUntil('the dump to fail', async () => {
    const { json } = await api(svc.url, 'GET', `/api/v1/jobs/${jobId}`);
    return json.state === 'failed' && json;
  }, { timeoutMs: 60_000, pollMs: 50 });

  const reason: string = job.failedReason;
  assert.doesNotMatch(reason, /\n/, 'one line');
  assert.match(reason, /--tcp-established/, "CRIU's reason");
  assert.ok(reason.endsWith(`CRIU's log: GET /api/v1/jobs/${jobId}/log`), reason);
  assert.doesNotMatch(reason, /\.tmp-|dump\.log|RLIMIT_NOFILE/);
  const failed = await feed.waitFor((m) => m.type === 'event' && m.jobId === jobId && m.event === 'job.failed' && m.data.final);
  assert.equal(failed.data.reason, reason);
  for (const line of failed.data.details ?? []) assert.doesNotMatch(line, /RLIMIT_NOFILE/);
  const log = await api(svc.url, 'GET', `/api/v1/jobs/${jobId}/log`);
  assert.equal(log.status, 200);
  assert.match(log.text, /Connected TCP socket/, 'the log the reason points at holds CRIU\'s lines');
  assert.equal(existsSync(path.join(svc.config.storage.root, `python3-${pair.pid}`)), false, 'no empty target folder');
});

test('a dump whose expected size would leave less than storage.minFreeBytes is refused before CRIU runs, with both figures', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ckpt-room-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const fs = await statfs(dir);
  // 32 MiB of room above the limit for a target holding 128 MiB (others' writes on this disk only shrink the room).
  const svc = await startServiceUnderTest(t, { storage: { root: path.join(dir, 'checkpoints'), minFreeBytes: fs.bavail * fs.bsize - 32 * 2 ** 20 } });
  if (!svc) return;
  const big = await startCounter(128);
  t.after(() => big.kill());
  const res = await api(svc.url, 'POST', '/api/v1/dumps', { target: { pid: big.pid } });
  assert.equal(res.status, 202, res.text);
  const job = await waitUntil('the dump to fail', async () => {
    const { json } = await api(svc.url, 'GET', `/api/v1/jobs/${res.json.jobId}`);
    return json.state === 'failed' && json;
  }, { timeoutMs: 60_000, pollMs: 50 });
  assert.match(job.failedReason, /^not enough free space for a dump of python3-\d+: it needs about \d+ bytes, .* has \d+ free, which would leave less than storage\.minFreeBytes \(\d+\)$/);
  assert.equal(job.attemptsMade, 1, 'refused at once, not retried');
  const log = await api(svc.url, 'GET', `/api/v1/jobs/${res.json.jobId}/log`);
  assert.doesNotMatch(log.text, /Dumping|Error \(/, 'CRIU never ran');
  assert.ok(big.alive());
  assert.equal(existsSync(path.join(svc.config.storage.root, `python3-${big.pid}`)), false, 'no folder left');
});
