import { spawn } from 'node:child_process';
import { closeSync, constants, existsSync, openSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { repoRoot } from '../../src/common/paths.js';

// The interpreter itself, not a version manager's shim (a shim would make the target a bash + python tree).
const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

export interface Counter {
  pid: number;
  dir: string;
  /** The count the process last wrote. */
  read(): number;
  alive(): boolean;
  /** Kills it and removes its folder. */
  kill(): Promise<void>;
}

/**
 * Starts a counter process the way CRIU wants a target: own session (setsid), stdin /dev/null, output to files.
 * `ballastMiB` adds touched memory so dumps have real size; `ignoreTerm`: only SIGKILL ends it.
 */
export function startCounter(ballastMiB = 0, options: { ignoreTerm?: boolean } = {}): Promise<Counter> {
  // Touching the ballast takes a while on a loaded machine: a minute, plus 60 ms per MiB (4 GiB: 5 minutes).
  return startPythonTarget('counter.py', [String(ballastMiB), ...(options.ignoreTerm ? ['ignore-term'] : [])], 60_000 + ballastMiB * 60);
}

/** A counter that holds `marker` in memory (not in its command line), to look for in images and buckets. */
export function startMarkerCounter(marker: string): Promise<Counter> {
  return startPythonTarget('marker-counter.py', [[...marker].reverse().join('')]);
}

/**
 * A counter with a child CRIU cannot freeze (test/fixtures/vfork-stuck.py): a dump of it keeps CRIU busy, the counter
 * frozen, until CRIU's own freeze timeout (10 s) gives up and lets the tree go. release() lets the child run on.
 */
export async function startUnfreezable(): Promise<Counter & { release(): void }> {
  const counter = await startPythonTarget('vfork-stuck.py', []);
  return {
    ...counter,
    release() {
      // Non-blocking: the grandchild is waiting in open() for reading, so this finds its reader at once.
      closeSync(openSync(path.join(counter.dir, 'hold.fifo'), constants.O_WRONLY | constants.O_NONBLOCK));
    },
  };
}

/**
 * Holds `pid` traced (PTRACE_SEIZE, test/fixtures/tracer.py), as a CRIU at work would, without stopping it: a dump
 * then waits for it to be untraced. release() ends the tracer (the kernel detaches) and waits until it is gone.
 */
export async function holdTraced(pid: number): Promise<{ release(): Promise<void> }> {
  const tracer = spawn(PYTHON, [path.join(repoRoot(), 'test/fixtures/tracer.py'), String(pid)], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  tracer.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
  tracer.stderr.setEncoding('utf8').on('data', (c: string) => (out += c));
  const exited = new Promise<void>((resolve) => tracer.once('close', () => resolve()));
  await Promise.race([
    new Promise<void>((resolve) => tracer.stdout.on('data', () => /^seized$/m.test(out) && resolve())),
    exited.then(() => Promise.reject(new Error(`tracer of pid ${pid} exited: ${out}`))),
  ]);
  return {
    async release() {
      tracer.stdin.end();
      await exited;
    },
  };
}

/** 'R', 'S', 'D', 't' (ptrace-stopped, as CRIU's frozen tasks are), 'T', 'Z'... */
export function processState(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.charAt(stat.lastIndexOf(')') + 2);
}

/** The pid tracing `pid` (0: none). */
export function tracerOf(pid: number): number {
  return Number(/^TracerPid:\s*(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
}

/** A parent and child talking over an established loopback TCP connection; read() is the last number the parent got. */
export function startTcpPair(): Promise<Counter> {
  return startPythonTarget('tcp-pair.py', []);
}

/** Runs test/fixtures/<script> <countFile> ...args as a session leader; kill() ends its whole session. */
async function startPythonTarget(script: string, args: string[], startTimeoutMs = 60_000): Promise<Counter> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ckpt-target-'));
  const countFile = path.join(dir, 'count');
  const out = openSync(path.join(dir, 'out.log'), 'a');
  const child = spawn(PYTHON, [path.join(repoRoot(), 'test/fixtures', script), countFile, ...args], {
    detached: true,
    stdio: ['ignore', out, out],
  });
  closeSync(out);
  child.unref();
  const pid = child.pid!;
  const counter: Counter = {
    pid,
    dir,
    read: () => Number(readFileSync(countFile, 'utf8')),
    alive: () => isAlive(pid),
    kill: async () => {
      try {
        process.kill(-pid, 'SIGKILL'); // the session's process group: children too (restored trees keep it)
      } catch {
        // already gone
      }
      await killAndReap(pid);
      await rm(dir, { recursive: true, force: true });
    },
  };
  // Wait until the ballast is touched and counting has begun (slow for a big ballast on a busy machine).
  const deadline = Date.now() + startTimeoutMs;
  while (!(existsSync(countFile) && counter.read() >= 2)) {
    if (Date.now() > deadline || !counter.alive()) {
      const output = readFileSync(path.join(dir, 'out.log'), 'utf8').slice(-2000);
      await counter.kill();
      throw new Error(`test target ${script} did not start counting; its output: ${output}`);
    }
    await sleep(10);
  }
  return counter;
}

/** True when the pid exists and is not a zombie. */
export function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** Waits until /proc/<pid> is gone (a dumped-and-killed task lingers as a zombie for a moment). */
export async function waitGone(pid: number, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (existsSync(`/proc/${pid}`)) {
    if (Date.now() > deadline) throw new Error(`pid ${pid} still exists after ${timeoutMs} ms`);
    await sleep(10);
  }
}

export async function killAndReap(pid: number): Promise<void> {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    return;
  }
  await waitGone(pid).catch(() => undefined);
}

/** An unrelated process (`sleep`, its own session) given exactly `pid`: ns_last_pid set under CRIU's own lock on it, then a fork. */
export async function startSleepOnPid(pid: number): Promise<{ pid: number; kill(): Promise<void> }> {
  const script = [
    'import fcntl, os, sys',
    "with open('/proc/sys/kernel/ns_last_pid', 'r+') as f:",
    '    fcntl.flock(f, fcntl.LOCK_EX)',
    '    f.write(str(int(sys.argv[1]) - 1)); f.flush()',
    '    child = os.fork()',
    '    if child == 0:',
    '        os.setsid()',
    "        null = os.open('/dev/null', os.O_RDWR)",
    '        for fd in (0, 1, 2): os.dup2(null, fd)',
    "        os.execvp('sleep', ['sleep', '1000'])",
    'print(child)',
  ].join('\n');
  // Another process may fork between the write and ours (the machine is shared): try again.
  for (let attempt = 0; attempt < 50; attempt++) {
    const got = await new Promise<number>((resolve, reject) => {
      const child = spawn(PYTHON, ['-c', script, String(pid)], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
      child.on('error', reject);
      child.on('close', () => resolve(Number(out.trim())));
    });
    if (got === pid) return { pid, kill: () => killAndReap(pid) };
    if (got > 0) await killAndReap(got);
  }
  throw new Error(`could not start a process on pid ${pid}`);
}
