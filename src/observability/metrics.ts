import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { eventData, type EventData, type EventName, type FeedEvent } from '../events/types.js';
import type { JobCount } from '../common/job-kinds.js';
import type { HealthChecks } from './health.js';
import type { Inventory } from './inventory.js';

/**
 * Prometheus metrics for GET /metrics. Everything about jobs and schedules is learned from the event stream (follow a
 * tailer), so data flows one way: workers/scheduler -> events -> metrics. Only two values are read at scrape time,
 * through callbacks: job counts by state (they live in the queue) and the number of feed clients.
 *
 * Event data read here (the producers' conventions):
 *   job.completed  data.result.{durationMs, bytes (dumps), stats.frozenTimeUs}   (also accepted directly under data)
 *   job.failed     data.{durationMs, final}                               (duration observed when final)
 *   schedule.fired data.lagMs
 * Several API processes each follow the whole stream, so each reports cluster-wide event-derived values: scrape one.
 *
 * Label sets stay bounded: `schedule` takes only ids of schedules that exist (series of a deleted schedule go at the
 * next scrape); `target` takes at most `maxTargets` values per metric: the catalog's targets with the newest
 * checkpoints, and for event-derived series the targets seen most recently (the least recently seen is dropped).
 */

export interface MetricsOptions {
  /** Jobs by type and state, read at each scrape (e.g. from the queue). */
  collectJobCounts: () => Promise<JobCount[]>;
  /** Connected feed clients, read at each scrape. Default: metric reports 0. */
  countFeedClients?: () => number;
  /** Also export Node's process metrics (RSS, CPU, event loop lag, GC). Default true. */
  defaultMetrics?: boolean;
  /** Checkpoints per target and schedule, schedule health, read at each scrape. Default: no such samples. */
  collectInventory?: () => Promise<Inventory>;
  /** The /healthz checks, run at each scrape (ckpt_dependency_up, ckpt_storage_free_bytes). Default: no such samples. */
  checkHealth?: () => Promise<HealthChecks>;
  /** Most `target` label values per metric. Default 200. */
  maxTargets?: number;
  /** Called when a collect callback fails; the scrape still succeeds, without those samples. Default: ignored. */
  onError?: (err: Error) => void;
}

/** Anything that hands out batches of events, e.g. the feed's EventTailer. */
export interface EventSource {
  onEvents(listener: (events: FeedEvent[]) => void): () => void;
}

export interface Metrics {
  registry: Registry;
  jobs: Gauge<'type' | 'state'>;
  jobDuration: Histogram<'type' | 'outcome'>;
  bytesWritten: Counter;
  frozenTime: Histogram<'type'>;
  scheduleLag: Histogram;
  feedClients: Gauge;
  events: Counter<'event'>;
  jobOutcomes: Counter<'type' | 'outcome'>;
  /** Updates the metrics from a batch of events. */
  observe(events: readonly FeedEvent[]): void;
  /** Observes every event `source` hands out from now on; returns the function that stops it. */
  follow(source: EventSource): () => void;
  /** The exposition text for GET /metrics, and its content type. */
  metricsText(): Promise<string>;
  readonly contentType: string;
}

const DURATION_BUCKETS_S = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];
const FROZEN_BUCKETS_S = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const LAG_BUCKETS_S = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

