// README claims about `ckpt up` itself, against real `ckpt up` processes: the Redis it starts when none answers (AOF
// on, in $CKPT_DATA_DIR/redis, 0700: what it holds survives a restart of ckpt up); `--node` and `--no-scheduler`;
// `scheduler.enabled: false` (no ticks, the API still serves schedules); CKPT_* over the file, flags over CKPT_*.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { Redis } from 'ioredis';
import { reachable } from '../../src/app/managed-redis.js';
import { EventLog } from '../../src/events/event-log.js';
import { ScheduleStore } from '../../src/scheduler/schedule-store.js';
import { scheduleSchema } from '../../src/scheduler/schema.js';
import { requireCriu } from '../helpers/criu.js';
import { freePort, TestRedis } from '../helpers/redis.js';
import { startCounter } from '../helpers/targets.js';
import { waitUntil } from '../helpers/wait.js';
import { allEvents, killAllSchedulerProcesses, startSchedulerProcess } from '../scheduler/harness.js';
import { spawnCli } from './run.js';
import { stopChild, waitHealthy } from './server.js';

type Defer = (fn: () => Promise<unknown> | void) => void;

/** Cleanups run after the test, newest first (a ckpt up stops before the Redis it uses). */
function cleanups(t: TestContext): Defer {
  const fns: (() => Promise<unknown> | void)[] = [];
  t.after(async () => {
    for (const fn of fns.reverse()) await fn();
  });
  return (fn) => void fns.push(fn);
}

/**
 * A folder for one instance (removed after the test) and its config file (root's, 0600, as ckpt wants it): `lines`,
 * plus the instance's own CRIU runtime folder and workloads root in that folder.
 */
async function setup(defer: Defer, lines: string[]): Promise<{ dir: string; config: string }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ckpt-up-claims-'));
  defer(() => rm(dir, { recursive: true, force: true }));
  const config = path.join(dir, 'config.yaml');
  const own = [`workloads: { root: ${path.join(dir, 'workloads')} }`, 'storage: { minFreeBytes: 0 }'];
  const criu = lines.find((l) => l.startsWith('criu: {'));
  const runtime = `runtimeDir: ${path.join(dir, 'run')}`;
  const withCriu = criu ? lines.map((l) => (l === criu ? l.replace('criu: {', `criu: { ${runtime},`) : l)) : [...lines, `criu: { ${runtime} }`];
  await writeFile(config, [...withCriu, ...own, ''].join('\n'), { mode: 0o600 });
  return { dir, config };
}

/** Starts `ckpt up ARGS` and waits until it answers at `port`; stopped (SIGTERM) after the test. */
async function up(defer: Defer, args: string[], port: number, env: NodeJS.ProcessEnv = {}): Promise<{ child: ChildProcess; url: string; output(): string }> {
  const child = spawnCli(['up', ...args], env);
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (c: string) => (out += c));
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (out += c));
  defer(() => stopChild(child));
  const url = `http://127.0.0.1:${port}`;
  await waitHealthy(url, child, () => out);
  return { child, url, output: () => out };
}

async function getJson(url: string): Promise<{ status: number; json: any }> {
  const res = await fetch(url);
  return { status: res.status, json: await res.json() };
}

async function postJson(url: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, json: await res.json() };
}

test('with no Redis at its loopback redis.url, ckpt up runs its own with AOF in $CKPT_DATA_DIR/redis; its data survives a restart', async (t) => {
  const criu = await requireCriu(t);
  if (!criu) return;
  const defer = cleanups(t);
  const redisPort = await freePort();
  // Its CRIU named in the file: $CKPT_DATA_DIR is where the private CRIU would be looked for too.
  const { dir, config } = await setup(defer, [`redis: { url: "redis://127.0.0.1:${redisPort}" }`, `criu: { bin: ${criu.bin} }`]);
  const dataDir = path.join(dir, 'data');
  const port = await freePort();
  const start = () => up(defer, ['--config', config, '--port', String(port), '--storage-root', path.join(dir, 'checkpoints')], port, { CKPT_DATA_DIR: dataDir });

  const first = await start();
  const redis = new Redis(`redis://127.0.0.1:${redisPort}`);
  defer(() => redis.disconnect());
  assert.deepEqual(await redis.config('GET', 'appendonly'), ['appendonly', 'yes']);
  assert.deepEqual(await redis.config('GET', 'dir'), ['dir', path.join(dataDir, 'redis')]);
  assert.equal(statSync(path.join(dataDir, 'redis')).mode & 0o777, 0o700);
  await redis.quit();
  const created = await postJson(`${first.url}/api/v1/schedules`, { id: 'kept', cron: '0 0 1 1 *', target: { match: 'kept-across-restarts' } });
  assert.equal(created.status, 201, JSON.stringify(created.json));

  await stopChild(first.child);
  assert.equal(first.child.exitCode, 0, first.output());
  assert.equal(await reachable('127.0.0.1', redisPort), false, 'its Redis stopped with it');
  assert.ok(existsSync(path.join(dataDir, 'redis', 'appendonlydir')), 'the append-only files stay');

  const second = await start();
  const kept = await getJson(`${second.url}/api/v1/schedules/kept`);
  assert.equal(kept.status, 200, 'the schedule made before the restart is still there');
  assert.deepEqual(kept.json.target, { match: 'kept-across-restarts' });
});

