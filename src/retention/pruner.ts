import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { EventLog } from '../events/event-log.js';
import { LeaseSemaphore } from '../queue/lease-semaphore.js';
import { planRetention, type PruneReason, type RetainedCheckpoint } from './plan.js';
import type { Retention } from './schema.js';

/** A checkpoint as the catalog lists it, with what the pruner reads besides the plan's fields. */
type ListedCheckpoint = RetainedCheckpoint & { target?: { key: string }; scheduleId?: string };

/** What the pruner needs from the catalog (src/catalog's Catalog provides it). */
export interface RetentionCatalog {
  /** A schedule's or a target's checkpoints (any order; `limit: Infinity` for all). */
  list(filter: { scheduleId?: string; targetKey?: string; limit: number }): Promise<ListedCheckpoint[]>;
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
  /** config storage.retention: applied per target to the checkpoints no schedule made (manual dumps). None: kept. */
  unscheduled?: Retention;
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

/** Whose checkpoints one prune looks at: a schedule's, or a target's that no schedule made. */
type PruneScope = { scheduleId: string } | { unscheduledOf: string };

/**
 * Applies retention to checkpoints in the catalog: a schedule's own retention to its checkpoints, and
 * storage.retention to each target's checkpoints that no schedule made. One pruner at a time across all processes
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
    return retention ? this.locked(() => this.prune({ scheduleId }, retention)) : [];
  }

  /** Applies storage.retention to the target's checkpoints that no schedule made (nothing when it is not set). */
  async pruneUnscheduled(targetKey: string): Promise<PrunedCheckpoint[]> {
    const retention = this.options.unscheduled;
    return retention ? this.locked(() => this.prune({ unscheduledOf: targetKey }, retention)) : [];
  }

  /** Prunes every schedule that has retention, and every target under storage.retention (after a start, to catch up). */
  async pruneAll(): Promise<PrunedCheckpoint[]> {
    const removed: PrunedCheckpoint[] = [];
    for (const id of await this.options.schedulesWithRetention()) removed.push(...(await this.pruneSchedule(id)));
    if (this.options.unscheduled) {
      const all = await this.options.catalog.list({ limit: Infinity });
      const targets = new Set(all.flatMap((c) => (!c.scheduleId && c.target ? [c.target.key] : [])));
      for (const key of targets) removed.push(...(await this.pruneUnscheduled(key)));
    }
    return removed;
  }

  private async locked(prune: () => Promise<PrunedCheckpoint[]>): Promise<PrunedCheckpoint[]> {
    const { lease } = await this.lock.acquire(this.options.owner, { waitMs: this.lockTtlMs, pollMs: 50 });
    if (!lease) throw new Error(`pruner lock ${this.lock.key} not acquired: another process has held it too long`);
    try {
      return await prune();
    } finally {
      await lease.release();
    }
  }

  private async prune(scope: PruneScope, retention: Retention): Promise<PrunedCheckpoint[]> {
    const { catalog, eventLog, logger } = this.options;
    const scheduleId = 'scheduleId' in scope ? scope.scheduleId : undefined;
    const [whose, checkpoints] =
      'scheduleId' in scope
        ? [`schedule ${scope.scheduleId}`, await catalog.list({ scheduleId: scope.scheduleId, limit: Infinity })]
        : [
            `target ${scope.unscheduledOf} (no schedule)`,
            (await catalog.list({ targetKey: scope.unscheduledOf, limit: Infinity })).filter((c) => !c.scheduleId),
          ];
    const busy = new Set<string>();
    for (const c of checkpoints) if (!c.pinned && (await catalog.isInUse(c.id))) busy.add(c.id);
    const removed: PrunedCheckpoint[] = [];
    for (const { checkpoint: c, reason } of planRetention(checkpoints, retention, busy)) {
      try {
        await catalog.delete(c.id);
      } catch (err) {
        const code = (err as { code?: string }).code;
        // Pinned or taken by a restore since we listed, or deleted by someone else: not ours to remove now.
        // EUNSAFE_PATH: its folder leads out of the storage root; kept, and said so, until someone looks at it.
        if (code === 'EPINNED' || code === 'EINUSE' || code === 'ECHECKPOINT_NOT_FOUND' || code === 'EUNSAFE_PATH') {
          logger.info({ scheduleId, checkpointId: c.id, code }, `retention kept checkpoint ${c.id} of ${whose}: ${(err as Error).message}`);
          continue;
        }
        throw err;
      }
      removed.push({ checkpointId: c.id, bytes: c.bytes, reason });
      await eventLog.publish({
        event: 'checkpoint.pruned',
        ...(scheduleId ? { scheduleId } : {}),
        ...(c.target?.key ? { target: c.target.key } : {}),
        data: { checkpointId: c.id, bytes: c.bytes, reason },
      });
      logger.info(
        { scheduleId, checkpointId: c.id, bytes: c.bytes, reason },
        `pruned checkpoint ${c.id} of ${whose} (${describe(reason, retention)}): freed ${c.bytes} bytes`,
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
