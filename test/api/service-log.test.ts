import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CapturedLog, duplicateKeys } from '../helpers/log-lines.js';
import { api, startServiceUnderTest } from './harness.js';

test('duplicateKeys finds a key given twice in one object, not the same key in two objects', () => {
  assert.deepEqual(duplicateKeys('{"pid":1,"a":{"pid":2},"msg":"x \\"pid\\":","pid":3}'), ['pid']);
  assert.deepEqual(duplicateKeys('{"a":[{"k":1},{"k":2}],"b":"k"}'), []);
});

test('the running service logs requests at debug only, and no line carries a key twice', async (t) => {
  const log = new CapturedLog('debug');
  const svc = await startServiceUnderTest(t, {}, { log: log.logger });
  if (!svc) return;
  assert.equal((await api(svc.url, 'GET', '/api/v1/jobs')).status, 200);

  const lines = log.lines();
  const requests = lines.filter((l) => l.msg === 'request');
  assert.ok(requests.some((l) => l.url === '/api/v1/jobs' && l.status === 200), JSON.stringify(requests));
  for (const r of requests) assert.equal(r.level, 20, 'debug');
  const criu = lines.find((l) => l.msg === 'criu service running');
  assert.ok(criu, 'the managed CRIU service is announced');
  assert.equal(typeof criu.criuPid, 'number');
  assert.equal(criu.pid, process.pid, 'pid is the logging process');
  for (const raw of log.raw) assert.deepEqual(duplicateKeys(raw), [], raw);
});
