import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import type { Manifest } from '../src/catalog/manifest.js';
import { checkpointIdSchema } from '../src/common/checkpoint-id.js';
import { targetKeySchema } from '../src/targets/checkpoint-target.js';
import type { Config } from '../src/config/schema.js';
import { ImageFileError, readProcessTree } from '../src/criu/image-file.js';
import { listPids, readProcStat, readProcStatus, type ProcStat } from '../src/common/proc.js';
import { FinalJobError } from './failure.js';
import type { WorkerContext } from './worker-context.js';

/**
 * Which pids a restore of a plain process tree needs, who holds them, and what to do about it — before CRIU runs.
 *
 * CRIU gives every task of a plain (not namespace-init) tree its original pid and fails when one is taken. Retrying
 * cannot free a pid that a live process holds, so such a restore fails at once, naming each holder. The one thing
 * worth waiting for is a dying holder (a zombie pid 1 has not reaped yet, a process with SIGKILL pending). When the
 * holder is the checkpointed process itself, `replace` stops it (its whole tree) and restores: a rollback.
 */

/** How a process keeps a pid taken: as its own pid, a thread's, or as the id of its process group or session. */
export type HoldKind = 'process' | 'thread' | 'process group' | 'session';

export interface PidHolder {
  /** The pid the checkpoint needs. */
  pid: number;
  kind: HoldKind;
  /** The process holding it (a thread's process; a member of the group or session). */
  holder: number;
  comm: string;
  state: string;
  /** A zombie, or SIGKILL pending: the pid frees itself soon. */
  dying: boolean;
}

/** The pids a checkpoint's tree needs on restore. */
export interface TreePids {
  /** The root task is pid 1 of its own pid namespace (a workload): it is restored into a fresh namespace and needs no host pid. */
  namespaceInit: boolean;
  /** Every task's pid and every thread id (the tree's process groups and sessions are its own tasks' pids). */
  pids: number[];
}

