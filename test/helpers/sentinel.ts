import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { reachable } from '../../src/app/managed-redis.js';
import { freePort } from './redis.js';

export const SENTINEL_MASTER_NAME = 'ckpt-master';

interface Server {
  port: number;
  child: ChildProcess;
}

/**
 * A real Redis high-availability set on loopback: a master, a replica and three sentinels (quorum 2), each a
 * redis-server process on a free port. Sentinels call the master down after 1 s without an answer.
 */
export class TestSentinelSet {
  private constructor(
    private readonly dir: string,
    readonly master: Server,
    readonly replica: Server,
    readonly sentinels: Server[],
  ) {}

  static async start(): Promise<TestSentinelSet> {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'ckpt-sentinel-'));
    const server = async (name: string, args: string[]): Promise<Server> => {
      const port = await freePort();
      const child = spawn('redis-server', [...args, '--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no', '--logfile', path.join(dir, `${name}.log`)], {
        stdio: 'ignore',
      });
      for (let i = 0; !(await reachable('127.0.0.1', port)); i++) {
        if (i > 400 || child.exitCode !== null) throw new Error(`${name} did not start (see ${dir}/${name}.log)`);
        await sleep(25);
      }
      return { port, child };
    };
    const master = await server('master', []);
    const replica = await server('replica', ['--replicaof', '127.0.0.1', String(master.port)]);
    const sentinels: Server[] = [];
    for (let i = 0; i < 3; i++) {
      const conf = path.join(dir, `sentinel-${i}.conf`);
      // Sentinel rewrites its config file as it learns the set: each has its own.
      await writeFile(
        conf,
        [
          `sentinel monitor ${SENTINEL_MASTER_NAME} 127.0.0.1 ${master.port} 2`,
          `sentinel down-after-milliseconds ${SENTINEL_MASTER_NAME} 1000`,
          `sentinel failover-timeout ${SENTINEL_MASTER_NAME} 5000`,
          `sentinel parallel-syncs ${SENTINEL_MASTER_NAME} 1`,
          '',
        ].join('\n'),
      );
      sentinels.push(await server(`sentinel-${i}`, [conf, '--sentinel']));
    }
    const set = new TestSentinelSet(dir, master, replica, sentinels);
    await set.waitUntilReady();
    return set;
  }

  /** config.redis for this set. */
  get config() {
    return { sentinels: this.sentinels.map((s) => ({ host: '127.0.0.1', port: s.port })), name: SENTINEL_MASTER_NAME };
  }

  /** The port the sentinels currently name as the master. */
  async masterPort(): Promise<number> {
    const s = new Redis(this.sentinels[0]!.port, '127.0.0.1');
    try {
      const [, port] = (await s.call('SENTINEL', 'get-master-addr-by-name', SENTINEL_MASTER_NAME)) as [string, string];
      return Number(port);
    } finally {
      s.disconnect();
    }
  }

  /** SIGKILL of the master: no goodbye to anyone, as in a crash. */
  killMaster(): void {
    this.master.child.kill('SIGKILL');
  }

  async stop(): Promise<void> {
    for (const s of [...this.sentinels, this.replica, this.master]) {
      if (s.child.exitCode !== null || s.child.signalCode !== null) continue;
      const exited = new Promise((r) => s.child.once('exit', r));
      s.child.kill('SIGKILL');
      await exited;
    }
    await rm(this.dir, { recursive: true, force: true });
  }

  /** Every sentinel knows the replica and the two other sentinels, and the replica is in sync: a failover can happen. */
  private async waitUntilReady(): Promise<void> {
    const clients = this.sentinels.map((s) => new Redis(s.port, '127.0.0.1'));
    const replica = new Redis(this.replica.port, '127.0.0.1');
    try {
      for (let i = 0; ; i++) {
        const views = await Promise.all(
          clients.map(async (c) => {
            const flat = (await c.call('SENTINEL', 'master', SENTINEL_MASTER_NAME)) as string[];
            const info: Record<string, string> = {};
            for (let k = 0; k < flat.length; k += 2) info[flat[k]!] = flat[k + 1]!;
            return Number(info['num-slaves']) >= 1 && Number(info['num-other-sentinels']) >= 2;
          }),
        );
        const synced = /master_link_status:up/.test(await replica.info('replication'));
        if (views.every(Boolean) && synced) return;
        if (i > 600) throw new Error(`the sentinel set did not form within 30 s (logs in ${this.dir})`);
        await sleep(50);
      }
    } finally {
      for (const c of [...clients, replica]) c.disconnect();
    }
  }
}