export function createMetrics(options: MetricsOptions): Metrics {
  const registry = new Registry();
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });
  const registers = [registry];

  const jobs = new Gauge({
    name: 'ckpt_jobs',
    help: 'Jobs by type and state',
    labelNames: ['type', 'state'] as const,
    registers,
    async collect() {
      this.reset();
      try {
        for (const row of await options.collectJobCounts()) this.set({ type: row.type, state: row.state }, row.count);
      } catch (err) {
        options.onError?.(err as Error);
      }
    },
  });
  const jobDuration = new Histogram({
    name: 'ckpt_job_duration_seconds',
    help: 'Job run time by type and outcome (completed, failed: final failures only)',
    labelNames: ['type', 'outcome'] as const,
    buckets: DURATION_BUCKETS_S,
    registers,
  });
  const bytesWritten = new Counter({
    name: 'ckpt_bytes_written_total',
    help: 'Bytes of checkpoint images written by completed dump jobs',
    registers,
  });
  const frozenTime = new Histogram({
    name: 'ckpt_criu_frozen_seconds',
    help: 'How long CRIU kept the target frozen, per completed job',
    labelNames: ['type'] as const,
    buckets: FROZEN_BUCKETS_S,
    registers,
  });
  const scheduleLag = new Histogram({
    name: 'ckpt_schedule_lag_seconds',
    help: 'Delay between a schedule tick and the enqueue of its job',
    buckets: LAG_BUCKETS_S,
    registers,
  });
  const feedClients = new Gauge({
    name: 'ckpt_feed_clients',
    help: 'Connected WebSocket feed clients',
    registers,
    collect() {
      this.set(options.countFeedClients?.() ?? 0);
    },
  });
  const events = new Counter({
    name: 'ckpt_events_total',
    help: 'Events seen on the event stream, by name',
    labelNames: ['event'] as const,
    registers,
  });

  const jobOutcomes = new Counter({
    name: 'ckpt_job_outcomes_total',
    help: 'Job outcomes counted from events: completed, failed (final), retried (a failed attempt that is retried), stalled, cancelled',
    labelNames: ['type', 'outcome'] as const,
    registers,
  });

  function observeOne(e: FeedEvent): void {
    events.inc({ event: e.event });
    const type = e.jobType ?? 'unknown';
    fleet.observe(e);
    if (e.event === 'job.completed') jobOutcomes.inc({ type, outcome: 'completed' });
    if (e.event === 'job.failed') jobOutcomes.inc({ type, outcome: isFinalFailure(e) ? 'failed' : 'retried' });
    if (e.event === 'job.stalled') jobOutcomes.inc({ type, outcome: 'stalled' });
    if (e.event === 'job.cancelled') jobOutcomes.inc({ type, outcome: 'cancelled' });
    switch (e.event) {
      case 'job.completed': {
        const result = isRecord(e.data.result) ? e.data.result : e.data;
        const durationMs = numberAt(result, 'durationMs');
        const bytes = numberAt(result, 'bytes');
        const frozenUs = isRecord(result.stats) ? numberAt(result.stats, 'frozenTimeUs') : undefined;
        if (durationMs !== undefined) jobDuration.observe({ type, outcome: 'completed' }, durationMs / 1000);
        // Only dumps write images; a restore's byte count (if any) is what it read.
        if (bytes !== undefined && e.jobType === 'dump') bytesWritten.inc(bytes);
        if (frozenUs !== undefined) frozenTime.observe({ type }, frozenUs / 1e6);
        break;
      }
      case 'job.failed': {
        const durationMs = numberIn(e, 'job.failed', 'durationMs');
        if (isFinalFailure(e) && durationMs !== undefined) jobDuration.observe({ type, outcome: 'failed' }, durationMs / 1000);
        break;
      }
      case 'schedule.fired': {
        const lagMs = numberIn(e, 'schedule.fired', 'lagMs');
        if (lagMs !== undefined) scheduleLag.observe(lagMs / 1000);
        break;
      }
    }
  }

  const fleet = createFleetMetrics(registers, options);

  const observe = (batch: readonly FeedEvent[]): void => {
    for (const e of batch) observeOne(e);
  };

  return {
    registry,
    jobs,
    jobDuration,
    bytesWritten,
    frozenTime,
    scheduleLag,
    feedClients,
    events,
    jobOutcomes,
    observe,
    follow: (source) => source.onEvents(observe),
    metricsText: async () => {
      await fleet.collect();
      return registry.metrics();
    },
    contentType: registry.contentType,
  };
}

