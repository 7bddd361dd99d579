import { createHash } from 'node:crypto';
import { mkdirSync, realpathSync } from 'node:fs';
import net from 'node:net';

/** Who holds a runtime folder: told to a second instance so its error names the first. */
export interface RuntimeLockHolder {
  pid: number;
  node: string;
  /** The config file the holder was started with ('' for none). */
  configFile: string;
  /** Its API address as configured (host:port), '' without an API. */
  api: string;
}

export interface RuntimeLockOptions {
  /** The folder to lock (`criu.runtimeDir`); created 0700 when missing, nothing else in it is touched. */
  dir: string;
  /** What this process tells a second instance about itself. */
  holder: Omit<RuntimeLockHolder, 'pid'>;
  /** How long to wait for the holder to say who it is. Default 2000 ms. */
  askTimeoutMs?: number;
}

/** A second instance found the runtime folder locked. */
export class RuntimeDirBusyError extends Error {
  readonly code = 'ERUNTIMEBUSY';
  constructor(
    readonly dir: string,
    readonly holder: RuntimeLockHolder | undefined,
  ) {
    const who = holder
      ? `ckpt pid ${holder.pid} (node ${holder.node}, config ${holder.configFile || 'none'}, API ${holder.api || 'none'})`
      : 'a process that does not say who it is';
    super(`criu.runtimeDir ${dir} is in use by ${who}: give each instance its own criu.runtimeDir`);
    this.name = 'RuntimeDirBusyError';
  }
}

/**
 * An exclusive lock on a runtime folder, so two ckpt processes never run, kill or remove each other's CRIU service:
 * an abstract Unix socket named after the folder's real path. The kernel lets one process bind a name and frees it
 * when that process ends, however it ends, so a lock is never stale and never needs breaking. The holder answers
 * whoever connects with who it is. (Abstract names are per network namespace: instances in different ones sharing a
 * folder are not seen.)
 */
export class RuntimeDirLock {
  private server?: net.Server;

  constructor(private readonly options: RuntimeLockOptions) {}

  /** Takes the lock, or throws RuntimeDirBusyError naming the holder. */
  async acquire(): Promise<void> {
    mkdirSync(this.options.dir, { recursive: true, mode: 0o700 });
    const name = lockName(realpathSync(this.options.dir));
    const info = JSON.stringify({ pid: process.pid, ...this.options.holder } satisfies RuntimeLockHolder) + '\n';
    const server = net.createServer((socket) => socket.on('error', () => undefined).end(info));
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(name, () => resolve());
      });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
      throw new RuntimeDirBusyError(this.options.dir, await askHolder(name, this.options.askTimeoutMs ?? 2000));
    }
    server.unref();
    this.server = server;
  }

  async release(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise((resolve) => server.close(resolve));
  }
}

function lockName(realDir: string): string {
  // Hashed: a path can be longer than a socket name may be (108 bytes).
  return `\0ckpt-runtime-dir:${createHash('sha256').update(realDir).digest('hex').slice(0, 40)}`;
}

async function askHolder(name: string, timeoutMs: number): Promise<RuntimeLockHolder | undefined> {
  return new Promise((resolve) => {
    let text = '';
    const socket = net.connect(name);
    const done = () => {
      clearTimeout(timer);
      socket.destroy();
      try {
        const h = JSON.parse(text.split('\n')[0]!) as RuntimeLockHolder;
        resolve(Number.isInteger(h.pid) ? h : undefined);
      } catch {
        resolve(undefined);
      }
    };
    const timer = setTimeout(done, timeoutMs);
    socket.setEncoding('utf8').on('data', (chunk: string) => (text += chunk.slice(0, 4096)));
    socket.on('end', done).on('error', done);
  });
}
