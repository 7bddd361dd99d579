import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { FeedEvent } from '../events/types.js';

/**
 * Prometheus metrics for GET /metrics. Everything about jobs and schedules is learned from the event stream (follow a
 * tailer), so data flows one way: workers/scheduler -> events -> metrics. Only two values are read at scrape time,
 * through callbacks: job counts by state (they live in the queue) and the number of feed clients.
 *
 * Event data read here (the producers' conventions):
 *   job.completed  data.result.{durationMs, bytes (dumps), stats.frozenTimeUs}   (also accepted directly under data)
 *   job.failed     data.{durationMs?, final}                              (duration observed when final)
 *   schedule.fired data.lagMs
 * Several API processes each follow the whole stream, so each reports cluster-wide event-derived values: scrape one.
 */

export interface JobCount {
  type: string;
  state: string;
  count: number;
}

export interface MetricsOptions {
  /** Jobs by type and state, read at each scrape (e.g. from the queue). */
  collectJobCounts: () => Promise<JobCount[]>;
  /** Connected feed clients, read at each scrape. Default: metric reports 0. */
  countFeedClients?: () => number;
  /** Also export Node's process metrics (RSS, CPU, event loop lag, GC). Default true. */
  defaultMetrics?: boolean;
  /** Called when collectJobCounts fails; the scrape still succeeds, without ckpt_jobs samples. Default: ignored. */
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

  function observeOne(e: FeedEvent): void {
    events.inc({ event: e.event });
    const type = e.jobType ?? 'unknown';
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
        const durationMs = numberAt(e.data, 'durationMs');
        if (e.data.final === true && durationMs !== undefined) jobDuration.observe({ type, outcome: 'failed' }, durationMs / 1000);
        break;
      }
      case 'schedule.fired': {
        const lagMs = numberAt(e.data, 'lagMs');
        if (lagMs !== undefined) scheduleLag.observe(lagMs / 1000);
        break;
      }
    }
  }

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
    observe,
    follow: (source) => source.onEvents(observe),
    metricsText: () => registry.metrics(),
    contentType: registry.contentType,
  };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A finite, non-negative number at `key`, else undefined (bad producer data must not break metrics). */
function numberAt(obj: Record<string, unknown>, key: string): number | undefined {
  const v = obj[key];
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : undefined;
}
