import { readFileSync, readlinkSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

// The one reader of /proc: every part of ckpt that looks at a process (targets, workers, the CRIU service, the store)
// reads it through these functions.

/** The fields of /proc/<pid>/stat that ckpt uses. */
export interface ProcStat {
  comm: string;
  state: string;
  ppid: number;
  /** Process group and session ids. */
  pgrp: number;
  session: number;
  flags: number;
  startTime: number;
}

/** Parses /proc/<pid>/stat; null when the process does not exist. comm may hold spaces and ')', so split at the last ')'. */
export async function readProcStat(pid: number): Promise<ProcStat | null> {
  const text = readProcTextNow(`/proc/${pid}/stat`);
  if (text === null) return null;
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  // Fields from 3 (state) on; field n is rest[n - 3].
  const rest = text.slice(close + 2).split(' ');
  return {
    comm: text.slice(open + 1, close),
    state: rest[0] ?? '',
    ppid: Number(rest[1]),
    pgrp: Number(rest[2]),
    session: Number(rest[3]),
    flags: Number(rest[6]),
    startTime: Number(rest[19]),
  };
}

/** The fields of /proc/<pid>/status that ckpt uses. */
export interface ProcStatus {
  name: string;
  state: string;
  /** Real uid. */
  uid: number;
  /** Pid of the process tracing this one (a CRIU dumping it), 0 when none. */
  tracerPid: number;
  /** Resident memory (VmRSS, else 0). */
  rssBytes: number;
  /** Thread group id: the process a thread id belongs to. */
  tgid: number;
  /** The pid in each pid namespace it is in, the host's first, its own namespace's last (NSpid). */
  nsPids: number[];
  /** SIGKILL is pending for it or its thread group (SigPnd / ShdPnd): it is about to go. */
  killPending: boolean;
}

const SIGKILL_BIT = 1n << 8n;

/** Parses /proc/<pid>/status; null when the process does not exist. */
export async function readProcStatus(pid: number): Promise<ProcStatus | null> {
  const text = readProcTextNow(`/proc/${pid}/status`);
  if (text === null) return null;
  return {
    name: /^Name:\s+(.*)$/m.exec(text)?.[1] ?? '',
    state: /^State:\s+(\S)/m.exec(text)?.[1] ?? '?',
    uid: Number(/^Uid:\s+(\d+)/m.exec(text)?.[1] ?? NaN),
    tracerPid: Number(/^TracerPid:\s+(\d+)/m.exec(text)?.[1] ?? 0),
    rssBytes: (kib(text, 'VmRSS') ?? 0) * 1024,
    tgid: Number(/^Tgid:\s+(\d+)/m.exec(text)?.[1] ?? pid),
    nsPids: (/^NSpid:\s+(.*)$/m.exec(text)?.[1] ?? '').trim().split(/\s+/).filter(Boolean).map(Number),
    killPending: ['SigPnd', 'ShdPnd'].some((field) => (signalMask(text, field) & SIGKILL_BIT) !== 0n),
  };
}

/** Memory of a process, from /proc/<pid>/smaps_rollup, in bytes. */
export interface MemoryRollup {
  anonymousBytes: number;
  swapBytes: number;
  /** Proportional share of shared memory (Pss_Shmem). */
  shmemPssBytes: number;
}

/** Parses /proc/<pid>/smaps_rollup; null when the process is gone or the file is closed to us. */
export async function readMemoryRollup(pid: number): Promise<MemoryRollup | null> {
  const text = await readProcText(`/proc/${pid}/smaps_rollup`);
  if (text === null) return null;
  const bytes = (field: string) => (kib(text, field) ?? 0) * 1024;
  return { anonymousBytes: bytes('Anonymous'), swapBytes: bytes('Swap'), shmemPssBytes: bytes('Pss_Shmem') };
}

/** The thread ids of `pid` (/proc/<pid>/task); none when it is gone. */
export async function listThreadIds(pid: number): Promise<number[]> {
  const names = await readdir(`/proc/${pid}/task`).catch(() => [] as string[]);
  return names.map(Number);
}

/** The children of every thread of `pid` (/proc/<pid>/task/<tid>/children); none when it is gone. */
export async function childrenOf(pid: number): Promise<number[]> {
  const out: number[] = [];
  for (const tid of await listThreadIds(pid)) {
    const text = readProcTextNow(`/proc/${pid}/task/${tid}/children`) ?? '';
    out.push(...text.split(/\s+/).filter(Boolean).map(Number));
  }
  return out;
}

/** The pid namespace of `pid` (the ns/pid link, e.g. `pid:[4026531836]`); null when it cannot be read. */
export async function readPidNamespace(pid: number): Promise<string | null> {
  return readLinkNow(`/proc/${pid}/ns/pid`);
}

/** Resolved /proc/<pid>/exe, '' when unreadable. */
export async function readExe(pid: number): Promise<string> {
  return readLinkNow(`/proc/${pid}/exe`) ?? '';
}

/** The working folder of `pid`; '/' when it cannot be read (gone, or a kernel thread). */
export async function readCwd(pid: number): Promise<string> {
  return readLinkNow(`/proc/${pid}/cwd`) ?? '/';
}

/** The arguments of `pid`; none for kernel threads, zombies and gone processes. */
export async function readCmdlineArgs(pid: number): Promise<string[]> {
  return splitCmdline((await readProcText(`/proc/${pid}/cmdline`)) ?? '');
}

/** The command line (arguments joined by spaces) of `pid`; '' for kernel threads, zombies and gone processes. */
export async function readCmdline(pid: number): Promise<string> {
  return (await readCmdlineArgs(pid)).join(' ');
}

/**
 * True while `info`'s process still runs: same pid, same start time, not a zombie. Check it right before acting on
 * a process read a while ago, so a reused pid is never mistaken for the original process.
 */
export async function isSameProcess(info: { pid: number; startTime: number }): Promise<boolean> {
  const stat = await readProcStat(info.pid);
  return !!stat && stat.state !== 'Z' && stat.state !== 'X' && stat.startTime === info.startTime;
}

/** When this machine booted, in ms since the epoch (/proc/stat's btime: whole seconds). */
export function bootTimeMs(): number {
  const btime = /^btime (\d+)$/m.exec(readProcTextNow('/proc/stat') ?? '')?.[1];
  if (btime === undefined) throw new Error('/proc/stat has no btime line');
  return Number(btime) * 1000;
}

/** The parent chain of `pid` (its parent, grandparent, ... up to and including pid 1), nearest first. */
export async function ancestorsOf(pid: number): Promise<number[]> {
  return (await ancestryOf(pid)).map((a) => a.pid);
}

/** ancestorsOf with each ancestor's start time (which tells it from a later process given the same pid). */
export async function ancestryOf(pid: number): Promise<Array<{ pid: number; startTime: number }>> {
  const chain: Array<{ pid: number; startTime: number }> = [];
  let current = pid;
  // Bounded: a pid chain cannot be deeper than the number of processes, and pid 1 / 0 ends it.
  for (let i = 0; i < 4096 && current > 0; i++) {
    const stat = await readProcStat(current);
    if (!stat) break;
    if (current !== pid) chain.push({ pid: current, startTime: stat.startTime });
    if (current === 1) break;
    current = stat.ppid;
  }
  return chain;
}

/** Every pid in /proc (thread-group leaders only). */
export async function listPids(): Promise<number[]> {
  const names = await readdir('/proc');
  return names.filter((n) => /^[1-9]\d*$/.test(n)).map(Number);
}

function splitCmdline(raw: string): string[] {
  const args = raw.split('\0');
  if (args.at(-1) === '') args.pop();
  return args;
}

function signalMask(text: string, field: string): bigint {
  return BigInt(`0x${new RegExp(`^${field}:\\s+([0-9a-f]+)`, 'm').exec(text)?.[1] ?? '0'}`);
}

function kib(text: string | null, field: string): number | undefined {
  const m = text && new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
}

/**
 * A /proc file's text, or null when the process is gone (ENOENT / ESRCH) or the file is closed to us
 * (EACCES / EPERM: even root may not read smaps_rollup of pid 1 in a container). Other errors propagate.
 * Through the thread pool: for the files the kernel renders under the process' memory lock (cmdline, smaps_rollup),
 * which a process stuck in a page fault (a dead NFS mount) can hold for as long as it is stuck.
 */
async function readProcText(file: string): Promise<string | null> {
  try {
    return await readFile(file, 'utf8');
  } catch (e) {
    return unreadable(e);
  }
}

/**
 * readProcText for the files the kernel renders without the process' memory lock (stat, status, children) and the
 * links (exe, cwd, ns): they never wait on the process, so they are read at once, ~20 µs against ~230 µs and four
 * thread-pool trips for an asynchronous read of the same file.
 */
function readProcTextNow(file: string): string | null {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    return unreadable(e);
  }
}

function readLinkNow(link: string): string | null {
  try {
    return readlinkSync(link);
  } catch {
    return null;
  }
}

function unreadable(e: unknown): null {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOENT' || code === 'ESRCH' || code === 'EACCES' || code === 'EPERM') return null;
  throw e;
}

/**
 * Waits until no tracer (a CRIU still dumping it, e.g. for a worker that died) holds `pid`.
 * Returns the tracer's pid if one still does after `timeoutMs`, else 0 (also when the process is gone).
 */
export async function waitUntraced(pid: number, timeoutMs: number, signal?: AbortSignal): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const st = await readProcStatus(pid);
    if (!st || st.tracerPid === 0) return 0;
    if (Date.now() >= deadline) return st.tracerPid;
    await sleep(50, undefined, { signal });
  }
}
