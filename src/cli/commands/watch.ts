import type { Command } from 'commander';
import { Option } from 'commander';
import { contextOf } from '../context.js';
import { describeSnapshot, formatEvent } from '../format.js';
import type { FeedFilter } from '../../feed/protocol.js';
import { CHANNELS, type Channel } from '../../events/types.js';
import { JOB_TYPES, type JobType } from '../../common/job-kinds.js';

interface WatchFlags {
  job?: string;
  schedule?: string;
  target?: string;
  type?: JobType;
  channel?: Channel[];
  since?: string;
  logs?: boolean;
}

/**
 * `ckpt watch`: the live feed as readable lines (colored on a terminal), or one JSON object per line with --json.
 * Runs until interrupted; reconnects by itself and resumes where it was, so no event is lost or repeated.
 */
export function registerWatchCommand(program: Command): void {
  program
    .command('watch')
    .description('print the live feed: job stages, progress, logs, schedules, checkpoints')
    .option('--job <id>', 'only this job')
    .option('--schedule <id>', 'only this schedule')
    .option('--target <key>', 'only this target (like python3-4242)')
    .addOption(new Option('--type <type>', 'only this job type').choices([...JOB_TYPES]))
    .addOption(new Option('--channel <name...>', 'only these channels').choices([...CHANNELS]))
    .option('--since <eventId>', 'replay the events after this id first')
    .option('--logs', "print CRIU's log lines as they come (default: only how many)")
    .action(async function (this: Command, flags: WatchFlags) {
      const ctx = contextOf(this);
      const filter: FeedFilter = {};
      if (flags.job) filter.jobId = flags.job;
      if (flags.schedule) filter.scheduleId = flags.schedule;
      if (flags.target) filter.target = flags.target;
      if (flags.type) filter.type = flags.type;
      const feed = ctx.feed({
        channels: flags.channel ?? CHANNELS,
        filter,
        since: flags.since,
        onEvent: (e) => ctx.out(ctx.json ? JSON.stringify(e) : formatEvent(e, ctx.c, Boolean(flags.logs))),
        onReset: () => {
          if (ctx.json) ctx.out(JSON.stringify({ type: 'reset' }));
          else ctx.err(ctx.cErr.yellow('feed: the events since then are no longer kept; the current state follows'));
        },
        onSnapshot: (data) => ctx.out(ctx.json ? JSON.stringify({ type: 'snapshot', data }) : `snapshot of the current state: ${describeSnapshot(data)}`),
        onStatus: (s) => {
          if (ctx.json) return;
          if (s.state === 'connected') ctx.err(ctx.cErr.dim(`watching ${feed.feedUrl} (after event ${s.lastEventId ?? '-'}); Ctrl-C to stop`));
          else ctx.err(ctx.cErr.yellow(`feed: ${s.reason}; reconnecting in ${s.delayMs} ms`));
        },
        onServerError: (err) => ctx.err(`ckpt: feed: ${err.message}`),
        onGiveUp: (err) => giveUp(err),
      });
      let giveUp: (err: Error) => void = () => undefined;
      await feed.start();
      await new Promise<void>((resolve, reject) => {
        giveUp = reject;
        const stop = () => {
          feed.close();
          resolve();
        };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
    });
}
