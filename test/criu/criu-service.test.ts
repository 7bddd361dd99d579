// The supervised `criu service`: folder permissions, restart after a crash, no orphan left by a crashed ckpt.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CriuClient } from '../../src/criu/client.js';
import { CriuService } from '../../src/criu/criu-service.js';
import { requireCriu } from '../helpers/criu.js';
import { isAlive, waitGone } from '../helpers/targets.js';

test('the managed service lives in a 0700 folder, comes back by itself after a crash, and stops', async (t) => {
  const criu = await requireCriu(t);
  if (!criu) return;
  const dir = path.join(await mkdtemp(path.join(os.tmpdir(), 'ckpt-svc-')), 'run');
  const first = new CriuService({ bin: criu.bin, runtimeDir: dir, restartDelayMs: 50 });
  t.after(() => rm(path.dirname(dir), { recursive: true, force: true }));
  await first.start();
  assert.equal(statSync(dir).mode & 0o777, 0o700);
  const client = new CriuClient({ socketPath: first.socketPath });
  assert.ok((await client.version()).major >= 4);

  const crashed = first.pid!;
  const restarted = once(first, 'started');
  const died = once(first, 'exit');
  process.kill(crashed, 'SIGKILL');
  assert.deepEqual(await died, [null, 'SIGKILL', false], 'a crash is not a stop (ckpt logs it as a warning)');
  const [newPid] = await restarted;
  assert.notEqual(newPid, crashed);
  assert.ok((await client.version()).major >= 4, 'answers again after the restart');

  const ended = once(first, 'exit');
  await first.stop();
  assert.ok(!isAlive(newPid), 'stop() ends the service');
  assert.deepEqual(await ended, [null, 'SIGTERM', true], 'stopped: logged as such, not as a warning');
});

test('a service orphaned by a crashed ckpt process is replaced, not left running beside the new one', async (t) => {
  const criu = await requireCriu(t);
  if (!criu) return;
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ckpt-svc-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const fixture = fileURLToPath(new URL('../fixtures/criu-service-process.js', import.meta.url));
  const owner = spawn(process.execPath, [...(fixture.endsWith('.ts') ? ['--import', 'tsx'] : []), fixture, criu.bin, dir], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const [line] = (await once(owner.stdout!, 'data')) as [Buffer];
  const orphan = Number(line.toString().trim());
  owner.kill('SIGKILL');
  await once(owner, 'exit');
  assert.ok(isAlive(orphan), 'the service outlived its owner');

  const next = new CriuService({ bin: criu.bin, runtimeDir: dir });
  await next.start();
  t.after(() => next.stop());
  await waitGone(orphan);
  assert.ok((await new CriuClient({ socketPath: next.socketPath }).version()).major >= 4);
});
