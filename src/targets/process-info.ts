import { readdir, readFile, readlink } from 'node:fs/promises';
import { targetKey } from './key.js';

/** What ckpt knows about a live process, read from /proc. */
export interface ProcessInfo {
  pid: number;
  ppid: number;
  /** Real uid. */
  uid: number;
  /** Kernel's short name (/proc/pid/comm, at most 15 characters). */
  comm: string;
  /** Arguments joined by single spaces; '' for kernel threads and zombies. */
  cmdline: string;
  /** Resolved /proc/pid/exe, '' when unreadable. */
  exe: string;
  /** Start time in clock ticks after boot (/proc/pid/stat field 22): tells a reused pid from the original process. */
  startTime: number;
  /** Resident memory (status VmRSS, else 0). */
  rssBytes: number;
  /** True for kernel threads (PF_KTHREAD in the stat flags, or a child of kthreadd). */
  kernelThread: boolean;
  /** Filesystem-safe folder name for this process's checkpoints (see targetKey, workloadTargetKey). */
  key: string;
  /** Set when the process was resolved as a workload (`{workload}` target): its name and output folder. */
  workload?: WorkloadRef;
}

/** A workload (src/workloads) as a checkpoint remembers it: its name, and the folder its output files are in. */
export interface WorkloadRef {
  name: string;
  dir: string;
}

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

const PF_KTHREAD = 0x00200000;
const KTHREADD_PID = 2;

/** Parses /proc/<pid>/stat; null when the process does not exist. comm may hold spaces and ')', so split at the last ')'. */
export async function readProcStat(pid: number): Promise<ProcStat | null> {
  const text = await readProcText(`/proc/${pid}/stat`);
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

/** Reads a live (non-zombie) process; null when it does not exist or is a zombie. */
export async function readProcessInfo(pid: number): Promise<ProcessInfo | null> {
  // All at once (each read is a thread-pool trip); not smaps_rollup: the kernel walks every mapping for that.
  const [stat, status, cmdline, exe] = await Promise.all([
    readProcStat(pid),
    readProcText(`/proc/${pid}/status`),
    readCmdline(pid),
    readlink(`/proc/${pid}/exe`).catch(() => ''),
  ]);
  if (!stat || stat.state === 'Z' || stat.state === 'X' || status === null) return null;
  const uid = Number(/^Uid:\s+(\d+)/m.exec(status)?.[1] ?? NaN);
  const rssKiB = kib(status, 'VmRSS') ?? 0;
  const info = {
    pid,
    ppid: stat.ppid,
    uid,
    comm: stat.comm,
    cmdline,
    exe,
    startTime: stat.startTime,
    rssBytes: rssKiB * 1024,
    kernelThread: (stat.flags & PF_KTHREAD) !== 0 || stat.ppid === KTHREADD_PID || pid === KTHREADD_PID,
  };
  return { ...info, key: targetKey(info) };
}

/** The command line (arguments joined by spaces) of `pid`; '' for kernel threads, zombies and gone processes. */
export async function readCmdline(pid: number): Promise<string> {
  return splitCmdline((await readProcText(`/proc/${pid}/cmdline`)) ?? '').join(' ');
}

/**
 * True while `info`'s process still runs: same pid, same start time, not a zombie. Check it right before acting on
 * a ProcessInfo read a while ago, so a reused pid is never mistaken for the original process.
 */
export async function isSameProcess(info: Pick<ProcessInfo, 'pid' | 'startTime'>): Promise<boolean> {
  const stat = await readProcStat(info.pid);
  return !!stat && stat.state !== 'Z' && stat.state !== 'X' && stat.startTime === info.startTime;
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

function kib(text: string | null, field: string): number | undefined {
  const m = text && new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
}

/**
 * A /proc file's text, or null when the process is gone (ENOENT / ESRCH) or the file is closed to us
 * (EACCES / EPERM: even root may not read smaps_rollup of pid 1 in a container). Other errors propagate.
 */
async function readProcText(file: string): Promise<string | null> {
  try {
    return await readFile(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ESRCH' || code === 'EACCES' || code === 'EPERM') return null;
    throw e;
  }
}
