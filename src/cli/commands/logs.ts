import type { Job } from '../api-client.js';
import type { CliContext } from '../context.js';
import { EXIT } from '../errors.js';
import type { FeedEventMessage } from '../feed-client.js';

/** Allowance for clocks: event ids are stamped by Redis, the job's createdAt by the host that enqueued it. */
const CLOCK_SKEW_MS = 60_000;

/**
 * `ckpt logs --follow`: the job's log lines as the feed carries them (job.log events), from its start until it ends.
 * Event ids are "<ms>-<seq>" on Redis' clock, so subscribing with `since` a little before the job was made replays every
 * line it logged so far, exactly once, and then goes live; the filter keeps only this job's events.
 * If that history was trimmed already (a `reset`), the log file is printed instead, and live lines follow it.
 * Ends with exit code 0 when the job completed, 1 when it failed.
 */
export function followJobLog(ctx: CliContext, job: Job): Promise<void> {
  const since = `${Math.max(0, job.createdAt - CLOCK_SKEW_MS)}-0`;
  const printLines = (lines: string[]) => {
    if (!lines.length) return;
    if (ctx.json) ctx.out(JSON.stringify({ jobId: job.id, lines }));
    else ctx.out(lines.join('\n'));
  };
  return new Promise<void>((resolve, reject) => {
    const end = (e: FeedEventMessage) => {
      feed.close();
      if (e.event === 'job.failed') {
        ctx.err(`ckpt: ${job.type} job ${job.id} failed: ${String(e.data.reason ?? '').split('\n')[0]}`);
        process.exitCode = EXIT.failed;
      } else {
        ctx.err(`${job.type} job ${job.id} completed`);
      }
      resolve();
    };
    const feed = ctx.feed({
      channels: ['job'],
      filter: { jobId: job.id },
      since,
      onEvent: (e) => {
        if (e.event === 'job.log') printLines(Array.isArray(e.data.lines) ? e.data.lines.map(String) : []);
        else if (e.event === 'job.completed' || (e.event === 'job.failed' && e.data.final !== false)) end(e);
      },
      onReset: () => {
        ctx.client.getJobLog(job.id).then((text) => printLines(text.split('\n').filter(Boolean)), reject);
      },
      onServerError: (err) => ctx.err(`ckpt: feed: ${err.message}`),
      onGiveUp: reject,
    });
    feed.start().catch(reject);
  });
}
