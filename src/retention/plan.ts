import type { Retention } from './schema.js';

export type PruneReason = 'keepLast' | 'maxAge' | 'maxTotalBytes';

/** What retention needs to know about a checkpoint (the catalog's Checkpoint has it). */
export interface RetainedCheckpoint {
  id: string;
  /** ISO time the dump finished. */
  created: string;
  bytes: number;
  pinned: boolean;
}

export interface PruneCandidate<C extends RetainedCheckpoint = RetainedCheckpoint> {
  checkpoint: C;
  reason: PruneReason;
}

/**
 * Which of a schedule's checkpoints retention removes, oldest first. Rules:
 * - pinned checkpoints are never removed and do not count toward keepLast (they do count toward maxTotalBytes:
 *   that limit is about disk space);
 * - `busy` ones (a waiting or active restore refers to them) are not removed now, but keep their place in the count;
 * - the newest unpinned checkpoint is always kept, so a schedule never ends up with none;
 * - keepLast: unpinned checkpoints beyond the newest N go; maxAge: older than it go; maxTotalBytes: the oldest
 *   removable ones go until the schedule's total is within the limit.
 */
export function planRetention<C extends RetainedCheckpoint>(
  checkpoints: C[],
  retention: Retention,
  busy: ReadonlySet<string>,
  now = Date.now(),
): PruneCandidate<C>[] {
  const newestFirst = [...checkpoints].sort((a, b) => Date.parse(b.created) - Date.parse(a.created) || (a.id < b.id ? 1 : -1));
  const unpinned = newestFirst.filter((c) => !c.pinned);
  const chosen = new Map<string, PruneCandidate<C>>();
  unpinned.forEach((c, i) => {
    if (i === 0 || busy.has(c.id)) return;
    if (retention.keepLast !== undefined && i >= retention.keepLast) chosen.set(c.id, { checkpoint: c, reason: 'keepLast' });
    else if (retention.maxAge !== undefined && now - Date.parse(c.created) > retention.maxAge) {
      chosen.set(c.id, { checkpoint: c, reason: 'maxAge' });
    }
  });
  if (retention.maxTotalBytes !== undefined) {
    let total = newestFirst.reduce((sum, c) => sum + (chosen.has(c.id) ? 0 : c.bytes), 0);
    for (let i = unpinned.length - 1; i >= 1 && total > retention.maxTotalBytes; i--) {
      const c = unpinned[i]!;
      if (chosen.has(c.id) || busy.has(c.id)) continue;
      chosen.set(c.id, { checkpoint: c, reason: 'maxTotalBytes' });
      total -= c.bytes;
    }
  }
  return newestFirst.filter((c) => chosen.has(c.id)).reverse().map((c) => chosen.get(c.id)!);
}
