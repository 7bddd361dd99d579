import type { Job } from 'bullmq';
import type { EventLog } from '../src/events/event-log.js';
import type { EventData, EventInput, EventName } from '../src/events/types.js';
import { targetKeyOf, type JobProgress } from '../src/queue/job-view.js';
import type { JobType } from '../src/common/job-kinds.js';
import { CRIU_ERROR, type LogLines } from './criu-log-tailer.js';

export interface JobReporterOptions {
  job: Job;
  eventLog: EventLog;
  /** Lines per job.log event at most; more in one batch are counted as dropped (error lines are kept first). */
  maxLinesPerEvent: number;
  /** Progress is written at most this often, except when the stage changes. */
  progressIntervalMs: number;
}

/**
 * What one job tells the world while it runs: progress (BullMQ's job progress and job.progress events, throttled),
 * CRIU's log lines (as bounded job.log events, and into BullMQ's job log: all of them, or what the caller keeps of
 * them, see bounded-criu-log.ts) and the job's other events,
 * each carrying jobId, jobType, scheduleId and target.
 */
export class JobReporter {
  private current: JobProgress = { stage: 'starting', percent: 0, bytesWritten: 0, bytesExpected: 0 };
  private lastWritten = 0;
  private pending?: NodeJS.Timeout;
  private writing: Promise<void> = Promise.resolve();

  constructor(private readonly options: JobReporterOptions) {}

  get progressNow(): JobProgress {
    return this.current;
  }

  async publish<E extends EventName>(event: E, data: EventData[E]): Promise<void> {
    await this.options.eventLog.publish(jobEvent(this.options.job, event, data));
  }

  /** A free-form line in the job's log (attempt headers, ckpt's own notes), not sent as an event. */
  async note(line: string): Promise<void> {
    await this.options.job.log(line);
  }

  /** A batch of CRIU log lines: all into the job log (`prefix` before each), and a job.log event (see logEvent). */
  async logLines(lines: LogLines, prefix = ''): Promise<void> {
    if (!lines.count) return;
    // Two connections, no order between them to keep; the caller waits for both before its next batch.
    await Promise.all([this.options.job.log(lines.all().map((l) => prefix + l).join('\n')), this.logEvent(lines, prefix)]);
  }

  /** A batch of CRIU log lines as one job.log event: at most maxLinesPerEvent of them, the rest counted as dropped. */
  async logEvent(lines: LogLines, prefix = ''): Promise<void> {
    if (!lines.count) return;
    const sent = pickLines(lines, this.options.maxLinesPerEvent).map((i) => prefix + lines.line(i));
    await this.publish('job.log', { lines: sent, dropped: lines.count - sent.length });
  }

  /**
   * Merges a progress update. A new stage is written at once; other changes at most every progressIntervalMs
   * (the latest wins). Percent never goes backwards within a job.
   */
  progress(update: Partial<JobProgress>): void {
    const next = { ...this.current, ...update };
    next.percent = Math.max(this.current.percent, Math.min(100, Math.round(next.percent)));
    const stageChanged = next.stage !== this.current.stage;
    // A sample that changes nothing (a small dump's page images not written yet) is not worth two round trips.
    const same = next.percent === this.current.percent && next.bytesWritten === this.current.bytesWritten && next.bytesExpected === this.current.bytesExpected;
    if (!stageChanged && same) return;
    this.current = next;
    if (stageChanged) {
      this.writeNow();
      return;
    }
    if (this.pending) return;
    const wait = Math.max(0, this.lastWritten + this.options.progressIntervalMs - Date.now());
    this.pending = setTimeout(() => this.writeNow(), wait);
  }

  /** Writes pending progress and waits for every write so far (call before the job ends). */
  async flush(): Promise<void> {
    if (this.pending) this.writeNow();
    await this.writing;
  }

  private writeNow(): void {
    clearTimeout(this.pending);
    this.pending = undefined;
    this.lastWritten = Date.now();
    const snapshot = { ...this.current };
    // Chained: progress events stay in order even when Redis is slow. Each starts on a later turn of the event loop:
    // a stage reported from inside CRIU's NOTIFY is answered first (CRIU waits for that answer, not for Redis).
    this.writing = this.writing.then(nextTurn).then(async () => {
      try {
        // Two connections with no order between them to keep: one round trip, not two (the last one, `done`, is on
        // every job's way to completed). The events stay in order: each write starts after the previous one.
        await Promise.all([this.options.job.updateProgress(snapshot), this.publish('job.progress', { ...snapshot })]);
      } catch {
        // Progress is best effort: the job goes on when Redis hiccups.
      }
    });
  }
}

/**
 * An event about `job`, with jobId, jobType, scheduleId and target (the target key: a restore's from enqueue time,
 * a dump's once the worker has resolved it; the job's data holds both, so every event of the job agrees).
 */
export function jobEvent<E extends EventName>(job: Job, event: E, data: EventData[E]): EventInput<E> {
  return {
    event,
    jobId: job.id!,
    jobType: job.name as JobType,
    scheduleId: (job.data as { scheduleId?: string }).scheduleId,
    target: targetKeyOf(job),
    data,
  } as EventInput<E>;
}

/** The target for people: its key once resolved, else the spec as asked (`pid 4242`, `match train.py`). */
export function targetText(job: Job): string {
  const key = targetKeyOf(job);
  if (key) return key;
  const spec = (job.data as { target?: Record<string, unknown> }).target;
  return spec ? Object.entries(spec).map(([k, v]) => `${k} ${String(v)}`).join(' ') : 'none';
}

function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** The indexes of `max` lines of a batch, in order: CRIU's error lines first (they explain failures), then the latest. */
function pickLines(lines: LogLines, max: number): number[] {
  if (lines.count <= max) return Array.from({ length: lines.count }, (_, i) => i);
  const keep = new Set(lines.linesWith(CRIU_ERROR).slice(0, max));
  for (let i = lines.count - 1; i >= 0 && keep.size < max; i--) keep.add(i);
  return [...keep].sort((a, b) => a - b);
}
