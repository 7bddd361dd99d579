import type { Job } from './api-client.js';
import type { CliContext } from './context.js';
import type { FeedClient, FeedEventMessage } from './feed-client.js';
import { formatDuration } from './format.js';
import type { ProgressView } from './progress-view.js';

export interface JobOutcome {
  id: string;
  state: 'completed' | 'failed';
  /** The job as the API reports it once finished (falls back to what the feed said if it is gone already). */
  job: Job;
}

const TERMINAL = new Set(['completed', 'failed']);

/**
 * Follows jobs to their end through the feed. It subscribes BEFORE the jobs are enqueued (open(), then enqueue, then
 * wait()), buffering job events meanwhile, so even a job that finishes before the enqueue call returns is seen.
 * A job that is already finished when wait() starts (an idempotent enqueue can return an old job) is found by asking
 * the API once; after a feed `reset` (history lost) the API is asked again.
 */
export class JobWatcher {
  private feed?: FeedClient;
  private buffered: FeedEventMessage[] = [];
  private watched?: Map<string, { done: boolean; lastEvent?: FeedEventMessage }>;
  private settle?: () => void;
  private fail?: (err: Error) => void;
  /** The feed gave up before wait() began. */
  private failure?: Error;

  private constructor(
    private readonly ctx: CliContext,
    private readonly view: ProgressView,
  ) {}

  static async open(ctx: CliContext, view: ProgressView): Promise<JobWatcher> {
    const w = new JobWatcher(ctx, view);
    w.feed = ctx.feed({
      channels: ['job'],
      onEvent: (e) => w.onEvent(e),
      onReset: () => void w.recheck(),
      onStatus: (s) => {
        if (s.state === 'reconnecting') view.log(`feed connection lost (${s.reason}); reconnecting`);
      },
      onServerError: (err) => view.log(`feed: ${err.message}`),
      onGiveUp: (err) => {
        w.failure = err;
        w.fail?.(err);
      },
    });
    await w.feed.start();
    return w;
  }

  /** Resolves when every job in `jobIds` has completed or finally failed. */
  async wait(jobIds: string[], labels: Record<string, string> = {}): Promise<JobOutcome[]> {
    this.watched = new Map(jobIds.map((id) => [id, { done: false }]));
    for (const id of jobIds) this.view.add(id, labels[id] ?? `job ${id}`);
    const finished = new Promise<void>((resolve, reject) => {
      this.settle = resolve;
      this.fail = reject;
    });
    if (this.failure) this.fail!(this.failure);
    const early = this.buffered;
    this.buffered = [];
    for (const e of early) this.onEvent(e);
    await this.recheck();
    try {
      await finished;
    } finally {
      this.view.stop();
      this.close();
    }
    return Promise.all(jobIds.map((id) => this.outcome(id)));
  }

  close(): void {
    this.feed?.close();
  }

  private onEvent(e: FeedEventMessage): void {
    if (!this.watched) {
      this.buffered.push(e);
      return;
    }
    const w = e.jobId ? this.watched.get(e.jobId) : undefined;
    if (!w || w.done || !e.jobId) return;
    const id = e.jobId;
    const d = e.data ?? {};
    switch (e.event) {
      case 'job.waiting':
        this.view.update(id, { state: 'waiting' });
        break;
      case 'job.active':
        this.view.update(id, { state: 'active' });
        break;
      case 'job.progress':
        this.view.update(id, { state: 'active', progress: d });
        break;
      case 'job.retrying':
        this.view.note(id, `retrying (attempt ${d.attempt ?? '?'}${d.delayMs ? ` in ${formatDuration(d.delayMs)}` : ''}): ${d.reason ?? ''}`.trimEnd());
        this.view.update(id, { state: 'waiting' });
        break;
      case 'job.stalled':
        this.view.note(id, 'stalled (its worker went away); it will be picked up again');
        break;
      case 'job.failed':
        if (d.final === false) {
          this.view.note(id, `attempt ${d.attemptsMade ?? '?'} failed: ${d.reason ?? ''}`);
          break;
        }
        this.finish(id, e, 'failed');
        break;
      case 'job.completed':
        this.finish(id, e, 'completed');
        break;
      default:
        break;
    }
  }

  private finish(id: string, e: FeedEventMessage | undefined, state: 'completed' | 'failed'): void {
    const w = this.watched?.get(id);
    if (!w || w.done) return;
    w.done = true;
    w.lastEvent = e;
    this.view.update(id, { state });
    if ([...this.watched!.values()].every((x) => x.done)) this.settle?.();
  }

  /** Asks the API about every job not finished yet: catches jobs that ended before we could see their events. */
  private async recheck(): Promise<void> {
    if (!this.watched) return;
    for (const [id, w] of this.watched) {
      if (w.done) continue;
      try {
        const job = await this.ctx.client.getJob(id);
        if (TERMINAL.has(job.state)) this.finish(id, undefined, job.state as 'completed' | 'failed');
      } catch (err) {
        this.fail?.(err as Error);
      }
    }
  }

  private async outcome(id: string): Promise<JobOutcome> {
    const w = this.watched!.get(id)!;
    try {
      const job = await this.ctx.client.getJob(id);
      if (TERMINAL.has(job.state)) return { id, state: job.state as JobOutcome['state'], job };
    } catch {
      // Removed already (retention of finished jobs): what the feed said is all there is.
    }
    const e = w.lastEvent;
    const state = e?.event === 'job.completed' ? 'completed' : 'failed';
    const d = e?.data ?? {};
    // Only what the final event carried; node, data and progress are not known any more.
    const job = { id, type: e?.jobType ?? 'dump', state, result: d.result, failedReason: d.reason, attemptsMade: d.attemptsMade ?? 0 };
    return { id, state, job: job as Job };
  }
}
