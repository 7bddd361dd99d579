import { readFile } from 'node:fs/promises';
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
