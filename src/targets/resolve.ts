import { constants } from 'node:fs';
import { open, realpath } from 'node:fs/promises';
import path from 'node:path';
import { repoRoot } from '../common/paths.js';
import { TargetError, type TargetMatch } from './errors.js';
import { matchingPids } from './match.js';
import { ancestorsOf, listPids, readCmdline, readCmdlineArgs, readCwd } from '../common/proc.js';
import { readProcessSnapshot, type ProcessSnapshot } from './process-snapshot.js';
import type { TargetSpec } from './spec.js';
import { workloadTargetKey } from './key.js';

/** A pid file holds a pid and a newline; anything longer is not a pid file. */
const PID_FILE_MAX_BYTES = 64;
/**
 * At most this many matches are spelled out in an ETARGET_AMBIGUOUS error, each command line cut to
 * MATCH_CMDLINE_CHARS: command lines hold secrets, and a regex like "." matches every process on the host.
 */
const MESSAGE_MATCHES = 3;
const MATCH_CMDLINE_CHARS = 40;

export interface ResolveOptions {
  /**
   * Pids `{match}` never resolves to (ckpt's own: its Redis, its CRIU service). Always excluded besides: the current
   * process and its ancestors (a `--match node` must not find the worker itself or the shell that started it) and
   * every process running ckpt's CLI (`ckpt dump --match RE` has RE in its own command line).
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
export async function resolveTarget(spec: TargetSpec, options: ResolveOptions = {}): Promise<ProcessSnapshot> {
  if ('pid' in spec) return byPid(spec.pid, `pid ${spec.pid}`);
  if ('workload' in spec) return byWorkload(spec.workload, options.workloads);
  if ('pidFile' in spec) {
    const pid = await readPidFile(spec.pidFile);
    return byPid(pid, `pid ${pid} (from ${spec.pidFile})`);
  }
  return byMatch(spec.match, options.exclude ?? []);
}

async function byPid(pid: number, what: string): Promise<ProcessSnapshot> {
  const info = await readProcessSnapshot(pid);
  if (!info) throw new TargetError('ETARGET_GONE', `${what}: no such process`);
  return info;
}

async function byWorkload(name: string, workloads: WorkloadLookup | undefined): Promise<ProcessSnapshot> {
  const found = workloads ? await workloads.processOf(name) : { reason: 'is not known here (no workload registry)' };
  if ('reason' in found) throw new TargetError('ETARGET_GONE', `workload ${name} ${found.reason}`);
  const info = await readProcessSnapshot(found.pid);
  // The registry's pid is only this workload while the start time matches: a reused pid is another process.
  if (!info || info.startTime !== found.startTime) throw new TargetError('ETARGET_GONE', `workload ${name}: not running`);
  return { ...info, targetKey: workloadTargetKey(name), workload: { name, dir: found.dir } };
}

async function byMatch(source: string, exclude: number[]): Promise<ProcessSnapshot> {
  const excluded = new Set([process.pid, ...(await ancestorsOf(process.pid)), ...exclude]);
  // Only the command line of every process (read all at once: one at a time was ~0.2 ms each); the full read for
  // matches. A process may vanish in between.
  const pids = (await listPids()).filter((pid) => !excluded.has(pid));
  const cmdlines = await Promise.all(pids.map(readCmdline));
  const candidates = pids.map((pid, i): [number, string] => [pid, cmdlines[i]!]).filter(([, cmdline]) => cmdline !== '');
  const found: ProcessSnapshot[] = [];
  for (const pid of await matchingPids(source, candidates)) {
    // `ckpt dump --match RE` holds RE in its own command line, as does any other ckpt command (a worker, a watch).
    if (await runsCkpt(pid)) continue;
    const info = await readProcessSnapshot(pid);
    if (info) found.push(info);
  }
  const [only, ...others] = found;
  if (!only) throw new TargetError('ETARGET_NONE', `no process's command line matches /${source}/`);
  if (others.length) {
    const shown: TargetMatch[] = found.slice(0, MESSAGE_MATCHES).map(({ pid, cmdline }) => ({ pid, cmdline: cutShort(cmdline) }));
    const listed = shown.map((m) => `${m.pid} (${m.cmdline})`).join(', ');
    const more = found.length > shown.length ? `, and ${found.length - shown.length} more` : '';
    throw new TargetError(
      'ETARGET_AMBIGUOUS',
      `/${source}/ matches ${found.length} processes, it must match exactly one: ${listed}${more}`,
      shown,
    );
  }
  return only;
}

/** ckpt's command-line entry point, as a real path (resolved once). */
let ckptEntry: Promise<string> | undefined;

/** Whether `pid` runs ckpt's CLI (`node [node options] <this checkout>/bin/ckpt.js ...`, also through a symlink such as `npm link`'s). */
async function runsCkpt(pid: number): Promise<boolean> {
  ckptEntry ??= realpath(path.join(repoRoot(), 'bin', 'ckpt.js')).catch(() => '');
  const argv = await readCmdlineArgs(pid);
  const script = argv.slice(1).find((arg) => !arg.startsWith('-'));
  if (!script) return false;
  const cwd = await readCwd(pid);
  const real = await realpath(path.resolve(cwd, script)).catch(() => '');
  return real !== '' && real === (await ckptEntry);
}

function cutShort(cmdline: string): string {
  return cmdline.length > MATCH_CMDLINE_CHARS ? `${cmdline.slice(0, MATCH_CMDLINE_CHARS - 1)}…` : cmdline;
}

/**
 * Reads a user-supplied pid file: opened read-only and non-blocking (a FIFO must not hang us), must be a regular file
 * of at most 64 bytes holding one positive integer. ckpt runs as root and could read any file, so every failure
 * gives the same answer: whether the file is missing, root-only, too long or holds something else is not told.
 */
export async function readPidFile(file: string): Promise<number> {
  const pid = await readPidIn(file).catch(() => null);
  if (pid === null) {
    throw new TargetError('ETARGET_PIDFILE', `pid file ${file}: not a readable pid file (a regular file holding one pid)`);
  }
  return pid;
}

/** The pid in `file`, or null / a rejection for anything that is not a pid file. */
async function readPidIn(file: string): Promise<number | null> {
  const handle = await open(file, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  try {
    if (!(await handle.stat()).isFile()) return null;
    const buf = Buffer.alloc(PID_FILE_MAX_BYTES + 1);
    const { bytesRead } = await handle.read(buf, 0, buf.length, 0);
    if (bytesRead > PID_FILE_MAX_BYTES) return null;
    const text = buf.subarray(0, bytesRead).toString('latin1').trim();
    return /^[1-9][0-9]{0,9}$/.test(text) && Number(text) <= 2 ** 31 - 1 ? Number(text) : null;
  } finally {
    await handle.close();
  }
}
