import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Job } from 'bullmq';
import type { Verification } from '../src/catalog/catalog.js';
import { ImageFileError, readProcessTree, type TreeTask } from '../src/criu/image-file.js';
import { isCriuErrorLine, withoutCriuTime } from '../src/criu/log-tail.js';
import type { JobResult } from '../src/queue/job-view.js';
import type { VerifyJobData } from '../src/queue/schemas.js';
import { childrenOf, listPids, listThreadIds, readPidNamespace, readProcStatus } from '../src/common/proc.js';
import { checkpointImages } from './checkpoint-images.js';
import { CriuLogTailer } from './criu-log-tailer.js';
import { FinalJobError } from './failure.js';
import type { JobRun, WorkerContext } from './worker-context.js';

/**
 * A restore drill: proves a checkpoint restores, without touching its original. The criu binary restores the tree
 * inside a fresh pid and mount namespace (`unshare --pid --fork --mount-proc`), where the tree's pids are free even
 * while the original runs, with --leave-stopped, so the copy never runs a single instruction (it cannot write the
 * original's files or talk to its peers). The namespace's init is a `sleep` that outlives CRIU (with CRIU as the init
 * the copy would die as CRIU exits); ckpt checks that every task of pstree.img is there, stopped, with its threads,
 * and still is after worker.drillHoldMs, then kills the init (which ends the whole namespace) and removes the
 * drill's folder. The CRIU service cannot do this: it runs in the host's namespaces.
 *
 * The outcome is recorded on the checkpoint (`verified`) and published (checkpoint.verified); a failed drill also
 * fails the job, with CRIU's reason.
 */

/** CRIU options of a dump whose restore a drill cannot do next to the running original (and why). */
const UNDRILLABLE: Record<string, string> = {
  tcpEstablished: 'established TCP connections would be restored next to the original ones (same addresses, same network namespace)',
  fileLocks: 'file locks held by the running original would conflict with the restored ones',
  extUnixSk: 'unix sockets connected to processes outside the tree would be reconnected to those live peers',
  shellJob: 'a shell job is restored onto the terminal of the original',
};

/** How long a drill's namespace outlives its hold when nobody kills it (its worker died). */
const ORPHAN_DRILL_S = 600;

export async function processDrill(job: Job<VerifyJobData>, run: JobRun, ctx: WorkerContext): Promise<JobResult> {
  const { reporter } = run;
  const started = Date.now();
  const { checkpoint, imagesDir } = await checkpointImages(ctx, job.data, run, job.id!);
  const refused = Object.keys(UNDRILLABLE).find((opt) => checkpoint.options[opt] === true);
  if (refused) {
    throw new FinalJobError(`checkpoint ${checkpoint.id} cannot be drilled: it was dumped with ${refused}: ${UNDRILLABLE[refused]}`, 'EDRILL_UNSUPPORTED');
  }
  await ctx.catalog.acquireRef(checkpoint.id, job.id!);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ckpt-drill-'));
  try {
    // A process tree CRIU could not read either is a finding, not an accident.
    const tree = await readProcessTree(imagesDir).catch((err: Error) => {
      if (err instanceof ImageFileError) return err;
      throw err;
    });
    reporter.progress({ stage: 'restoring', percent: 10 });
    const problem = tree instanceof ImageFileError ? tree.message : await drill({ ctx, run, imagesDir, dir, tree });
    const verified: Verification = { at: new Date().toISOString(), ok: !problem, ...(problem ? { reason: problem } : {}) };
    await ctx.catalog.setVerified(checkpoint.id, verified);
    await reporter.publish('checkpoint.verified', { checkpointId: checkpoint.id, ...verified });
    if (problem) throw new FinalJobError(`drill of checkpoint ${checkpoint.id} failed: ${problem}`, 'EDRILL_FAILED');
    reporter.progress({ stage: 'done', percent: 100 });
    return { checkpointId: checkpoint.id, durationMs: Date.now() - started };
  } finally {
    await rm(dir, { recursive: true, force: true });
    await ctx.catalog.releaseRef(checkpoint.id, job.id!);
  }
}

interface DrillInput {
  ctx: WorkerContext;
  run: JobRun;
  imagesDir: string;
  /** The drill's own folder (0700): CRIU's work dir, log and stats. */
  dir: string;
  tree: TreeTask[];
}