test('--node and --no-scheduler, scheduler.enabled: false, and CKPT_* between the file and the flags', async (t) => {
  const criu = await requireCriu(t);
  if (!criu) return;
  const defer = cleanups(t);
  const redisServer = await TestRedis.start();
  defer(() => redisServer.stop());
  const redis = new Redis(redisServer.url);
  defer(() => redis.disconnect());
  const target = await startCounter();
  defer(() => target.kill());
  defer(() => killAllSchedulerProcesses());

  // A daily schedule whose latest tick passed a minute ago, while no scheduler ran (it last ticked before that): the
  // first scheduler to start runs that missed tick at once. Neither ckpt up below may be the one.
  const now = Date.now();
  const tickMs = Math.floor((now - 60_000) / 1000) * 1000;
  const tick = new Date(tickMs);
  const store = new ScheduleStore(redis, 'ckpt');
  await store.create(
    scheduleSchema.parse({ id: 'missed', cron: `${tick.getUTCSeconds()} ${tick.getUTCMinutes()} ${tick.getUTCHours()} * * *`, target: { pid: target.pid } }),
  );
  await store.recordTick('missed', now - 3 * 3_600_000);

  // A: node and port in the file, CKPT_NODE / CKPT_PORT / CKPT_REDIS_URL in the environment, --node as a flag.
  const [filePort, envPort] = [await freePort(), await freePort()];
  const a = await setup(defer, ['node: from-file', `api: { port: ${filePort} }`, 'redis: { url: "redis://127.0.0.1:1" }']);
  const upA = await up(
    defer,
    ['--config', a.config, '--node', 'from-flag', '--no-scheduler', '--storage-root', path.join(a.dir, 'checkpoints')],
    envPort,
    { CKPT_NODE: 'from-env', CKPT_PORT: String(envPort), CKPT_REDIS_URL: redisServer.url },
  );
  // B: the scheduler switched off in its file.
  const portB = await freePort();
  const b = await setup(defer, ['node: node-b', 'scheduler: { enabled: false }']);
  const upB = await up(defer, ['--config', b.config, '--port', String(portB), '--redis-url', redisServer.url, '--storage-root', path.join(b.dir, 'checkpoints')], portB);

  // Both ran for a while with the missed tick there to take. A scheduler started now is the first to take it.
  const scheduler = await startSchedulerProcess({ node: 'from-flag', redis: { url: redisServer.url } });
  const eventLog = new EventLog(redis, { key: 'ckpt:events' });
  const fired = await waitUntil('the missed tick to be fired', async () => (await allEvents(eventLog, 'schedule.fired', 'missed'))[0], { timeoutMs: 30_000, pollMs: 100 });
  assert.deepEqual([fired.data.tickAt, fired.data.source], [tickMs, 'missed']);
  assert.equal(await redis.hget(`ckpt:tick:missed:${tickMs}`, 'owner'), scheduler.instanceId, 'claimed by the scheduler started last: neither ckpt up ran one');
  assert.equal((await allEvents(eventLog, 'schedule.fired', 'missed')).length, 1);

  // B's API still serves schedules: lists them, and a trigger-now runs (on B's own node).
  const listed = await getJson(`${upB.url}/api/v1/schedules`);
  assert.deepEqual(listed.json.items.map((s: any) => s.id), ['missed']);
  const triggered = await postJson(`${upB.url}/api/v1/schedules/missed/trigger`);
  assert.equal(triggered.status, 202, JSON.stringify(triggered.json));

  // A's node is the flag's (over CKPT_NODE, over the file), and its worker serves it; it listens on CKPT_PORT (over
  // the file's port) and uses CKPT_REDIS_URL (over the file's): the job is in the Redis B and the scheduler use.
  const dump = await postJson(`${upA.url}/api/v1/dumps`, { target: { pid: target.pid } });
  assert.equal(dump.status, 202, JSON.stringify(dump.json));
  assert.equal(dump.json.node, 'from-flag');
  for (const [url, jobId] of [[upA.url, dump.json.jobId], [upB.url, triggered.json.jobId]] as const) {
    const job = await waitUntil(`job ${jobId} to finish`, async () => {
      const { json } = await getJson(`${url}/api/v1/jobs/${jobId}`);
      return (json.state === 'completed' || json.state === 'failed') && json;
    }, { timeoutMs: 60_000, pollMs: 100 });
    assert.equal(job.state, 'completed', job.failedReason);
  }
  assert.equal((await getJson(`${upB.url}/api/v1/jobs/${dump.json.jobId}`)).json.node, 'from-flag');
  assert.equal(await reachable('127.0.0.1', filePort), false, 'nothing on the file’s port');
});
