import type { Redis } from 'ioredis';
import { compareEventIds } from '../events/event-log.js';

/**
 * Whether the stream still holds every event after `afterId`; if not, why (the reason goes into the feed's `reset`).
 *
 * Redis >= 7 reports the newest id it ever trimmed (max-deleted-entry-id), which answers exactly. Older servers only
 * tell the oldest kept id; then anything before it counts as trimmed, which may reset a client that missed nothing.
 */
export async function historyGapAfter(redis: Redis, streamKey: string, afterId: string): Promise<string | null> {
  let info: Map<string, unknown>;
  try {
    info = toMap((await redis.xinfo('STREAM', streamKey)) as unknown[]);
  } catch (err) {
    if (!/no such key/i.test((err as Error).message)) throw err;
    return compareEventIds(afterId, '0-0') === 0 ? null : `there is no event history (since ${afterId})`;
  }
  const lastGenerated = info.get('last-generated-id') as string;
  if (compareEventIds(afterId, lastGenerated) > 0) {
    return `since ${afterId} is newer than the newest event ${lastGenerated} (history was replaced)`;
  }
  const maxDeleted = info.get('max-deleted-entry-id') as string | undefined;
  const trimmedThrough = maxDeleted ?? oldestKeptPredecessor(info.get('first-entry'));
  if (trimmedThrough !== null && compareEventIds(afterId, trimmedThrough) < 0) {
    return `events after ${afterId} are no longer retained`;
  }
  return null;
}

function toMap(flat: unknown[]): Map<string, unknown> {
  const map = new Map<string, unknown>();
  for (let i = 0; i + 1 < flat.length; i += 2) map.set(String(flat[i]), flat[i + 1]);
  return map;
}

/** For Redis < 7: treat everything before the oldest kept event as possibly trimmed. */
function oldestKeptPredecessor(firstEntry: unknown): string | null {
  if (!Array.isArray(firstEntry)) return null;
  const [ms, seq] = String(firstEntry[0]).split('-');
  const s = BigInt(seq ?? '0');
  return s > 0n ? `${ms}-${s - 1n}` : `${BigInt(ms!) - 1n}-18446744073709551615`;
}
