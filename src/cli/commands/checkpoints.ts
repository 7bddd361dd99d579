import type { Command } from 'commander';
import { contextOf, type CliContext } from '../context.js';
import { enqueue } from '../enqueue.js';
import { checkpointDetails, checkpointsTable } from '../format.js';
import { intArg } from './options.js';

/**
 * `checkpoints` lists; `checkpoints show|log|rm|pin|unpin|verify <id>` act on one; `checkpoint <id>` is short for show.
 * (The same shape as `schedules`, and `jobs` / `job <id>`.)
 */
export function registerCheckpointCommands(program: Command): void {
  const group = program.command('checkpoints').description('list and manage checkpoints (default: list)');

  group
    .command('ls', { isDefault: true })
    .description('list checkpoints, newest first')
    .option('--target <key>', 'only this target (like python3-4242)')
    .option('--schedule <id>', 'only those made by this schedule')
    .option('--limit <n>', 'at most this many', intArg(1))
    .action(async function (this: Command, flags: { target?: string; schedule?: string; limit?: number }) {
      const ctx = contextOf(this);
      const res = await ctx.client.listCheckpoints(flags);
      if (ctx.json) return ctx.printJson(res);
      if (!res.items.length) return ctx.err('no checkpoints');
      ctx.out(checkpointsTable(res.items));
    });

  group
    .command('show <id>')
    .description('one checkpoint: target, size, stats, options')
    .action(async function (this: Command, id: string) {
      await show(contextOf(this), id);
    });

  group
    .command('log <id>')
    .description("CRIU's whole dump log of a checkpoint (its dump.log; a dump job's log keeps only its end)")
    .action(async function (this: Command, id: string) {
      const ctx = contextOf(this);
      const text = await ctx.client.getCheckpointLog(id);
      if (ctx.json) return ctx.printJson({ checkpointId: id, lines: text.split('\n').filter((l, i, all) => l || i < all.length - 1) });
      if (text) ctx.out(text.endsWith('\n') ? text.slice(0, -1) : text);
    });

  group
    .command('rm <id>')
    .description('delete a checkpoint and its files')
    .option('--force', 'even when pinned or in use by a restore')
    .action(async function (this: Command, id: string, flags: { force?: boolean }) {
      const ctx = contextOf(this);
      const res = await ctx.client.deleteCheckpoint(id, Boolean(flags.force));
      if (ctx.json) return ctx.printJson(res);
      ctx.out(`deleted checkpoint ${id}${res.filesRemoved ? '' : ' (its node removes its files: at once, or when its worker starts if it is down)'}`);
    });

  group
    .command('verify <id>')
    .description('restore drill: restore it stopped in a throwaway pid namespace, check the tree is whole, remove it')
    .option('--wait', 'follow the drill until it ends; exit 1 if it fails')
    .action(async function (this: Command, id: string, flags: { wait?: boolean }) {
      const ctx = contextOf(this);
      await enqueue(ctx, Boolean(flags.wait), async () => {
        const { jobId, node } = await ctx.client.verifyCheckpoint(id);
        return { jobIds: [jobId], jobs: { [jobId]: { type: 'verify', what: id } }, response: { jobId, node } };
      });
    });

  for (const pinned of [true, false]) {
    group
      .command(`${pinned ? 'pin' : 'unpin'} <id>`)
      .description(pinned ? 'keep it: retention never removes a pinned checkpoint' : 'let retention remove it again')
      .action(async function (this: Command, id: string) {
        const ctx = contextOf(this);
        const cp = await ctx.client.pinCheckpoint(id, pinned);
        if (ctx.json) return ctx.printJson(cp);
        ctx.out(`${pinned ? 'pinned' : 'unpinned'} checkpoint ${id}`);
      });
  }

  program
    .command('checkpoint <id>')
    .description('show one checkpoint (same as checkpoints show)')
    .action(async function (this: Command, id: string) {
      await show(contextOf(this), id);
    });
}

async function show(ctx: CliContext, id: string): Promise<void> {
  const cp = await ctx.client.getCheckpoint(id);
  if (ctx.json) return ctx.printJson(cp);
  ctx.out(checkpointDetails(cp));
}
