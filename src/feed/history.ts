import type { Redis } from 'ioredis';
import { compareEventIds } from '../events/event-log.js';

/**
 * Whether the stream still holds every event after `afterId`; if not, why (the reason goes into the feed's `reset`).
 *
 * Trimming keeps the newest events, so events after `afterId` are all there when `afterId` is at or after the one just
 * before the oldest kept event, or when nothing was ever trimmed (entries-added equals length, Redis >= 7). Otherwise we
 * cannot tell which ids were trimmed, and answer "gap": a client that missed nothing may get a needless reset, never a hole.
 */
export async function historyGapAfter(redis: Redis, streamKey: string, afterId: string): Promise<string | null> {
  let info: Map<string, unknown>;
  try {
    info = toMap((await redis.xinfo('STREAM', streamKey)) as unknown[]);
  } catch (err) {
    if (!/no such key/i.test((err as Error).message)) throw err;
    return compareEventIds(afterId, '0-0') === 0 ? null : `there is no event history (since ${afterId})`;
  }
  const lastGenerated = String(info.get('last-generated-id'));
  if (compareEventIds(afterId, lastGenerated) > 0) {
    return `since ${afterId} is newer than the newest event ${lastGenerated} (history was replaced)`;
  }
  const added = info.get('entries-added');
  const neverTrimmed = added !== undefined && Number(added) === Number(info.get('length'));
  if (neverTrimmed) return null;
  const firstEntry = info.get('first-entry');
  const oldestKept = Array.isArray(firstEntry) ? String(firstEntry[0]) : null;
  if (oldestKept === null ? compareEventIds(afterId, lastGenerated) < 0 : compareEventIds(afterId, predecessor(oldestKept)) < 0) {
    return `events after ${afterId} are no longer retained`;
  }
  return null;
}

function toMap(flat: unknown[]): Map<string, unknown> {
  const map = new Map<string, unknown>();
  for (let i = 0; i + 1 < flat.length; i += 2) map.set(String(flat[i]), flat[i + 1]);
  return map;
}

/** The greatest id below `id`: nothing can sit between the two. */
function predecessor(id: string): string {
  const [ms, seq = '0'] = id.split('-');
  const s = BigInt(seq);
  return s > 0n ? `${ms}-${s - 1n}` : `${BigInt(ms!) - 1n}-18446744073709551615`;
}
