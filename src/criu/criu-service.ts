import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { chmod, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { readCmdlineArgs, readProcStat } from '../common/proc.js';

export interface CriuServiceOptions {
  /** The criu binary (see locateCriu). */
  bin: string;
  /** Folder for the socket and the service log; created 0700 because whoever reaches the socket can dump or kill any process. */
  runtimeDir: string;
  /** Extra environment for CRIU (e.g. CRIU_FAULT). Default: none. */
  env?: Record<string, string>;
  /** Delay before restarting a service that died. Default 500 ms. */
  restartDelayMs?: number;
  /** How long start() waits for the socket to appear. Default 10 s. */
  startTimeoutMs?: number;
  /** How often the socket is looked at; a socket gone (removed by hand, by a cleaner) restarts the service. Default 1000 ms. */
  socketCheckMs?: number;
}

export interface CriuServiceEvents {
  started: [pid: number];
  /** `stopped`: by stop() (or replaced), not of its own accord. */
  exit: [code: number | null, signal: NodeJS.Signals | null, stopped: boolean];
  restarting: [];
  /** The service's socket vanished while it ran: the service is restarted to make a new one. */
  'socket-lost': [];
}

/**
 * Runs and supervises `criu service --address <runtimeDir>/criu.sock`: restarts it when it dies, stops it on stop().
 * CRIU forks one worker per connection, so a single service serves every concurrent job.
 */
export class CriuService extends EventEmitter<CriuServiceEvents> {
  readonly socketPath: string;
  readonly logPath: string;
  private readonly pidPath: string;
  /** The pid of the ckpt process that started the service. */
  private readonly ownerPath: string;
  private child?: ChildProcess;
  private stopping = false;
  private readonly restartDelayMs: number;
  private readonly startTimeoutMs: number;
  /** Inode of the socket our service made: only that socket is ours to remove. */
  private socketIno?: number;
  private socketWatch?: NodeJS.Timeout;

  constructor(private readonly options: CriuServiceOptions) {
    super();
    this.socketPath = path.join(options.runtimeDir, 'criu.sock');
    this.logPath = path.join(options.runtimeDir, 'criu-service.log');
    this.pidPath = path.join(options.runtimeDir, 'criu-service.pid');
    this.ownerPath = path.join(options.runtimeDir, 'criu-service.owner');
    this.restartDelayMs = options.restartDelayMs ?? 500;
    this.startTimeoutMs = options.startTimeoutMs ?? 10_000;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return !!this.child && this.child.exitCode === null && this.child.signalCode === null;
  }

  async start(): Promise<void> {
    this.stopping = false;
    await mkdir(this.options.runtimeDir, { recursive: true, mode: 0o700 });
    await chmod(this.options.runtimeDir, 0o700);
    await this.killOrphan();
    await this.spawnOnce();
    this.socketWatch = setInterval(() => void this.checkSocket(), this.options.socketCheckMs ?? 1000);
    this.socketWatch.unref();
  }

  private async checkSocket(): Promise<void> {
    const child = this.child;
    if (this.stopping || !child || !this.running || this.socketIno === undefined) return;
    const ino = await socketInode(this.socketPath);
    if (ino === this.socketIno || this.child !== child || this.stopping) return;
    // Nobody can reach a service without its socket: start a new one (the exit handler does), which makes it again.
    this.socketIno = undefined;
    this.emit('socket-lost');
    child.kill('SIGKILL');
  }

  private async spawnOnce(): Promise<void> {
    await rm(this.socketPath, { force: true });
    // umask 077: CRIU creates image files 0644 otherwise, and images hold process memory.
    const child = spawn('/bin/sh', ['-c', 'umask 077 && exec "$0" "$@"', this.options.bin, 'service', '--address', this.socketPath, '-v2', '-o', this.logPath], {
      env: { ...process.env, ...this.options.env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    this.child = child;
    // And who started it: a later ckpt kills this service as an orphan only once we are gone.
    await writeFile(this.ownerPath, `${process.pid}\n`, { mode: 0o600 });
    await writeFile(this.pidPath, `${child.pid}\n`, { mode: 0o600 });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.once('exit', (code, signal) => {
      const stopped = this.stopping || this.child !== child;
      this.emit('exit', code, signal, stopped);
      if (stopped) return;
      this.emit('restarting');
      setTimeout(() => {
        if (!this.stopping) this.spawnOnce().catch(() => undefined);
      }, this.restartDelayMs);
    });
    const deadline = Date.now() + this.startTimeoutMs;
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`criu service exited at start (${child.exitCode ?? child.signalCode}): ${stderr.trim()}`);
      }
      const ino = await socketInode(this.socketPath);
      if (ino !== undefined) {
        this.socketIno = ino;
        break;
      }
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        await exited;
        throw new Error(`criu service did not create ${this.socketPath} within ${this.startTimeoutMs} ms`);
      }
      await sleep(20);
    }
    this.emit('started', child.pid!);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.socketWatch);
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      const killTimer = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(killTimer);
    }
    // Only the socket our service made (another one there is not ours to take away).
    if (this.socketIno !== undefined && (await socketInode(this.socketPath)) === this.socketIno) await rm(this.socketPath, { force: true });
    if ((await readPidFile(this.ownerPath)) === process.pid) {
      await rm(this.pidPath, { force: true });
      await rm(this.ownerPath, { force: true });
    }
  }

  /**
   * A service left behind by a ckpt process that died without stopping it (it would run on, unreachable). Only when
   * the ckpt that started it is gone: a live owner's service is never touched.
   */
  private async killOrphan(): Promise<void> {
    const [pid, owner] = [await readPidFile(this.pidPath), await readPidFile(this.ownerPath)];
    if (pid === undefined || pid <= 1) return;
    if (owner !== undefined && owner !== process.pid && (await isRunning(owner))) {
      throw new Error(`criu service ${pid} in ${this.options.runtimeDir} belongs to ckpt pid ${owner}, which still runs`);
    }
    const cmdline = await readCmdlineArgs(pid);
    if (cmdline.includes('service') && cmdline.includes(this.socketPath)) {
      process.kill(pid, 'SIGKILL');
      for (let i = 0; i < 100 && (await isRunning(pid)); i++) await sleep(10);
    }
  }
}

async function isRunning(pid: number): Promise<boolean> {
  const stat = await readProcStat(pid);
  return stat !== null && stat.state !== 'Z';
}

/** The inode of the socket at `p`, or undefined when there is none. */
async function socketInode(p: string): Promise<number | undefined> {
  try {
    const s = await stat(p);
    return s.isSocket() ? s.ino : undefined;
  } catch {
    return undefined;
  }
}

/** The pid a file holds, or undefined when there is none (no file, not a pid). */
async function readPidFile(p: string): Promise<number | undefined> {
  const pid = Number((await readFile(p, 'utf8').catch(() => '')).trim());
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}
