/**
 * What the catalog and the schedules hold right now, summed per target and per schedule for the metrics. Read at each
 * scrape (state, not history): checkpoints kept, bytes kept, the newest checkpoint; schedule health.
 */

export interface TargetInventory {
  target: string;
  checkpoints: number;
  bytes: number;
  /** ms since the epoch: when the newest checkpoint was made. */
  newestAt: number;
}

export interface ScheduleInventory {
  schedule: string;
  healthy: boolean;
  consecutiveFailures: number;
  checkpoints: number;
  bytes: number;
  /** ms since the epoch: the newest checkpoint of the schedule, or when the schedule was created if it has none. */
  newestAt: number;
  /** Seconds between its next two runs; undefined while paused or disabled. */
  intervalSeconds?: number;
}

export interface Inventory {
  targets: TargetInventory[];
  schedules: ScheduleInventory[];
}

/** A catalogued checkpoint as far as the inventory cares. */
export interface CheckpointFacts {
  target: { key: string };
  bytes: number;
  created: string;
  scheduleId?: string;
}

/** A schedule as far as the inventory cares. */
export interface ScheduleFacts {
  id: string;
  createdAt: number;
  healthy: boolean;
  consecutiveFailures: number;
  intervalMs: number | null;
}

/** Sums checkpoints per target and per schedule; schedules without a checkpoint are listed too. */
export function summarize(checkpoints: readonly CheckpointFacts[], schedules: readonly ScheduleFacts[]): Inventory {
  const targets = new Map<string, TargetInventory>();
  const bySchedule = new Map<string, { checkpoints: number; bytes: number; newestAt: number }>();
  for (const c of checkpoints) {
    const at = Date.parse(c.created);
    const t = targets.get(c.target.key) ?? { target: c.target.key, checkpoints: 0, bytes: 0, newestAt: 0 };
    t.checkpoints++;
    t.bytes += c.bytes;
    t.newestAt = Math.max(t.newestAt, at);
    targets.set(c.target.key, t);
    if (c.scheduleId === undefined) continue;
    const s = bySchedule.get(c.scheduleId) ?? { checkpoints: 0, bytes: 0, newestAt: 0 };
    s.checkpoints++;
    s.bytes += c.bytes;
    s.newestAt = Math.max(s.newestAt, at);
    bySchedule.set(c.scheduleId, s);
  }
  return {
    targets: [...targets.values()],
    schedules: schedules.map((s) => {
      const kept = bySchedule.get(s.id);
      return {
        schedule: s.id,
        healthy: s.healthy,
        consecutiveFailures: s.consecutiveFailures,
        checkpoints: kept?.checkpoints ?? 0,
        bytes: kept?.bytes ?? 0,
        newestAt: kept?.newestAt ?? s.createdAt,
        ...(s.intervalMs !== null && { intervalSeconds: s.intervalMs / 1000 }),
      };
    }),
  };
}
