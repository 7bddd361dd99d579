// Two `ckpt up` on one machine (issue 11.1): the second one refuses to start, naming the first, before it touches
// anything (Redis, the CRIU service, its socket), when it would share the first's criu.runtimeDir or API address; and a
// CRIU service socket that disappears is noticed and the service brought back.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { waitUntil } from '../helpers/wait.js';
import { freePort } from '../helpers/redis.js';
import { runCli } from './run.js';
import { startCkptUp, type RunningCkpt } from './server.js';

const isAlive = (pid: number) => existsSync(`/proc/${pid}`) && !/\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
const servicePidOf = (ckpt: RunningCkpt) => Number(readFileSync(path.join(ckpt.runtimeDir, 'criu-service.pid'), 'utf8'));
const socketInoOf = (ckpt: RunningCkpt) => statSync(path.join(ckpt.runtimeDir, 'criu.sock')).ino;

/** A TCP listener standing in for Redis: it counts who connects (a refused start must not have). */
async function countingListener(t: { after(fn: () => unknown): void }): Promise<{ url: string; connections(): number }> {
  let connections = 0;
  const server = net.createServer((socket) => {
    connections++;
    socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise((resolve) => server.close(resolve)));
  return { url: `redis://127.0.0.1:${(server.address() as net.AddressInfo).port}`, connections: () => connections };
}

/** Runs a second `ckpt up` with its own port (unless given), storage, prefix and config, on the runtime folder given. */
async function secondUp(t: { after(fn: () => unknown): void }, redisUrl: string, runtimeDir: (dir: string) => string, port?: number) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ckpt-second-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const config = path.join(dir, 'config.yaml');
  const lines = ['redis: { prefix: second }', 'workloads:', `  root: ${path.join(dir, 'workloads')}`, 'criu:', `  runtimeDir: ${runtimeDir(dir)}`, ''];
  await writeFile(config, lines.join('\n'), { mode: 0o600 });
  const args = ['up', '--config', config, '--port', String(port ?? (await freePort())), '--redis-url', redisUrl, '--storage-root', path.join(dir, 'checkpoints')];
  return { dir, result: await runCli(args, {}, 30_000) };
}

test('a second ckpt up on the same criu.runtimeDir refuses to start, naming the first, and leaves its CRIU service alone', async (t) => {
  const first = await startCkptUp();
  t.after(() => first.stop());
  const service = servicePidOf(first);
  const socket = socketInoOf(first);
  const stand = await countingListener(t);
  // Once against a Redis that counts connections, once against the first one's real Redis (where it could have started).
  for (const redisUrl of [stand.url, first.redisUrl]) {
    const { result } = await secondUp(t, redisUrl, () => first.runtimeDir);
    assert.equal(result.code, 1, `refused: ${result.stderr}`);
    assert.match(
      result.stderr,
      new RegExp(`criu\\.runtimeDir ${first.runtimeDir} is in use by ckpt pid ${first.pid} \\(node [^,]+, config ${first.configFile}, API 127\\.0\\.0\\.1:${first.port}\\)`),
    );
    assert.equal(servicePidOf(first), service, 'the pid file is the first one\'s still');
    assert.ok(isAlive(service), "the first one's CRIU service was not killed");
    assert.equal(socketInoOf(first), socket, "the first one's socket was not removed nor replaced");
    const health = await fetch(`${first.url}/healthz`);
    assert.equal(health.status, 200, `the first one is healthy: ${await health.text()}`);
  }
  assert.equal(stand.connections(), 0, 'the refused instance never connected to Redis');
});

test('a second ckpt up on a port in use says so, naming the address, before it starts a CRIU service or reaches Redis', async (t) => {
  const first = await startCkptUp();
  t.after(() => first.stop());
  const stand = await countingListener(t);
  const { dir, result } = await secondUp(t, stand.url, (d) => path.join(d, 'run'), first.port);
  assert.equal(result.code, 1, `refused: ${result.stderr}`);
  assert.match(result.stderr, new RegExp(`api 127\\.0\\.0\\.1:${first.port} is in use \\(EADDRINUSE\\)`));
  assert.equal(stand.connections(), 0, 'it never connected to Redis');
  assert.ok(!existsSync(path.join(dir, 'run', 'criu-service.pid')), 'no CRIU service was started');
  const health = await fetch(`${first.url}/healthz`);
  assert.equal(health.status, 200);
});

test('a CRIU service socket that disappears is noticed and the service brought back', async (t) => {
  const first = await startCkptUp();
  t.after(() => first.stop());
  const before = servicePidOf(first);
  await unlink(path.join(first.runtimeDir, 'criu.sock'));
  await waitUntil('the socket loss to be logged', () => first.output().includes('criu service socket disappeared'));
  await waitUntil('a new CRIU service with a new socket', () => existsSync(path.join(first.runtimeDir, 'criu.sock')) && servicePidOf(first) !== before);
  // (Not the socket's inode: a file system may give the new socket the number the removed one had.)
  assert.ok(!isAlive(before), 'the service nobody could reach was ended');
  const health = await waitUntil('healthy again', async () => {
    const res = await fetch(`${first.url}/healthz`);
    return res.ok && ((await res.json()) as Record<string, any>);
  });
  assert.ok(health, 'healthz answers 200 with a CRIU service that answers');
});
