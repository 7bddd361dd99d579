// A hung Redis (SIGSTOP: connections stay open, nothing answers) must not hang the API: reads answer 503 at once-ish.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startCounter } from '../helpers/targets.js';
import { api, FeedRecorder, startServiceUnderTest } from './harness.js';

/** Far longer than any answer should take; only there so that a hanging request fails the test instead of hanging it. */
const HANG_GUARD_MS = 60_000;

test('with Redis hung, GET /checkpoints, /jobs and /schedules answer 503 naming Redis; after Redis resumes the API and the worker carry on', async (t) => {
  const svc = await startServiceUnderTest(t, {}, { redisConfig: (r) => ({ url: r.url, commandTimeoutMs: 1000 }) });
  if (!svc) return;
  const target = await startCounter();
  t.after(() => target.kill());
  for (const p of ['/api/v1/checkpoints', '/api/v1/jobs', '/api/v1/schedules']) assert.equal((await api(svc.url, 'GET', p)).status, 200, p);

  svc.redis.freeze();
  try {
    const hung = (method: string, p: string, body?: unknown) =>
      api(svc.url, method, p, body, {}, AbortSignal.timeout(HANG_GUARD_MS)).catch((err: Error) => {
        throw new Error(`${method} ${p} did not answer with Redis hung: ${err.message}`);
      });
    for (const p of ['/api/v1/checkpoints', '/api/v1/jobs', '/api/v1/schedules', '/api/v1/jobs/no-such-job']) {
      const res = await hung('GET', p);
      assert.equal(res.status, 503, `${p}: ${res.text}`);
      assert.equal(res.json.error, 'unavailable', p);
      assert.match(res.json.message, /Redis/, p);
    }
    const dump = await hung('POST', '/api/v1/dumps', { target: { pid: target.pid } });
    assert.equal(dump.status, 503, dump.text);
    const health = await hung('GET', '/healthz');
    assert.equal(health.status, 503);
    assert.equal(health.json.checks.redis.ok, false);
  } finally {
    // Before any cleanup: stopping the service needs Redis.
    svc.redis.thaw();
  }
  // The same connections recover: reads answer again, and a dump goes through the worker to a checkpoint.
  const feed = await FeedRecorder.open(svc.url);
  t.after(() => feed.close());
  feed.send({ op: 'subscribe', channels: ['job'] });
  await feed.waitFor((m) => m.type === 'subscribed');
  const enq = await api(svc.url, 'POST', '/api/v1/dumps', { target: { pid: target.pid } });
  assert.equal(enq.status, 202, enq.text);
  const done = await feed.waitFor((m) => m.type === 'event' && m.jobId === enq.json.jobId && /^job\.(completed|failed)$/.test(m.event));
  assert.equal(done.event, 'job.completed', JSON.stringify(done.data));
  const list = await api(svc.url, 'GET', '/api/v1/checkpoints');
  assert.equal(list.status, 200);
  assert.deepEqual(list.json.items.map((c: any) => c.id), [done.data.result.checkpointId]);
});
