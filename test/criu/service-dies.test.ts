// The CRIU service's worker dying mid-request, for real: the fake service (fake-service.test.ts) shows the request
// loop's answer; this shows a real `criu service` worker killed in the middle of a DUMP gives the same.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CriuClient, CriuConnectionError, isRetryableCriuError } from '../../src/criu/index.js';
import { criuWorkersOf, requireCriu, startTestCriuService } from '../helpers/criu.js';
import { counterFor, tempDir } from './support.js';

test('the CRIU worker killed mid-DUMP (while it waits for the answer to its pre-dump NOTIFY): ECRIU_DIED, retryable; the service serves the next request', async (t) => {
  const criu = await requireCriu(t);
  if (!criu) return;
  const service = await startTestCriuService(criu);
  t.after(() => service.cleanup());
  const client = new CriuClient({ socketPath: service.socketPath });
  const target = await counterFor(t);
  const dir = await tempDir(t);

  // CRIU's worker waits for the answer to each NOTIFY: killed while it waits, it died mid-request, however fast it is.
  const killed: number[] = [];
  const onStage = () => {
    if (killed.length) return;
    killed.push(...criuWorkersOf(service.pid!));
    for (const pid of killed) process.kill(pid, 'SIGKILL');
  };
  const err = await client.dump({ pid: target.pid, imagesDir: dir, leaveRunning: true, logFile: 'dump.log' }, { notify: { onStage } }).then(
    () => assert.fail('the dump succeeded although its CRIU worker was killed'),
    (e: Error) => e,
  );
  assert.equal(killed.length, 1, `one worker served the one connection: ${killed.join(', ')}`);
  assert.ok(err instanceof CriuConnectionError, String(err));
  assert.equal(err.code, 'ECRIU_DIED');
  assert.equal(err.requestType, 'DUMP');
  assert.equal(isRetryableCriuError(err), true, 'a worker that died is worth another attempt');
  const version = await client.version();
  assert.ok(version.major >= 4, 'the service itself lives on');
  assert.ok(target.alive(), 'the target was not harmed');
});
