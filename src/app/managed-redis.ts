import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export interface ManagedRedisOptions {
  /** Where the append-only file lives (made 0700: checkpoints' metadata and job data are in it). */
  dir: string;
  host: string;
  port: number;
}

/**
 * A redis-server that `ckpt up` starts when none answers at the configured loopback address, with AOF on so
 * queued jobs and the catalog survive a restart. It is stopped with ckpt.
 */
export class ManagedRedis {
  private child?: ChildProcess;
  constructor(private readonly options: ManagedRedisOptions) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  async start(): Promise<void> {
    await mkdir(this.options.dir, { recursive: true, mode: 0o700 });
    const { host, port, dir } = this.options;
    this.child = spawn(
      'redis-server',
      ['--bind', host, '--port', String(port), '--dir', dir, '--appendonly', 'yes', '--save', '', '--protected-mode', 'yes'],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    this.child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d).slice(-2000)));
    for (let i = 0; i < 400; i++) {
      if (this.child.exitCode !== null) throw new Error(`redis-server exited at start: ${stderr.trim()}`);
      if (await reachable(host, port)) return;
      await sleep(25);
    }
    throw new Error(`redis-server did not listen on ${host}:${port} within 10 s`);
  }

  async stop(): Promise<void> {
    const c = this.child;
    if (!c || c.exitCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGTERM');
    await exited;
  }
}

/** True when something accepts TCP connections at host:port within 500 ms. */
export function reachable(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port, timeout: 500 });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
    s.once('timeout', () => done(false));
  });
}
