import { spawn } from 'node:child_process';
import { open, readFile, mkdir, chmod } from 'node:fs/promises';
import { constants } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { isSameProcess, listPids, readProcStat, readProcStatus } from '../common/proc.js';
import { WorkloadError, type WorkloadEnd } from './registry.js';

/** The files of a workload's folder. CRIU reopens them by path on restore, so a copy gets its own folder. */
export const OUTPUT_FILES = ['stdout.log', 'stderr.log', 'status'] as const;

/**
 * The workload's pid 1. It runs the command as its child and stays, so that:
 * - SIGTERM from the host reaches the command (a namespace's init gets no signal it has no handler for);
 * - the command's exit code is written to fd 3 (the `status` file) by a process inside the checkpointed tree, so it
 *   is recorded also for a copy restored from a checkpoint (whose parent is the host's init, not ckpt).
 * The command gets no fd 3. A shell's wait says 128+N for a command killed by signal N.
 */
const INIT_SCRIPT = [
  '"$@" 3>&- &',
  'child=$!',
  "trap 'kill -TERM $child 2>/dev/null' TERM INT HUP",
  'while :; do wait $child; code=$?; kill -0 $child 2>/dev/null || break; done',
  'echo "exit $code" >&3',
  'exit $code',
].join('\n');

/** The environment a workload starts with, before the variables the request gives: nothing of ckpt's own (tokens). */
const BASE_ENV = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C.UTF-8' };

/** A workload still running this long after its start counts as started. */
const START_SETTLE_MS = 100;
/** How long a start waits for the workload's namespace init to appear. */
const START_TIMEOUT_MS = 5000;

export interface LaunchSpec {
  command: string[];
  /** The workload's folder (made 0700); output files inside it (0600). */
  dir: string;
  cwd: string;
  env: Record<string, string>;
}

/** A started workload's process, as the host sees it. */
export interface LaunchedProcess {
  hostPid: number;
  startTime: number;
}

/** Makes the workload's folder and its output files (kept, appended to, when they exist). */
export async function prepareWorkloadDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
  for (const name of OUTPUT_FILES) {
    const handle = await open(path.join(dir, name), 'a', 0o600);
    await handle.chmod(0o600);
    await handle.close();
  }
}

/**
 * Starts `command` the way checkpointing needs it: the init of its own pid namespace (so any number of copies can
 * later be restored side by side, each with its own pids), its own session, no controlling terminal, stdin from
 * /dev/null, stdout and stderr appended to files in its folder (append mode: CRIU does not insist on their size at a
 * restore). Detached from ckpt: it outlives a restart of ckpt.
 */
export async function launchWorkload(spec: LaunchSpec): Promise<LaunchedProcess> {
  await prepareWorkloadDir(spec.dir);
  const handles = await Promise.all(OUTPUT_FILES.map((name) => open(path.join(spec.dir, name), 'a', 0o600)));
  let child;
  try {
    child = spawn('unshare', ['--pid', '--fork', 'setsid', 'sh', '-c', INIT_SCRIPT, 'ckpt-init', ...spec.command], {
      cwd: spec.cwd,
      env: { ...BASE_ENV, ...spec.env },
      detached: true,
      stdio: ['ignore', handles[0]!.fd, handles[1]!.fd, handles[2]!.fd],
    });
  } finally {
    await Promise.all(handles.map((h) => h.close()));
  }
  const exited = new Promise<string>((resolve) => {
    child.once('error', (err) => resolve(err.message));
    child.once('exit', (code, signal) => resolve(signal ? `killed by ${signal}` : `exited with code ${code}`));
  });
  child.unref();
  const unsharePid = child.pid;
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (unsharePid !== undefined && Date.now() < deadline) {
    const init = await childOf(unsharePid);
    // A command that cannot run (not found, bad arguments) ends at once: say so instead of listing a dead workload.
    if (init && (await sleep(START_SETTLE_MS).then(() => isSameProcess({ pid: init.hostPid, startTime: init.startTime })))) return init;
    if (init) break;
    const early = await Promise.race([exited, sleep(10).then(() => undefined)]);
    if (early !== undefined) break;
  }
  const outcome = await Promise.race([exited, sleep(1000).then(() => 'did not start in time')]);
  const status = (await readWorkloadEnd(spec.dir)).code;
  const stderr = await readFile(path.join(spec.dir, 'stderr.log'), 'utf8').catch(() => '');
  throw new WorkloadError(
    'EWORKLOAD_START',
    `${spec.command[0]} did not keep running: ${status !== undefined ? `exited with code ${status}` : outcome}${stderr.trim() ? `; stderr: ${stderr.trim().split('\n').slice(-3).join(' | ')}` : ''}`,
  );
}

