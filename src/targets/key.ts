/** Longest target key: a sanitized comm (<= 15 characters in practice, capped at 64) plus '-' and the pid. */
const SAFE_KEY = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}-[1-9][0-9]{0,9}$/;
/** A workload's key: `workload.<name>` (names are checked by workloadNameSchema, a subset of this). */
const WORKLOAD_KEY = /^workload\.[a-z0-9][a-z0-9_-]{0,47}$/;

/**
 * The folder name for a process's checkpoints: `<comm sanitized to [A-Za-z0-9_.-]>-<pid>`, e.g. `python3-4242`.
 * Restored processes keep their pid and comm, so every checkpoint of one process lands in one folder.
 * Never starts with '.', so it cannot be '.', '..' or a hidden temp folder.
 */
export function targetKey(info: { comm: string; pid: number }): string {
  const name = info.comm.replace(/[^A-Za-z0-9_.-]/g, '_').replace(/^\./, '_').slice(0, 64) || 'proc';
  return `${name}-${info.pid}`;
}

/**
 * The folder name for a workload's checkpoints: `workload.<name>`. A workload keeps its name across restores (its
 * host pid changes every time), so all of its checkpoints land in one folder.
 */
export function workloadTargetKey(name: string): string {
  return `workload.${name}`;
}

/** True when `key` has the shape targetKey or workloadTargetKey produces: safe as one path component, no traversal. */
export function isSafeTargetKey(key: unknown): key is string {
  return typeof key === 'string' && (SAFE_KEY.test(key) || WORKLOAD_KEY.test(key));
}
