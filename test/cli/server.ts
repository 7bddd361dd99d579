import type { ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { readCmdlineArgs } from '../../src/common/proc.js';
import { freePort, TestRedis } from '../helpers/redis.js';
import { spawnCli } from './run.js';

/** A real `ckpt up` (API, feed, dashboard, scheduler, workers, its own CRIU service) on a private Redis and folders. */
export interface RunningCkpt {
  url: string;
  port: number;
  storageRoot: string;
  /** Its private Redis (for more ckpt processes on the same setup, and tests that add jobs behind the API's back). */
  redisUrl: string;
  /** The `ckpt up` process's pid, its config file and its CRIU service's folder (criu.runtimeDir). */
  pid: number;
  configFile: string;
  runtimeDir: string;
  /** What `ckpt up` printed so far (for failure messages). */
  output(): string;
  stop(): Promise<void>;
}

/** Tokens for a server that requires them (any configured token makes them required, also on loopback). */
export interface TestTokens {
  operate: string;
  read: string;
}

export async function startCkptUp(options: { tokens?: TestTokens } = {}): Promise<RunningCkpt> {
  const redis = await TestRedis.start();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ckpt-up-'));
  const storageRoot = path.join(dir, 'checkpoints');
  const config = path.join(dir, 'config.yaml');
  // Own runtime folder for the CRIU service, so several instances never share a socket; quick retries.
  await writeFile(
    config,
    [
      'criu:',
      `  runtimeDir: ${path.join(dir, 'run')}`,
      'workloads:',
      `  root: ${path.join(dir, 'workloads')}`,
      'worker:',
      '  concurrency: 2',
      '  attempts: 3',
      '  backoff: { baseDelayMs: 200, maxDelayMs: 1000 }',
      // A restore with replace gives the original this long after SIGTERM: tests hold such a restore back with a
      // process that ignores SIGTERM.
      '  replaceGraceMs: 30000',
      'storage:',
      '  minFreeBytes: 0',
      ...(options.tokens
        ? [
            'api:',
            '  tokens:',
            `    - { name: operator, token: ${options.tokens.operate}, role: operate }`,
            `    - { name: reader, token: ${options.tokens.read}, role: read }`,
          ]
        : []),
      '',
    ].join('\n'),
  );
  const port = await freePort();
  const child = spawnCli(['up', '--config', config, '--port', String(port), '--redis-url', redis.url, '--storage-root', storageRoot]);
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (c: string) => (out += c));
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (out += c));
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    const killed = await stopChild(child);
    // A ckpt up SIGKILLed after its grace leaves its CRIU service behind (the next start in that folder would end it;
    // this folder goes): end it here. One left by a clean stop is a bug.
    const leftover = await criuServiceOf(path.join(dir, 'run'));
    if (leftover) process.kill(leftover, 'SIGKILL');
    await redis.stop();
    await rm(dir, { recursive: true, force: true });
    if (leftover && !killed) throw new Error(`ckpt up stopped cleanly but left its CRIU service (pid ${leftover}) running`);
  };
  try {
    await waitHealthy(url, child, () => out);
  } catch (err) {
    await stop();
    throw err;
  }
  return { url, port, storageRoot, redisUrl: redis.url, pid: child.pid!, configFile: config, runtimeDir: path.join(dir, 'run'), output: () => out, stop };
}

export async function waitHealthy(url: string, child: ChildProcess, output: () => string): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`ckpt up exited with ${child.exitCode}:\n${output()}`);
    try {
      const res = await fetch(`${url}/healthz`);
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`ckpt up not healthy within 30 s:\n${output()}`);
    await sleep(100);
  }
}

/** SIGTERM (a clean shutdown: workers hand back jobs, the CRIU service stops), SIGKILL if it hangs: true then. */
export async function stopChild(child: ChildProcess, graceMs = 15_000): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return false;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  let killed = false;
  const timer = setTimeout(() => (killed = child.kill('SIGKILL')), graceMs);
  await exited;
  clearTimeout(timer);
  return killed;
}

/** The pid of the CRIU service a ckpt up started in `runtimeDir`, when it still runs. */
async function criuServiceOf(runtimeDir: string): Promise<number | undefined> {
  const pid = Number((await readFile(path.join(runtimeDir, 'criu-service.pid'), 'utf8').catch(() => '')).trim());
  if (!(pid > 1)) return undefined;
  const args = await readCmdlineArgs(pid);
  return args.includes('service') && args.includes(path.join(runtimeDir, 'criu.sock')) ? pid : undefined;
}