/** The (first) child of `pid` and its start time: the namespace's init under `unshare --fork`. */
async function childOf(pid: number): Promise<LaunchedProcess | null> {
  const pids = await listPids();
  // A child has a later pid (except after a wrap-around): look there first, so few stat files are read.
  for (const candidate of [...pids.filter((p) => p > pid), ...pids.filter((p) => p < pid)]) {
    const stat = await readProcStat(candidate);
    if (stat?.ppid === pid) return { hostPid: candidate, startTime: stat.startTime };
  }
  return null;
}

/**
 * Stops a workload's process: SIGTERM (its init hands it to the command), then SIGKILL after `graceMs` (which ends
 * the whole pid namespace). Resolves once it is gone. A process that is no longer the workload's (another start
 * time) is never signalled.
 */
export async function stopWorkloadProcess(proc: LaunchedProcess, graceMs: number): Promise<'stopped' | 'killed' | 'not-running'> {
  const target = { pid: proc.hostPid, startTime: proc.startTime };
  if (!(await isSameProcess(target))) return 'not-running';
  // Only ever a workload: the init of its own pid namespace (a record naming any other process is refused).
  if (!(await isNamespaceInit(proc.hostPid))) throw new WorkloadError('EWORKLOAD_START', `pid ${proc.hostPid} is not the init of a pid namespace: not a workload, not stopping it`);
  signal(proc.hostPid, 'SIGTERM');
  if (await goneWithin(target, graceMs)) return 'stopped';
  if (await isSameProcess(target)) signal(proc.hostPid, 'SIGKILL');
  if (!(await goneWithin(target, 10_000))) throw new Error(`pid ${proc.hostPid} still runs after SIGKILL`);
  return 'killed';
}

/** True when `pid` is pid 1 of a pid namespace below the host's (/proc/<pid>/status NSpid: "<host pid> ... 1"). */
async function isNamespaceInit(pid: number): Promise<boolean> {
  const ids = (await readProcStatus(pid))?.nsPids ?? [];
  return ids.length >= 2 && ids.at(-1) === 1;
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
  }
}

async function goneWithin(target: { pid: number; startTime: number }, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (!(await isSameProcess(target))) return true;
    if (Date.now() >= deadline) return false;
    await sleep(20);
  }
}

/**
 * How a workload's process ended, from the last line its init wrote to `status` ("exit N"); no line means it was
 * killed outright (SIGKILL, or a dump that did not leave it running).
 */
export async function readWorkloadEnd(dir: string, at: Date = new Date()): Promise<WorkloadEnd> {
  const text = await readFile(path.join(dir, 'status'), 'utf8').catch(() => '');
  const last = text.trim().split('\n').at(-1) ?? '';
  const m = /^exit (\d+)$/.exec(last);
  if (!m) return { at: at.toISOString(), signal: 'SIGKILL' };
  const code = Number(m[1]);
  const signalName = code > 128 ? signalNameOf(code - 128) : undefined;
  return { at: at.toISOString(), code, ...(signalName ? { signal: signalName } : {}) };
}

function signalNameOf(n: number): string | undefined {
  return Object.entries(constants.signals).find(([, v]) => v === n)?.[0];
}
