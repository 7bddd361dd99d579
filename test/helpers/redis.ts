import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { reachable } from '../../src/app/managed-redis.js';

export interface TestRedisOptions {
  /** More redis-server arguments (e.g. `--requirepass`, `--user`). */
  args?: string[];
  /** PEM files: the server listens with TLS only (its port is the TLS port) and asks clients for a certificate. */
  tls?: { cert: string; key: string; ca: string };
}

/** A private redis-server on a free port, so tests may flush, stop and restart it. */
export class TestRedis {
  private child?: ChildProcess;
  private constructor(
    readonly port: number,
    private readonly dir: string,
    private readonly options: TestRedisOptions,
  ) {}

  static async start(options: TestRedisOptions = {}): Promise<TestRedis> {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'ckpt-redis-'));
    const r = new TestRedis(await freePort(), dir, options);
    await r.resume();
    return r;
  }

  get url(): string {
    return `${this.options.tls ? 'rediss' : 'redis'}://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** (Re)starts the server on the same port. */
  async resume(): Promise<void> {
    const { tls, args = [] } = this.options;
    const listen = tls
      ? ['--port', '0', '--tls-port', String(this.port), '--tls-cert-file', tls.cert, '--tls-key-file', tls.key, '--tls-ca-cert-file', tls.ca, '--tls-auth-clients', 'yes']
      : ['--port', String(this.port)];
    this.child = spawn(
      'redis-server',
      [...listen, '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', this.dir, ...args],
      { stdio: 'ignore' },
    );
    for (let i = 0; i < 200; i++) {
      if (await reachable('127.0.0.1', this.port)) return;
      await sleep(25);
    }
    throw new Error(`redis-server on port ${this.port} did not start`);
  }

  /** Stops the server (SIGKILL: as abrupt as a crash). */
  async pause(): Promise<void> {
    const c = this.child;
    if (!c || c.exitCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGKILL');
    await exited;
  }

  /** SIGSTOP: the server keeps its connections open but answers nothing (a hung Redis). thaw() resumes it. */
  freeze(): void {
    this.child?.kill('SIGSTOP');
  }

  thaw(): void {
    this.child?.kill('SIGCONT');
  }

  async stop(): Promise<void> {
    this.thaw();
    await this.pause();
    await rm(this.dir, { recursive: true, force: true });
  }
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}