/** Runs one drill; null when the tree came up whole and stayed so, else what went wrong. */
async function drill({ ctx, run, imagesDir, dir, tree }: DrillInput): Promise<string | null> {
  const { reporter } = run;
  const bin = await ctx.criuBin();
  // At least CRIU's error lines: they are the drill's reason.
  const logLevel = Math.max(1, ctx.config.criu.logLevel);
  const args = ['restore', '-D', imagesDir, '-W', dir, '--leave-stopped', '--restore-detached', '-o', 'restore.log', `-v${logLevel}`];
  // "$@" runs CRIU with the arguments as given (no quoting); then the shell reports its status and becomes a sleep
  // that stays the namespace's init until ckpt kills it — or, should this worker die meanwhile, ends it by itself.
  const lingerS = Math.ceil(ctx.config.worker.drillHoldMs / 1000) + ORPHAN_DRILL_S;
  const script = `"$@"; echo "criu-exit $?"; exec sleep ${lingerS}`;
  const child = spawn('unshare', ['--pid', '--fork', '--mount-proc', '--kill-child=SIGKILL', 'sh', '-c', script, 'ckpt-drill', bin, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...ctx.config.criu.env },
  });
  const tailer = new CriuLogTailer({ file: path.join(dir, 'restore.log'), onLines: (lines) => reporter.logLines(lines) });
  tailer.start();
  try {
    const status = await criuStatus(child, ctx.config.criu.timeoutMs, run.signal);
    await tailer.stop();
    if (status !== 0) return criuReason(await readFile(path.join(dir, 'restore.log'), 'utf8').catch(() => ''), status);
    reporter.progress({ stage: 'checking-tree', percent: 60 });
    const init = await initOf(child);
    const missing = await treeProblem(tree, init);
    if (missing) return missing;
    reporter.progress({ stage: 'holding', percent: 70 });
    await sleep(ctx.config.worker.drillHoldMs, undefined, { signal: run.signal });
    const later = await treeProblem(tree, init);
    return later ? `${later} (${ctx.config.worker.drillHoldMs} ms after the restore)` : null;
  } finally {
    await tailer.stop();
    reporter.progress({ stage: 'removing', percent: 90 });
    await endNamespace(child);
  }
}

/** CRIU's exit status, as the namespace's shell reports it; throws when the shell itself failed. */
function criuStatus(child: ChildProcess, timeoutMs: number, signal: AbortSignal): Promise<number> {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => fail(new Error(`the drill's CRIU did not finish within ${timeoutMs} ms`)), timeoutMs);
    const onAbort = () => fail(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
    };
    const fail = (e: Error) => {
      done();
      reject(e);
    };
    child.stderr!.setEncoding('utf8').on('data', (c: string) => (err = (err + c).slice(-4000)));
    child.stdout!.setEncoding('utf8').on('data', (c: string) => {
      out += c;
      const m = /criu-exit (\d+)/.exec(out);
      if (m) {
        done();
        resolve(Number(m[1]));
      }
    });
    child.on('error', fail);
    child.on('exit', (code, sig) => fail(new Error(`the drill's namespace ended before CRIU reported (unshare: ${code ?? sig}): ${err.trim()}`)));
  });
}

/** CRIU's error lines (not the RLIMIT_NOFILE one it logs as an error on every run here, a warning), or its exit status. */
function criuReason(log: string, status: number): string {
  const errors = log
    .split('\n')
    .filter((l) => isCriuErrorLine(l) && !l.includes("Can't setup RLIMIT_NOFILE"))
    .slice(-5);
  return errors.length ? errors.map((l) => withoutCriuTime(l).trim()).join('\n') : `criu restore exited with status ${status}`;
}

/** The namespace's init: unshare's one child. */
async function initOf(child: ChildProcess): Promise<number> {
  const pid = (await childrenOf(child.pid!))[0];
  if (!pid) throw new Error(`the drill's namespace has no init (unshare pid ${child.pid})`);
  return pid;
}

/** null when every task of the tree is in the namespace of `init`, stopped, with all its threads; else what is not. */
async function treeProblem(tree: TreeTask[], init: number): Promise<string | null> {
  const ns = await readPidNamespace(init);
  if (ns === null) throw new Error(`the drill's namespace init (pid ${init}) is gone`);
  const found = new Map<number, { hostPid: number; state: string }>();
  for (const pid of await listPids()) {
    if (pid === init || (await readPidNamespace(pid)) !== ns) continue;
    const status = await readProcStatus(pid);
    const nsPid = status && status.nsPids.length >= 2 ? status.nsPids.at(-1)! : 0;
    if (status && nsPid) found.set(nsPid, { hostPid: pid, state: status.state });
  }
  for (const task of tree) {
    const t = found.get(task.pid);
    if (!t) return `task ${task.pid} of the tree (${tree.length} tasks) is missing after the restore`;
    if (t.state !== 'T' && t.state !== 't') return `task ${task.pid} is not stopped (state ${t.state})`;
    const threads = (await listThreadIds(t.hostPid)).length;
    if (threads !== Math.max(1, task.threads.length)) return `task ${task.pid} has ${threads} threads, the checkpoint ${task.threads.length}`;
  }
  return null;
}

/** SIGKILL to the namespace's init ends every process in it; unshare (killed too, in case) then exits. */
async function endNamespace(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const init = await initOf(child).catch(() => 0);
  try {
    if (init) process.kill(init, 'SIGKILL');
  } catch {
    // already gone
  }
  child.kill('SIGKILL'); // --kill-child: the init goes with it
  await exited;
}
