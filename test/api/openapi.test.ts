import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Validator } from '@seriousme/openapi-schema-validator';
import { startCounter, startTcpPair } from '../helpers/targets.js';
import { api, jobIn, startServiceUnderTest } from './harness.js';
import { checkAnswer, checkedAnswers } from './openapi-check.js';

test('the OpenAPI document is valid OpenAPI 3.1 (a standard validator), with operationIds, response schemas, error responses and servers', async (t) => {
  const svc = await startServiceUnderTest(t);
  if (!svc) return;
  const doc = (await api(svc.url, 'GET', '/api/v1/openapi.json')).json;

  const validator = new Validator();
  const result = await validator.validate(structuredClone(doc));
  assert.deepEqual(result.errors ?? [], [], 'no validation errors');
  assert.equal(result.valid, true);
  assert.equal(validator.version, '3.1');

  assert.deepEqual(doc.servers, [{ url: svc.url }]);
  const ids = new Set<string>();
  for (const [path, ops] of Object.entries<any>(doc.paths)) {
    for (const [method, op] of Object.entries<any>(ops)) {
      assert.ok(op.operationId, `${method} ${path} has an operationId`);
      assert.ok(!ids.has(op.operationId), `operationId ${op.operationId} is unique`);
      ids.add(op.operationId);
      if (!path.startsWith('/api/v1/') || path === '/api/v1/feed' || path === '/api/v1/openapi.json') continue;
      const success = Object.keys(op.responses).filter((s) => s.startsWith('2'));
      assert.ok(success.length >= 1, `${op.operationId} documents its success`);
      for (const s of success) assert.ok(op.responses[s].content, `${op.operationId} ${s} has a body schema`);
      for (const s of ['401', '403']) assert.ok(op.responses[s], `${op.operationId} documents ${s}`);
      if (path.includes('{')) assert.ok(op.responses['404'], `${op.operationId} documents 404`);
      if (op.parameters.length || op.requestBody) assert.ok(op.responses['400'], `${op.operationId} documents 400`);
    }
  }
  assert.ok(doc.paths['/api/v1/dumps'].post.responses['422'], 'a dump documents 422 (target does not resolve)');
  assert.ok(doc.paths['/api/v1/jobs/{id}'].delete.responses['409'], 'cancel documents 409');
  assert.equal(doc.paths['/api/v1/jobs'].get.responses['200'].content['application/json'].schema.properties.items.type, 'array');
});

