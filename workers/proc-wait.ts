import { readdir, readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

/** The fields of /proc/<pid>/status the worker looks at; null when the process does not exist. */
export async function procStatus(pid: number): Promise<{ state: string; tracerPid: number; name: string } | null> {
  const text = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => null);
  if (text === null) return null;
  return {
    state: /^State:\s+(\S)/m.exec(text)?.[1] ?? '?',
    tracerPid: Number(/^TracerPid:\s+(\d+)/m.exec(text)?.[1] ?? 0),
    name: /^Name:\s+(.*)$/m.exec(text)?.[1] ?? '',
  };
}

/** True when the pid exists and is not a zombie. */
export async function isRunning(pid: number): Promise<boolean> {
  const st = await procStatus(pid);
  return !!st && st.state !== 'Z' && st.state !== 'X';
}

/**
 * Waits until no tracer (a CRIU still dumping it, e.g. for a worker that died) holds `pid`.
 * Returns the tracer's pid if one still does after `timeoutMs`, else 0 (also when the process is gone).
 */
export async function waitUntraced(pid: number, timeoutMs: number, signal?: AbortSignal): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const st = await procStatus(pid);
    if (!st || st.tracerPid === 0) return 0;
    if (Date.now() >= deadline) return st.tracerPid;
    await sleep(50, undefined, { signal });
  }
}

/**
 * Waits until `pid` is free for a restore: no process (not even a zombie) has it, and none uses it as its process
 * group or session id (the kernel keeps such a pid taken: a restored tree's leader needs its old pgid/sid free too).
 * Returns null when free, else what holds it after `timeoutMs`.
 */
export async function waitPidFree(pid: number, timeoutMs: number, signal?: AbortSignal): Promise<{ name: string; state: string } | null> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const holder = (await procStatus(pid)) ?? (await groupMemberOf(pid));
    if (!holder) return null;
    if (Date.now() >= deadline) return holder;
    await sleep(20, undefined, { signal });
  }
}

/** A process whose process group or session is `pid`, or null. */
async function groupMemberOf(pid: number): Promise<{ name: string; state: string } | null> {
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => null);
    if (!stat) continue;
    // After the ")" that ends the command name: state ppid pgrp session ...
    const [state, , pgrp, session] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(pgrp) === pid || Number(session) === pid) {
      return { name: `pid ${entry}, in its process group or session`, state: state ?? '?' };
    }
  }
  return null;
}
