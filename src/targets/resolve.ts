import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { TargetError, type TargetMatch } from './errors.js';
import { matchingPids } from './match.js';
import { ancestorsOf, listPids, readCmdline } from '../common/proc.js';
import { readProcessInfo, type ProcessInfo } from './process-info.js';
import type { TargetSpec } from './spec.js';
import { workloadTargetKey } from './key.js';

/** A pid file holds a pid and a newline; anything longer is not a pid file. */
const PID_FILE_MAX_BYTES = 64;
/** At most this many matches are spelled out in an ETARGET_AMBIGUOUS message (all are in `matches`). */
const MESSAGE_MATCHES = 10;

export interface ResolveOptions {
  /**
   * Pids `{match}` never resolves to. The current process and its ancestors are always excluded
   * (a `--match node` must not find the worker itself or the shell that started it).
   */
  exclude?: number[];
  /** Where `{workload}` names are looked up (src/workloads' registry); without it a workload target is ETARGET_GONE. */
  workloads?: WorkloadLookup;
}

/** A workload's current process, as the workload registry knows it. */
export interface WorkloadLookup {
  /** The host pid and start time of the workload's running process, or why there is none (a predicate: `workload NAME <reason>`). */
  processOf(name: string): Promise<{ pid: number; startTime: number; dir: string } | { reason: string }>;
}

/**
 * Resolves a (validated, see targetSpecSchema) spec to one live process.
 * Throws TargetError: ETARGET_GONE (no such pid / zombie), ETARGET_PIDFILE (unreadable or not a pid),
 * ETARGET_NONE / ETARGET_AMBIGUOUS (`{match}` found zero / several processes; the latter lists them),
 * ETARGET_MATCH_TIMEOUT (`{match}` ran past MATCH_TIMEOUT_MS: it backtracks too much).
 * Policy is separate: call TargetPolicy.check on the result.
 */
export async function resolveTarget(spec: TargetSpec, options: ResolveOptions = {}): Promise<ProcessInfo> {
  if ('pid' in spec) return byPid(spec.pid, `pid ${spec.pid}`);
  if ('workload' in spec) return byWorkload(spec.workload, options.workloads);
  if ('pidFile' in spec) {
    const pid = await readPidFile(spec.pidFile);
    return byPid(pid, `pid ${pid} (from ${spec.pidFile})`);
  }
  return byMatch(spec.match, options.exclude ?? []);
}

async function byPid(pid: number, what: string): Promise<ProcessInfo> {
  const info = await readProcessInfo(pid);
  if (!info) throw new TargetError('ETARGET_GONE', `${what}: no such process`);
  return info;
}

async function byWorkload(name: string, workloads: WorkloadLookup | undefined): Promise<ProcessInfo> {
  const found = workloads ? await workloads.processOf(name) : { reason: 'is not known here (no workload registry)' };
  if ('reason' in found) throw new TargetError('ETARGET_GONE', `workload ${name} ${found.reason}`);
  const info = await readProcessInfo(found.pid);
  // The registry's pid is only this workload while the start time matches: a reused pid is another process.
  if (!info || info.startTime !== found.startTime) throw new TargetError('ETARGET_GONE', `workload ${name}: not running`);
  return { ...info, key: workloadTargetKey(name), workload: { name, dir: found.dir } };
}

async function byMatch(source: string, exclude: number[]): Promise<ProcessInfo> {
  const excluded = new Set([process.pid, ...(await ancestorsOf(process.pid)), ...exclude]);
  // Only the command line of every process; the full read for matches. A process may vanish in between.
  const candidates: Array<[number, string]> = [];
  for (const pid of await listPids()) {
    if (excluded.has(pid)) continue;
    const cmdline = await readCmdline(pid);
    if (cmdline !== '') candidates.push([pid, cmdline]);
  }
  const found: ProcessInfo[] = [];
  for (const pid of await matchingPids(source, candidates)) {
    const info = await readProcessInfo(pid);
    if (info) found.push(info);
  }
  const [only, ...others] = found;
  if (!only) throw new TargetError('ETARGET_NONE', `no process's command line matches /${source}/`);
  if (others.length) {
    const matches: TargetMatch[] = found.map(({ pid, cmdline }) => ({ pid, cmdline }));
    const listed = matches
      .slice(0, MESSAGE_MATCHES)
      .map((m) => `${m.pid} (${m.cmdline})`)
      .join(', ');
    const more = matches.length > MESSAGE_MATCHES ? `, and ${matches.length - MESSAGE_MATCHES} more` : '';
    throw new TargetError(
      'ETARGET_AMBIGUOUS',
      `/${source}/ matches ${matches.length} processes, it must match exactly one: ${listed}${more}`,
      matches,
    );
  }
  return only;
}

/**
 * Reads a user-supplied pid file: opened read-only and non-blocking (a FIFO must not hang us), must be a regular file
 * of at most 64 bytes holding one positive integer. Its contents never appear in errors, only whether they were a pid.
 */
export async function readPidFile(file: string): Promise<number> {
  let handle;
  try {
    handle = await open(file, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (e) {
    throw new TargetError('ETARGET_PIDFILE', `pid file ${file}: cannot open (${(e as NodeJS.ErrnoException).code})`);
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw new TargetError('ETARGET_PIDFILE', `pid file ${file}: not a regular file`);
    const buf = Buffer.alloc(PID_FILE_MAX_BYTES + 1);
    const { bytesRead } = await handle.read(buf, 0, buf.length, 0);
    if (bytesRead > PID_FILE_MAX_BYTES) {
      throw new TargetError('ETARGET_PIDFILE', `pid file ${file}: longer than ${PID_FILE_MAX_BYTES} bytes`);
    }
    const text = buf.subarray(0, bytesRead).toString('latin1').trim();
    if (!/^[1-9][0-9]{0,9}$/.test(text) || Number(text) > 2 ** 31 - 1) {
      throw new TargetError('ETARGET_PIDFILE', `pid file ${file}: does not hold a pid`);
    }
    return Number(text);
  } finally {
    await handle.close();
  }
}
