// The HTTP edge: every endpoint refuses bad input naming the field, unknown ids are 404, tokens and roles hold.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import WebSocket from 'ws';
import { startService } from '../../src/app/start-service.js';
import { configSchema } from '../../src/config/schema.js';
import pino from 'pino';
import { api, startServiceUnderTest } from './harness.js';

/** A body that is wrong for every endpoint: an unknown key, and wrong types for the usual ones. */
const BAD_BODY = { bogus: true, target: 'not-an-object', checkpointId: 42, checkpointIds: 'x', cron: 7, id: '../../etc' };

test('every endpoint with a body or query answers bad input with 400 naming the field; every :id endpoint answers 404 for an unknown id', async (t) => {
  const svc = await startServiceUnderTest(t);
  if (!svc) return;
  const doc = (await api(svc.url, 'GET', '/api/v1/openapi.json')).json;
  const ops = Object.entries(doc.paths as Record<string, Record<string, any>>).flatMap(([p, methods]) =>
    Object.entries(methods).map(([method, op]) => ({ path: p, method: method.toUpperCase(), op })),
  );
  const documented = Object.keys(doc.paths);
  for (const p of [
    '/api/v1/dumps', '/api/v1/restores', '/api/v1/restores/batch', '/api/v1/jobs', '/api/v1/jobs/{id}', '/api/v1/jobs/{id}/log',
    '/api/v1/checkpoints', '/api/v1/checkpoints/{id}', '/api/v1/checkpoints/{id}/log', '/api/v1/checkpoints/{id}/pin', '/api/v1/checkpoints/{id}/unpin',
    '/api/v1/schedules', '/api/v1/schedules/{id}', '/api/v1/schedules/{id}/pause', '/api/v1/schedules/{id}/resume',
    '/api/v1/schedules/{id}/trigger', '/api/v1/schedules/{id}/next-runs', '/healthz', '/metrics', '/api/v1/feed',
  ]) {
    assert.ok(documented.includes(p), `OpenAPI documents ${p}`);
  }
  assert.ok(ops.length >= 20, `documented operations: ${ops.length}`);
  let withBody = 0;
  let withId = 0;
  for (const { path: p, method, op } of ops) {
    if (op.requestBody) {
      withBody++;
      const url = p.replace('{id}', 'some-id');
      const res = await api(svc.url, method, url, BAD_BODY);
      assert.equal(res.status, 400, `${method} ${p}: ${res.text}`);
      assert.equal(res.json.error, 'validation');
      assert.ok(res.json.issues.length > 0);
      for (const issue of res.json.issues) assert.match(issue.field, /^body(\.|$)/, `${method} ${p}: ${JSON.stringify(issue)}`);
      assert.ok(res.json.issues.some((i: any) => i.field !== 'body' || /bogus|Unrecognized/.test(i.reason)), `${method} ${p} names a field`);
      const notJson = await fetch(svc.url + url, { method, headers: { 'content-type': 'application/json' }, body: '{oops' });
      assert.equal(notJson.status, 400, `${method} ${p} with broken JSON`);
    }
    const queryParams = (op.parameters ?? []).filter((x: any) => x.in === 'query' && x.name === 'limit');
    if (queryParams.length) {
      const res = await api(svc.url, method, `${p}?limit=-5`);
      assert.equal(res.status, 400, `${method} ${p}?limit=-5`);
      assert.equal(res.json.issues[0].field, 'query.limit');
    }
    // A PUT of a valid schedule creates it (covered by the scheduler's route tests); every other :id call needs the id.
    if (p.includes('{id}') && method !== 'PUT') {
      withId++;
      const res = await api(svc.url, method, p.replace('{id}', 'no-such-id-123'));
      assert.equal(res.status, 404, `${method} ${p}: ${res.text}`);
      assert.equal(res.json.error, 'not_found', `${method} ${p}`);
    }
  }
  assert.ok(withBody >= 5 && withId >= 10, `bodies ${withBody}, ids ${withId}`);

  // A path that tries to leave the API is just an unknown id or route, never a file.
  const traversal = await api(svc.url, 'GET', '/api/v1/checkpoints/..%2F..%2Fetc%2Fpasswd');
  assert.ok([400, 404].includes(traversal.status), traversal.text);
  const dashboardTraversal = await fetch(svc.url + '/..%2F..%2Fpackage.json');
  assert.equal(dashboardTraversal.status, 404);

  // Target problems are 4xx at once, with the reason.
  const gone = await api(svc.url, 'POST', '/api/v1/dumps', { target: { pid: 4_000_000 } });
  assert.equal(gone.status, 422, gone.text);
  assert.match(gone.json.message, /4000000/);
  const init = await api(svc.url, 'POST', '/api/v1/dumps', { target: { pid: 1 } });
  assert.equal(init.status, 403);
  assert.match(init.json.message, /pid 1/);
  const self = await api(svc.url, 'POST', '/api/v1/dumps', { target: { pid: process.pid } });
  assert.equal(self.status, 403, "ckpt's own process is refused");
  const pathOption = await api(svc.url, 'POST', '/api/v1/dumps', { target: { pid: 1234 }, criu: { imagesDir: '/etc' } });
  assert.equal(pathOption.status, 400);
  assert.equal(pathOption.json.issues[0].field, 'body.criu');
});