/**
 * Per target and per schedule: what the catalog and the schedules hold (read at scrape), and what events tell
 * (frozen time, last success, failures in a row).
 */
function createFleetMetrics(registers: Registry[], options: MetricsOptions) {
  const maxTargets = options.maxTargets ?? 200;
  const gauge = <L extends string>(name: string, help: string, labelNames: readonly L[]) =>
    new Gauge<L>({ name, help, labelNames, registers });

  const targetCheckpoints = gauge('ckpt_target_checkpoints', 'Checkpoints kept in the catalog per target', ['target']);
  const targetBytes = gauge('ckpt_target_bytes', 'Bytes of checkpoints kept per target', ['target']);
  const targetLastSuccess = gauge('ckpt_target_last_success_timestamp_seconds', 'When the newest checkpoint of the target was made', ['target']);
  const targetAge = gauge('ckpt_target_newest_checkpoint_age_seconds', 'Age of the newest checkpoint of the target', ['target']);
  const targetFailures = gauge('ckpt_target_consecutive_failures', 'Dump jobs of the target that failed for good since its last checkpoint (since this process started)', ['target']);
  const targetFrozen = new Histogram({
    name: 'ckpt_target_frozen_seconds',
    help: 'How long CRIU kept the target frozen, per completed dump',
    labelNames: ['target'] as const,
    buckets: FROZEN_BUCKETS_S,
    registers,
  });
  const scheduleHealthy = gauge('ckpt_schedule_healthy', '1 when the schedule is healthy, 0 after scheduler.unhealthyAfter failures in a row', ['schedule']);
  const scheduleFailures = gauge('ckpt_schedule_consecutive_failures', 'Failures of the schedule in a row (target, enqueue or dump)', ['schedule']);
  const scheduleCheckpoints = gauge('ckpt_schedule_checkpoints', 'Checkpoints kept per schedule', ['schedule']);
  const scheduleBytes = gauge('ckpt_schedule_bytes', 'Bytes of checkpoints kept per schedule', ['schedule']);
  const scheduleLastSuccess = gauge('ckpt_schedule_last_success_timestamp_seconds', 'When the newest checkpoint of the schedule was made (its creation while it has none)', ['schedule']);
  const scheduleAge = gauge('ckpt_schedule_newest_checkpoint_age_seconds', 'Age of the newest checkpoint of the schedule (time since its creation while it has none)', ['schedule']);
  const scheduleInterval = gauge('ckpt_schedule_interval_seconds', 'Time between the next two runs of the schedule; absent while it does not run', ['schedule']);
  const scheduleFrozen = new Histogram({
    name: 'ckpt_schedule_frozen_seconds',
    help: 'How long CRIU kept the target frozen, per completed dump of the schedule',
    labelNames: ['schedule'] as const,
    buckets: FROZEN_BUCKETS_S,
    registers,
  });
  const dependencyUp = gauge('ckpt_dependency_up', '1 when the health check of a dependency (redis, criu, storage) passes', ['dependency']);
  const storageFree = gauge('ckpt_storage_free_bytes', 'Free bytes on the storage root', []);

  /** Targets with event-derived series, least recently seen first (a Map keeps insertion order). */
  const seen = new Map<string, { failures: number }>();
  const touch = (target: string) => {
    const entry = seen.get(target) ?? { failures: 0 };
    seen.delete(target);
    seen.set(target, entry);
    while (seen.size > maxTargets) {
      const oldest = seen.keys().next().value!;
      seen.delete(oldest);
      targetFailures.remove({ target: oldest });
      targetFrozen.remove({ target: oldest });
    }
    return entry;
  };
  /** Schedules with a frozen-time series; one whose schedule no longer exists goes at the next scrape. */
  const framedSchedules = new Set<string>();

  function observe(e: FeedEvent): void {
    if (e.jobType !== 'dump') return;
    if (e.event === 'job.completed') {
      const result = isRecord(e.data.result) ? e.data.result : e.data;
      if (result.skipped === true) return;
      const frozenUs = isRecord(result.stats) ? numberAt(result.stats, 'frozenTimeUs') : undefined;
      if (e.target !== undefined) {
        touch(e.target).failures = 0;
        targetFailures.set({ target: e.target }, 0);
        if (frozenUs !== undefined) targetFrozen.observe({ target: e.target }, frozenUs / 1e6);
      }
      if (e.scheduleId !== undefined && frozenUs !== undefined) {
        framedSchedules.add(e.scheduleId);
        scheduleFrozen.observe({ schedule: e.scheduleId }, frozenUs / 1e6);
      }
    } else if (isFinalFailure(e) && e.target !== undefined) {
      const entry = touch(e.target);
      entry.failures++;
      targetFailures.set({ target: e.target }, entry.failures);
    }
  }

  async function collect(): Promise<void> {
    const [inventory, health] = await Promise.all([
      options.collectInventory?.().catch((err: Error) => void options.onError?.(err)),
      options.checkHealth?.().catch((err: Error) => void options.onError?.(err)),
    ]);
    const now = Date.now();
    if (inventory) {
      for (const g of [targetCheckpoints, targetBytes, targetLastSuccess, targetAge]) g.reset();
      const newest = [...inventory.targets].sort((a, b) => b.newestAt - a.newestAt).slice(0, maxTargets);
      for (const t of newest) {
        const labels = { target: t.target };
        targetCheckpoints.set(labels, t.checkpoints);
        targetBytes.set(labels, t.bytes);
        targetLastSuccess.set(labels, t.newestAt / 1000);
        targetAge.set(labels, Math.max(0, now - t.newestAt) / 1000);
      }
      for (const g of [scheduleHealthy, scheduleFailures, scheduleCheckpoints, scheduleBytes, scheduleLastSuccess, scheduleAge, scheduleInterval]) g.reset();
      const ids = new Set(inventory.schedules.map((s) => s.schedule));
      for (const id of framedSchedules) {
        if (ids.has(id)) continue;
        framedSchedules.delete(id);
        scheduleFrozen.remove({ schedule: id });
      }
      for (const s of inventory.schedules) {
        const labels = { schedule: s.schedule };
        scheduleHealthy.set(labels, s.healthy ? 1 : 0);
        scheduleFailures.set(labels, s.consecutiveFailures);
        scheduleCheckpoints.set(labels, s.checkpoints);
        scheduleBytes.set(labels, s.bytes);
        scheduleLastSuccess.set(labels, s.newestAt / 1000);
        scheduleAge.set(labels, Math.max(0, now - s.newestAt) / 1000);
        if (s.intervalSeconds !== undefined) scheduleInterval.set(labels, s.intervalSeconds);
      }
    }
    if (health) {
      dependencyUp.reset();
      for (const [name, check] of Object.entries(health)) dependencyUp.set({ dependency: name }, check.ok ? 1 : 0);
      const free = health.storage?.freeBytes;
      if (typeof free === 'number') storageFree.set(free);
    }
  }

  return { observe, collect };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A finite, non-negative number at `key`, else undefined (bad producer data must not break metrics). */
/**
 * A number of a `name` event's data, by a key EventData names (so a renamed field fails to compile here); the value is
 * checked all the same, since anything that can write to the stream can publish.
 */
function numberIn<E extends EventName>(e: FeedEvent, name: E, key: keyof EventData[E] & string): number | undefined {
  const data = eventData(e, name);
  return data ? numberAt(data as Record<string, unknown>, key) : undefined;
}

/** A job.failed that ends the job (not one followed by a retry). */
function isFinalFailure(e: FeedEvent): boolean {
  return eventData(e, 'job.failed')?.final === true;
}

function numberAt(obj: Record<string, unknown>, key: string): number | undefined {
  const v = obj[key];
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : undefined;
}
