// Issue 11.5: what a failed dump leaves. A real CRIU refusal (established TCP without tcpEstablished) through the real
// API: a one-line reason pointing at the job's log endpoint (not at the removed attempt folder), CRIU's lines in their
// own field without the harmless RLIMIT_NOFILE one, the log served there, and no empty target folder in the store.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { startTcpPair } from '../helpers/targets.js';
import { waitUntil } from '../helpers/wait.js';
import { api, FeedRecorder, startServiceUnderTest } from './harness.js';

test('a failed dump: one-line reason pointing at GET /jobs/:id/log, details apart, no empty <comm>-<pid>/ folder left', async (t) => {
  const svc = await startServiceUnderTest(t);
  if (!svc) return;
  const pair = await startTcpPair();
  t.after(() => pair.kill());
  const feed = await FeedRecorder.open(svc.url);
  t.after(() => feed.close());
  feed.send({ op: 'subscribe', channels: ['job'] });
  await feed.waitFor((m) => m.type === 'subscribed');

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
