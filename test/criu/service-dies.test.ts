// The CRIU service's worker dying mid-request, for real: the fake service (fake-service.test.ts) shows the request
// loop's answer; this shows a real `criu service` worker killed while it writes a big target's memory gives the same.
import assert from 'node:assert/strict';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { CriuClient, CriuConnectionError, isRetryableCriuError } from '../../src/criu/index.js';
import { criuWorkersOf, requireCriu, startTestCriuService } from '../helpers/criu.js';
import { waitUntil } from '../helpers/wait.js';
import { counterFor, tempDir } from './support.js';

test('the CRIU worker killed while it writes a 256 MiB target: ECRIU_DIED for DUMP, retryable; the service serves the next request', async (t) => {
  const criu = await requireCriu(t);
  if (!criu) return;
  const service = await startTestCriuService(criu);
  t.after(() => service.cleanup());
  const client = new CriuClient({ socketPath: service.socketPath });
  const target = await counterFor(t, 256);
  const dir = await tempDir(t);

  const dump = client.dump({ pid: target.pid, imagesDir: dir, leaveRunning: true, logFile: 'dump.log', logLevel: 4 });
  dump.catch(() => undefined);
  await waitUntil('CRIU to write pages', async () => ((await stat(path.join(dir, 'pages-1.img')).catch(() => null))?.size ?? 0) > 0, {
    timeoutMs: 60_000,
    pollMs: 2,
  });
  const workers = criuWorkersOf(service.pid!);
  assert.equal(workers.length, 1, `one worker serves the one connection: ${workers.join(', ')}`);
  process.kill(workers[0]!, 'SIGKILL');

  const err = await dump.then(
    () => assert.fail('the dump succeeded although its CRIU worker was killed'),
    (e: Error) => e,
  );
  assert.ok(err instanceof CriuConnectionError, String(err));
  assert.equal(err.code, 'ECRIU_DIED');
  assert.equal(err.requestType, 'DUMP');
  assert.equal(isRetryableCriuError(err), true, 'a worker that died is worth another attempt');
  const version = await client.version();
  assert.ok(version.major >= 4, 'the service itself lives on');
});
