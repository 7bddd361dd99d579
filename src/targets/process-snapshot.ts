import { readCmdline, readExe, readProcStat, readProcStatus } from '../common/proc.js';
import { targetKey } from './key.js';

/** What ckpt knows about a live process, read from /proc. */
export interface ProcessSnapshot {
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
  targetKey: string;
  /** Set when the process was resolved as a workload (`{workload}` target): its name and output folder. */
  workload?: WorkloadRef;
}

/** A workload (src/workloads) as a checkpoint remembers it: its name, and the folder its output files are in. */
export interface WorkloadRef {
  name: string;
  dir: string;
}

const PF_KTHREAD = 0x00200000;
const KTHREADD_PID = 2;

/** Reads a live (non-zombie) process; null when it does not exist or is a zombie. */
export async function readProcessSnapshot(pid: number): Promise<ProcessSnapshot | null> {
  // All at once (each read is a thread-pool trip); not smaps_rollup: the kernel walks every mapping for that.
  const [stat, status, cmdline, exe] = await Promise.all([readProcStat(pid), readProcStatus(pid), readCmdline(pid), readExe(pid)]);
  if (!stat || stat.state === 'Z' || stat.state === 'X' || status === null) return null;
  const info = {
    pid,
    ppid: stat.ppid,
    uid: status.uid,
    comm: stat.comm,
    cmdline,
    exe,
    startTime: stat.startTime,
    rssBytes: status.rssBytes,
    kernelThread: (stat.flags & PF_KTHREAD) !== 0 || stat.ppid === KTHREADD_PID || pid === KTHREADD_PID,
  };
  return { ...info, targetKey: targetKey(info) };
}

