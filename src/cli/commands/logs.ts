import type { Job } from '../api-client.js';
import type { CliContext } from '../context.js';
import { EXIT } from '../errors.js';

/** Allowance for clocks: event ids are stamped by Redis, the job's createdAt by the host that enqueued it. */
const CLOCK_SKEW_MS = 60_000;

/**
 * `ckpt logs --follow`: the job's log, live, until the job ends (exit 0 when it completed, 1 when it failed).
 *
 * The feed's job.log events say when new lines exist, but carry a bounded sample of them (a fast CRIU writes
 * thousands of lines a second); the job log behind GET /jobs/:id/log only grows (a restore's gets every CRIU line as
 * it comes, a dump's its bounded part once CRIU is done, before checkpoint.created). So each event
 * (coalesced while a fetch runs) fetches the log and prints the lines after those already printed: complete, in order,
 * never twice. The subscription replays from a little before the job was made (event ids are "<ms>-<seq>"), so an
 * end that happened before we subscribed is still seen.
 */
export function followJobLog(ctx: CliContext, job: Job): Promise<void> {
  let printed = 0;
  let fetching: Promise<void> | undefined;
  let again = false;

  const printNew = async () => {
    const text = await ctx.client.getJobLog(job.id);
    const lines = text.endsWith('\n') ? text.slice(0, -1).split('\n') : text ? text.split('\n') : [];
    const fresh = lines.slice(printed);
    printed = lines.length;
    if (!fresh.length) return;
    ctx.out(ctx.json ? JSON.stringify({ jobId: job.id, lines: fresh }) : fresh.join('\n'));
  };
  /** One fetch at a time; events during it ask for one more afterwards. */
  const refresh = (): Promise<void> => {
    if (fetching) {
      again = true;
      return fetching;
    }
    fetching = printNew().finally(() => {
      fetching = undefined;
      if (again) {
        again = false;
        void refresh();
      }
    });
    return fetching;
  };

  return new Promise<void>((resolve, reject) => {
    let ended = false;
    const end = async (failedReason: string | undefined) => {
      if (ended) return;
      ended = true;
      feed.close();
      try {
        while (fetching) await fetching;
        await printNew();
      } catch (err) {
        return reject(err);
      }
      if (failedReason !== undefined) {
        ctx.err(`ckpt: ${job.type} job ${job.id} failed: ${failedReason.split('\n')[0]}`);
        process.exitCode = EXIT.failed;
      } else {
        ctx.err(`${job.type} job ${job.id} completed`);
      }
      resolve();
    };
    const feed = ctx.feed({
      channels: ['job'],
      filter: { jobId: job.id },
      since: `${Math.max(0, job.createdAt - CLOCK_SKEW_MS)}-0`,
      onEvent: (e) => {
        if (e.event === 'job.log') refresh().catch(reject);
        else if (e.event === 'job.completed') void end(undefined);
        else if (e.event === 'job.failed' && e.data.final !== false) void end(String(e.data.reason ?? ''));
      },
      // The history since the job began is gone: whether it has ended meanwhile, only the API can say.
      onReset: () => {
        ctx.client.getJob(job.id).then((j) => {
          if (j.state === 'completed') void end(undefined);
          else if (j.state === 'failed') void end(j.failedReason ?? '');
          else void refresh();
        }, reject);
      },
      onServerError: (err) => ctx.err(`ckpt: feed: ${err.message}`),
      onGiveUp: reject,
    });
    feed
      .start()
      .then(() => refresh())
      .catch(reject);
  });
}