test('every route answers with what its schema says: a tour of the API, each answer checked against the document', async (t) => {
  const svc = await startServiceUnderTest(t);
  if (!svc) return;
  const u = svc.url;
  // The checker itself can fail: a body that does not match, a status not documented.
  await assert.rejects(checkAnswer(u, 'GET', '/api/v1/jobs/x', 200, 'application/json', { id: 1 }), /does not match getJob's schema/);
  await assert.rejects(checkAnswer(u, 'GET', '/api/v1/jobs/x', 418, 'application/json', {}), /does not document/);
  checkedAnswers.clear();

  const counter = await startCounter();
  t.after(() => counter.kill());
  const ok = async (method: string, path: string, body?: unknown) => {
    const res = await api(u, method, path, body);
    assert.ok(res.status < 300, `${method} ${path}: ${res.status} ${res.text}`);
    return res.json;
  };
  const { jobId } = await ok('POST', '/api/v1/dumps', { target: { pid: counter.pid } });
  const job = await jobIn(u, jobId, ['completed']);
  await ok('GET', `/api/v1/jobs/${jobId}/log`);
  await ok('GET', '/api/v1/jobs?limit=10');
  const id = job.result.checkpointId;
  await ok('GET', '/api/v1/checkpoints');
  await ok('GET', `/api/v1/checkpoints/${id}`);
  await ok('GET', `/api/v1/checkpoints/${id}/log`);
  await ok('POST', `/api/v1/checkpoints/${id}/pin`);
  assert.equal((await api(u, 'DELETE', `/api/v1/checkpoints/${id}`)).status, 409);
  await ok('POST', `/api/v1/checkpoints/${id}/unpin`);
  assert.equal((await api(u, 'DELETE', `/api/v1/jobs/${jobId}`)).status, 409);
  assert.equal((await api(u, 'POST', `/api/v1/jobs/${jobId}/retry`)).status, 409);
  await ok('POST', '/api/v1/schedules', { id: 'tour', cron: '0 3 * * *', target: { pid: counter.pid } });
  await ok('GET', '/api/v1/schedules');
  await ok('GET', '/api/v1/schedules/tour');
  await ok('PUT', '/api/v1/schedules/tour', { cron: '0 4 * * *', target: { pid: counter.pid } });
  await ok('POST', '/api/v1/schedules/tour/pause');
  await ok('POST', '/api/v1/schedules/tour/resume');
  await ok('GET', '/api/v1/schedules/tour/next-runs?n=2');
  const triggered = await ok('POST', '/api/v1/schedules/tour/trigger');
  await jobIn(u, triggered.jobId, ['completed']);
  await ok('DELETE', '/api/v1/schedules/tour');
  await ok('GET', '/api/v1/overview');
  await ok('GET', '/api/v1/events?limit=50');
  // A drill of it, then it goes.
  const drill = await ok('POST', `/api/v1/checkpoints/${id}/verify`);
  await jobIn(u, drill.jobId);
  await ok('DELETE', `/api/v1/checkpoints/${id}`);
  // A workload: started, listed, read, its output, stopped.
  await ok('POST', '/api/v1/workloads', { name: 'tour', command: ['sleep', '300'] });
  await ok('GET', '/api/v1/workloads');
  await ok('GET', '/api/v1/workloads/tour');
  await ok('GET', '/api/v1/workloads/tour/log?stream=stderr');
  await ok('DELETE', '/api/v1/workloads/tour');
  // A restore of the other checkpoint (the process is stopped by a dump first, so its pid is free).
  const stop = await ok('POST', '/api/v1/dumps', { target: { pid: counter.pid }, leaveRunning: false });
  const stopped = await jobIn(u, stop.jobId, ['completed']);
  const batch = await ok('POST', '/api/v1/restores/batch', { checkpointIds: [stopped.result.checkpointId] });
  for (const child of batch.jobIds) await jobIn(u, child);

  // A dump CRIU refuses (TCP without tcpEstablished), retried, then cancelled.
  const pair = await startTcpPair();
  t.after(() => pair.kill());
  const refused = await ok('POST', '/api/v1/dumps', { target: { pid: pair.pid } });
  await jobIn(u, refused.jobId, ['failed']);
  await ok('POST', `/api/v1/jobs/${refused.jobId}/retry`);
  const cancel = await api(u, 'DELETE', `/api/v1/jobs/${refused.jobId}`);
  // Removed while waiting, or aborted while active, or (409) failed again already: a race this test does not steer.
  if (cancel.status === 409) assert.match(cancel.json.message, /failed already/);
  else assert.ok([200, 202].includes(cancel.status), cancel.text);

  const doc = (await api(u, 'GET', '/api/v1/openapi.json')).json;
  const apiOps = Object.entries<any>(doc.paths)
    .filter(([p]) => p.startsWith('/api/v1/') && p !== '/api/v1/feed' && p !== '/api/v1/openapi.json')
    .flatMap(([, ops]) => Object.values<any>(ops).map((op) => op.operationId as string));
  const succeeded = (op: string) => [...(checkedAnswers.get(op) ?? [])].some((s) => s < 300);
  // createRestore is the batch's single-checkpoint twin (same response schema); it is driven by the feed tests.
  // cancelJob may lose the race above; job-cancel.test.ts checks its success answers.
  // createMigration needs a second node: nodes.test.ts drives it (its answers checked against the document as here).
  const elsewhere = ['createRestore', 'createMigration'];
  const missing = apiOps.filter((op) => !succeeded(op) && !elsewhere.includes(op) && !(op === 'cancelJob' && cancel.status === 409));
  assert.deepEqual(missing, [], 'every operation answered with a success that was checked');
});