export async function treePidsOf(checkpointId: string, imagesDir: string): Promise<TreePids> {
  let tree;
  try {
    tree = await readProcessTree(imagesDir);
  } catch (err) {
    if (err instanceof ImageFileError || (err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new FinalJobError(`checkpoint ${checkpointId} is damaged, not restoring it: ${(err as Error).message}`, 'ECHECKPOINT_DAMAGED');
    }
    throw err;
  }
  const pids = new Set<number>();
  for (const task of tree) {
    pids.add(task.pid);
    for (const t of task.threads) pids.add(t);
  }
  return { namespaceInit: tree[0]?.pid === 1, pids: [...pids].sort((a, b) => a - b) };
}

/** Every process in /proc, by pid. */
async function scanProcesses(): Promise<Map<number, ProcStat>> {
  const pids = await listPids();
  const stats = await Promise.all(pids.map((pid) => readProcStat(pid)));
  const procs = new Map<number, ProcStat>();
  pids.forEach((pid, i) => {
    const st = stats[i];
    if (st) procs.set(pid, st);
  });
  return procs;
}

/** Zombie, dead, or SIGKILL pending (for itself or its thread group). */
async function isDying(pid: number, st: ProcStat): Promise<boolean> {
  if (st.state === 'Z' || st.state === 'X') return true;
  const status = await readProcStatus(pid);
  return status === null || status.killPending;
}

/** What holds each of `pids` right now (a pid may have several holders: e.g. a zombie leader and its group's members). */
export async function findPidHolders(pids: number[]): Promise<PidHolder[]> {
  const procs = await scanProcesses();
  const holders: PidHolder[] = [];
  const add = async (pid: number, kind: HoldKind, holder: number, st: ProcStat) =>
    holders.push({ pid, kind, holder, comm: st.comm, state: st.state, dying: await isDying(holder, st) });
  for (const pid of pids) {
    const own = procs.get(pid);
    if (own) {
      await add(pid, 'process', pid, own);
    } else {
      // A thread id is not listed in /proc but is readable there.
      const thread = await readProcStat(pid);
      if (thread) {
        const tgid = (await readProcStatus(pid))?.tgid ?? pid;
        await add(pid, 'thread', tgid, procs.get(tgid) ?? thread);
      }
    }
    // The kernel keeps a pid taken while a process group or session carries it, even with its leader gone.
    for (const [other, st] of procs) {
      if (other === pid) continue;
      if (st.pgrp === pid || st.session === pid) {
        await add(pid, st.session === pid ? 'session' : 'process group', other, st);
        break;
      }
    }
  }
  return holders;
}

const STATE_NAMES: Record<string, string> = {
  R: 'running',
  S: 'sleeping',
  D: 'in uninterruptible sleep',
  T: 'stopped',
  t: 'stopped by a tracer',
  Z: 'zombie',
  X: 'dead',
  I: 'idle',
};

/** "pid 4242 is taken by process 4242 'sleep' (sleeping)"; for a group or session, the member that keeps it. */
export function describeHolder(h: PidHolder): string {
  const who = `'${h.comm}' (pid ${h.holder}, ${STATE_NAMES[h.state] ?? h.state}${h.dying && h.state !== 'Z' ? ', being killed' : ''})`;
  switch (h.kind) {
    case 'process':
      return `pid ${h.pid} is taken by process ${who}`;
    case 'thread':
      return `pid ${h.pid} is taken by a thread of process ${who}`;
    default:
      return `pid ${h.pid} is taken as the ${h.kind} id of process ${who}`;
  }
}

/**
 * The checkpointed process: its pid and the start times that identify it there (a pid alone could be a later,
 * unrelated process): the manifest's, and that of a restore of the same target this node made since.
 */
export interface Original {
  pid: number;
  startTimes: number[];
}

/** What a restore records about the process it started (see restoredProcesses); read back from Redis, so checked. */
const restoredRecordSchema = z.strictObject({
  startTime: z.number().int().nonnegative(),
  target: targetKeySchema,
  checkpointId: checkpointIdSchema,
});
type RestoredRecord = z.infer<typeof restoredRecordSchema>;

/** The checkpoint's original as this node knows it: the dumped process, or a restore of the same target that replaced it. */
export async function originalOf(ctx: Pick<WorkerContext, 'redis' | 'keys' | 'node'>, checkpoint: Pick<Manifest, 'target'>): Promise<Original> {
  const { pid, startTime, key } = checkpoint.target;
  const raw = await ctx.redis.hget(ctx.keys.restoredProcesses(ctx.node), String(pid));
  // A record that does not parse is ignored: replace then only recognises the dumped process itself.
  const restored = raw ? restoredRecordSchema.safeParse(safeJson(raw)).data : undefined;
  return { pid, startTimes: restored?.target === key ? [startTime, restored.startTime] : [startTime] };
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** Records a process a restore started, so a later restore of its target may replace it. */
export async function recordRestored(
  ctx: Pick<WorkerContext, 'redis' | 'keys' | 'node'>,
  checkpoint: Pick<Manifest, 'id' | 'target'>,
  process: { pid: number; startTime: number },
): Promise<void> {
  const record: RestoredRecord = { startTime: process.startTime, target: checkpoint.target.key, checkpointId: checkpoint.id };
  await ctx.redis.hset(ctx.keys.restoredProcesses(ctx.node), String(process.pid), JSON.stringify(record));
}

/**
 * The live processes that belong to the original's tree: the original (same pid and start time), its descendants,
 * and the members of its process group and session (while it lives no other process can carry its pid as theirs).
 */
async function originalTree(original: Original): Promise<Map<number, ProcStat>> {
  const procs = await scanProcesses();
  const root = procs.get(original.pid);
  const tree = new Map<number, ProcStat>();
  if (!root || !original.startTimes.includes(root.startTime) || root.state === 'Z' || root.state === 'X') return tree;
  for (const [pid, st] of procs) {
    let belongs = pid === original.pid || st.pgrp === original.pid || st.session === original.pid;
    for (let p = st.ppid, depth = 0; !belongs && p > 1 && depth < 4096; depth++) {
      if (p === original.pid) belongs = true;
      p = procs.get(p)?.ppid ?? 0;
    }
    if (belongs) tree.set(pid, st);
  }
  return tree;
}

export interface ClearPidsOptions {
  checkpointId: string;
  original: Original;
  pids: number[];
  /** Stop the checkpoint's original (when it still runs) to restore in its place. */
  replace: boolean;
  config: Pick<Config['worker'], 'pidFreeTimeoutMs' | 'replaceGraceMs'>;
  signal?: AbortSignal;
  /** A stage of the work (progress in the feed). */
  onStage(stage: 'checking-pids' | 'stopping-original' | 'waiting-pids'): void;
  /** A line for the job's log. */
  note(line: string): Promise<void>;
}

/** Polling interval while waiting for pids or for the original to exit. */
const POLL_MS = 20;

/**
 * Returns once every pid of `pids` is free, else throws a FinalJobError saying who holds which:
 * EPID_ORIGINAL when it is the checkpointed process itself (without `replace`), EPID_TAKEN otherwise.
 * Dying holders are waited for up to pidFreeTimeoutMs. With `replace`, the original's tree is stopped first
 * (TERM, KILL after replaceGraceMs) — only when every live holder belongs to it: nothing unrelated is ever signalled.
 */
export async function clearPids(opts: ClearPidsOptions): Promise<void> {
  const { checkpointId, original, pids, config, signal } = opts;
  opts.onStage('checking-pids');
  let holders = await findPidHolders(pids);
  if (!holders.length) return;
  const tree = await originalTree(original);
  const foreign = holders.filter((h) => !h.dying && !tree.has(h.holder));
  if (tree.size && !opts.replace) {
    const comm = tree.get(original.pid)!.comm;
    throw new FinalJobError(
      [
        `pid ${original.pid} is the checkpointed process itself ('${comm}', the same start time as when it was dumped or restored), still running; ` +
          `restore with replace: true (ckpt restore ${checkpointId} --replace) to roll it back`,
        ...foreign.map(describeHolder),
      ].join('; '),
      'EPID_ORIGINAL',
    );
  }
  if (foreign.length) throw takenError(checkpointId, foreign, opts.replace);
  if (tree.size) {
    opts.onStage('stopping-original');
    await stopTree(tree, original, config.replaceGraceMs, opts.note, signal);
  }
  opts.onStage('waiting-pids');
  const deadline = Date.now() + config.pidFreeTimeoutMs;
  for (;;) {
    holders = await findPidHolders(pids);
    if (!holders.length) return;
    const live = holders.filter((h) => !h.dying);
    // Something new took a pid meanwhile (or the original came back): waiting cannot help.
    if (live.length) throw takenError(checkpointId, live, opts.replace);
    if (Date.now() >= deadline) {
      throw new FinalJobError(
        `${holders.map(describeHolder).join('; ')}; still after ${config.pidFreeTimeoutMs} ms (worker.pidFreeTimeoutMs): ` +
          'a zombie its parent does not reap keeps its pid',
        'EPID_TAKEN',
      );
    }
    await sleep(POLL_MS, undefined, { signal });
  }
}

function takenError(checkpointId: string, holders: PidHolder[], replace: boolean): FinalJobError {
  const why = replace
    ? 'replace stops only the checkpointed process and its tree (same pid and start time as when it was dumped or restored here), never another process'
    : 'stop that process, or restore into a fresh pid namespace';
  return new FinalJobError(`checkpoint ${checkpointId} needs pids that are in use: ${holders.map(describeHolder).join('; ')}; ${why}`, 'EPID_TAKEN');
}

/**
 * TERM to every process of the original's tree, KILL to what is left after `graceMs`. Each signal goes only to a
 * process still the same (pid and start time as scanned), so a pid reused meanwhile is never hit.
 */
async function stopTree(
  tree: Map<number, ProcStat>,
  original: Original,
  graceMs: number,
  note: (line: string) => Promise<void>,
  signal?: AbortSignal,
): Promise<void> {
  const members = [...tree].map(([pid, st]) => ({ pid, startTime: st.startTime }));
  const alive = async () => {
    const left = [];
    for (const m of members) {
      const st = await readProcStat(m.pid);
      if (st && st.startTime === m.startTime && st.state !== 'Z' && st.state !== 'X') left.push(m);
    }
    return left;
  };
  const send = async (sig: NodeJS.Signals) => {
    for (const m of await alive()) {
      try {
        process.kill(m.pid, sig);
      } catch {
        // gone since
      }
    }
  };
  await note(`stopping the original process ${original.pid} and its tree (${members.map((m) => m.pid).join(', ')}): SIGTERM`);
  await send('SIGTERM');
  const deadline = Date.now() + graceMs;
  while ((await alive()).length && Date.now() < deadline) await sleep(POLL_MS, undefined, { signal });
  const left = await alive();
  if (left.length) {
    await note(`still running after ${graceMs} ms (worker.replaceGraceMs): SIGKILL to ${left.map((m) => m.pid).join(', ')}`);
    await send('SIGKILL');
  }
}
