import type { Redis } from 'ioredis';
import { EventId } from '../events/event-id.js';

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
    return EventId.compare(afterId, '0-0') === 0 ? null : `there is no event history (since ${afterId})`;
  }
  const after = EventId.parse(afterId);
  const lastGenerated = EventId.parse(String(info.get('last-generated-id')));
  if (after.isAfter(lastGenerated)) {
    return `since ${afterId} is newer than the newest event ${lastGenerated} (history was replaced)`;
  }
  const added = info.get('entries-added');
  const neverTrimmed = added !== undefined && Number(added) === Number(info.get('length'));
  if (neverTrimmed) return null;
  const firstEntry = info.get('first-entry');
  const oldestKept = Array.isArray(firstEntry) ? EventId.parse(String(firstEntry[0])) : null;
  if ((oldestKept === null ? lastGenerated : oldestKept.predecessor()).isAfter(after)) {
    return `events after ${afterId} are no longer retained`;
  }
  return null;
}

function toMap(flat: unknown[]): Map<string, unknown> {
  const map = new Map<string, unknown>();
  for (let i = 0; i + 1 < flat.length; i += 2) map.set(String(flat[i]), flat[i + 1]);
  return map;
}

