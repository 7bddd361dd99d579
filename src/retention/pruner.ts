import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { EventLog } from '../events/event-log.js';
import { LeaseSemaphore } from '../queue/lease-semaphore.js';
import { planRetention, type PruneReason, type RetainedCheckpoint } from './plan.js';
import type { Retention } from './schema.js';

/** What the pruner needs from the catalog (src/catalog's Catalog provides it). */
export interface RetentionCatalog {
  /** The schedule's checkpoints (any order; `limit: Infinity` for all). */
  list(filter: { schedule: string; limit: number }): Promise<(RetainedCheckpoint & { target?: { key: string } })[]>;
  /** Whether a waiting or active restore refers to it. */
  isInUse(id: string): Promise<boolean>;
  /** Removes it from the catalog and its files; throws (code EPINNED / EINUSE / ECHECKPOINT_NOT_FOUND) when it may not or is gone. */
  delete(id: string): Promise<unknown>;
}

export interface PrunerOptions {
  redis: Redis;
  /** config redis.prefix; the lock is `<prefix>:pruner:lock`. */
  prefix: string;
  catalog: RetentionCatalog;
  /** The retention of a schedule (null when it has none or is gone): src/scheduler's ScheduleStore knows it. */
  retentionOf(scheduleId: string): Promise<Retention | null>;
  /** Every schedule id with a retention (for a catch-up after a start). */
  schedulesWithRetention(): Promise<string[]>;
  eventLog: EventLog;
  logger: Logger;
  /** Identifies this process as the lock's holder. */
  owner: string;
  /** How long one prune may hold the lock before others may take it. Default 60 s. */
  lockTtlMs?: number;
}

export interface PrunedCheckpoint {
  checkpointId: string;
  bytes: number;
  reason: PruneReason;
}

/**
 * Applies a schedule's retention to its checkpoints in the catalog. One pruner at a time across all processes
 * (a Redis lease); each removal is a checkpoint.pruned event and a log line with what was removed and the bytes freed.
 */
export class Pruner {
  private readonly lock: LeaseSemaphore;
  private readonly lockTtlMs: number;

  constructor(private readonly options: PrunerOptions) {
    this.lockTtlMs = options.lockTtlMs ?? 60_000;
    this.lock = new LeaseSemaphore(options.redis, { key: `${options.prefix}:pruner:lock`, leaseMs: this.lockTtlMs });
  }

  /** Prunes one schedule (nothing when it has no retention or is gone). Waits for the lock up to its TTL. */
  async pruneSchedule(scheduleId: string): Promise<PrunedCheckpoint[]> {
    const retention = await this.options.retentionOf(scheduleId);
    if (!retention) return [];
    const { lease } = await this.lock.acquire(this.options.owner, { waitMs: this.lockTtlMs, pollMs: 50 });
    if (!lease) throw new Error(`pruner lock ${this.lock.key} not acquired: another process has held it too long`);
    try {
      return await this.prune(scheduleId, retention);
    } finally {
      await lease.release();
    }
  }

  /** Prunes every schedule that has retention (after a start, to catch up on what happened meanwhile). */
  async pruneAll(): Promise<PrunedCheckpoint[]> {
    const removed: PrunedCheckpoint[] = [];
    for (const id of await this.options.schedulesWithRetention()) removed.push(...(await this.pruneSchedule(id)));
    return removed;
  }

  private async prune(scheduleId: string, retention: Retention): Promise<PrunedCheckpoint[]> {
    const { catalog, eventLog, logger } = this.options;
    const checkpoints = await catalog.list({ schedule: scheduleId, limit: Infinity });
    const busy = new Set<string>();
    for (const c of checkpoints) if (!c.pinned && (await catalog.isInUse(c.id))) busy.add(c.id);
    const removed: PrunedCheckpoint[] = [];
    for (const { checkpoint: c, reason } of planRetention(checkpoints, retention, busy)) {
      try {
        await catalog.delete(c.id);
      } catch (err) {
        const code = (err as { code?: string }).code;
        // Pinned or taken by a restore since we listed, or deleted by someone else: not ours to remove now.
        if (code === 'EPINNED' || code === 'EINUSE' || code === 'ECHECKPOINT_NOT_FOUND') {
          logger.info({ scheduleId, checkpointId: c.id, code }, `retention kept checkpoint ${c.id} of schedule ${scheduleId}: ${(err as Error).message}`);
          continue;
        }
        throw err;
      }
      removed.push({ checkpointId: c.id, bytes: c.bytes, reason });
      await eventLog.publish({
        event: 'checkpoint.pruned',
        scheduleId,
        ...(c.target?.key ? { target: c.target.key } : {}),
        data: { checkpointId: c.id, bytes: c.bytes, reason },
      });
      logger.info(
        { scheduleId, checkpointId: c.id, bytes: c.bytes, reason },
        `pruned checkpoint ${c.id} of schedule ${scheduleId} (${describe(reason, retention)}): freed ${c.bytes} bytes`,
      );
    }
    return removed;
  }
}

function describe(reason: PruneReason, retention: Retention): string {
  if (reason === 'keepLast') return `keepLast ${retention.keepLast}`;
  if (reason === 'maxAge') return `older than maxAge ${retention.maxAge} ms`;
  return `over maxTotalBytes ${retention.maxTotalBytes}`;
}