test('with tokens configured: no token is 401 on HTTP and on the WebSocket upgrade, a read token cannot enqueue (403), an operate token can', async (t) => {
  const read = 'read-token-0123456789abcdef';
  const operate = 'operate-token-0123456789abcdef';
  const svc = await startServiceUnderTest(t, {
    api: { tokens: [{ name: 'r', token: read, role: 'read' }, { name: 'o', token: operate, role: 'operate' }] },
  });
  if (!svc) return;
  assert.equal((await api(svc.url, 'GET', '/api/v1/jobs')).status, 401);
  assert.equal((await api(svc.url, 'GET', '/api/v1/jobs', undefined, { authorization: 'Bearer wrong-token-0123456789' })).status, 401);
  assert.equal((await api(svc.url, 'GET', '/api/v1/jobs', undefined, { authorization: `Bearer ${read}` })).status, 200);
  assert.equal((await api(svc.url, 'GET', `/api/v1/jobs?token=${read}`)).status, 200);
  const denied = await api(svc.url, 'POST', '/api/v1/dumps', { target: { pid: 1234 } }, { authorization: `Bearer ${read}` });
  assert.equal(denied.status, 403);
  assert.match(denied.json.message, /operate/);
  const allowed = await api(svc.url, 'POST', '/api/v1/dumps', { target: { pid: 1 } }, { authorization: `Bearer ${operate}` });
  assert.equal(allowed.status, 403, 'past auth: refused by the target policy, not by auth');
  assert.equal(allowed.json.error, 'policy');

  const upgrade = (headers: Record<string, string>) =>
    new Promise<number>((resolve, reject) => {
      const ws = new WebSocket(svc.url.replace('http', 'ws') + '/api/v1/feed', { headers, handshakeTimeout: 30_000 });
      ws.once('unexpected-response', (_req, res) => resolve(res.statusCode!));
      ws.once('open', () => {
        ws.close();
        resolve(101);
      });
      // Neither an answer nor an open connection (the handshake timed out, the server went away): fail, naming it.
      ws.once('error', (err) => reject(new Error(`feed upgrade got no HTTP answer: ${err.message}`)));
    });
  assert.equal(await upgrade({}), 401);
  assert.equal(await upgrade({ authorization: 'Bearer nope-nope-nope-nope-nope' }), 401);
  assert.equal(await upgrade({ authorization: `Bearer ${read}` }), 101);
});

test('binding to a non-loopback address without tokens refuses to start, naming the fix', async () => {
  const config = configSchema.parse({ api: { host: '0.0.0.0', port: 0 }, redis: { url: 'redis://127.0.0.1:1' } });
  await assert.rejects(
    startService({ config, roles: { api: true, worker: false, scheduler: false }, log: pino({ level: 'silent' }), version: 'test' }),
    /not loopback.*tokens/,
  );
});
