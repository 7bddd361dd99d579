import { setTimeout as sleep } from 'node:timers/promises';
import type { Command } from 'commander';
import type { Workload } from '../api-client.js';
import { contextOf, type CliContext } from '../context.js';
import { CliError, EXIT } from '../errors.js';
import { colorState, formatDuration, formatTime, table, type Colors } from '../format.js';

/** How often `logs --workload --follow` asks for new output. */
const FOLLOW_INTERVAL_MS = 500;

/** `ckpt run -- CMD...` starts a workload; `workloads` lists them, `workloads show|stop <name>` act on one. */
export function registerWorkloadCommands(program: Command): void {
  program
    .command('run')
    .description('start a workload: CMD as the init of its own pid namespace, restorable any number of times')
    .argument('<command...>', 'the command and its arguments (after --)')
    .option('--name <name>', 'workload name (default: the command and a random suffix)')
    .option('--node <node>', 'the node to run on (the API must be that node)')
    .option('--cwd <dir>', 'working directory (default: the workload folder)')
    .option('--env <K=V>', 'an environment variable (repeatable)', (v: string, all: string[] = []) => [...all, v])
    .action(async function (this: Command, command: string[], flags: { name?: string; node?: string; cwd?: string; env?: string[] }) {
      const ctx = contextOf(this);
      const env: Record<string, string> = {};
      for (const pair of flags.env ?? []) {
        const eq = pair.indexOf('=');
        if (eq < 1) throw new CliError(`--env ${pair}: expected NAME=VALUE`, EXIT.usage);
        env[pair.slice(0, eq)] = pair.slice(eq + 1);
      }
      const w = await ctx.client.runWorkload({
        command,
        ...(flags.name !== undefined && { name: flags.name }),
        ...(flags.node !== undefined && { node: flags.node }),
        ...(flags.cwd !== undefined && { cwd: flags.cwd }),
        ...(Object.keys(env).length && { env }),
      });
      if (ctx.json) return ctx.printJson(w);
      ctx.out(`workload ${w.name} running: host pid ${w.hostPid} on node ${w.node}; output in ${w.dir}`);
    });

  const group = program.command('workloads').description('workloads started with ckpt run (default: list)');
  group
    .command('ls', { isDefault: true })
    .description('list workloads: state, node, host pid, uptime, newest checkpoint')
    .action(async function (this: Command) {
      const ctx = contextOf(this);
      const res = await ctx.client.listWorkloads();
      if (ctx.json) return ctx.printJson(res);
      if (!res.items.length) return ctx.err('no workloads');
      ctx.out(workloadsTable(res.items, ctx.c));
    });
  group
    .command('show <name>')
    .description('one workload')
    .action(async function (this: Command, name: string) {
      const ctx = contextOf(this);
      const w = await ctx.client.getWorkload(name);
      if (ctx.json) return ctx.printJson(w);
      ctx.out(workloadsTable([w], ctx.c));
      ctx.out(`command: ${w.command.join(' ')}\nfolder:  ${w.dir}`);
    });
  group
    .command('stop <name>')
    .description('stop a workload (SIGTERM, then SIGKILL after the grace) and forget it')
    .action(async function (this: Command, name: string) {
      const ctx = contextOf(this);
      const res = await ctx.client.stopWorkload(name);
      if (ctx.json) return ctx.printJson(res);
      ctx.out(`workload ${name}: ${res.outcome}`);
    });
}

/** "running", "exited 0", "killed (SIGKILL)", "restored from X" as one cell. */
export function workloadState(w: Workload, c: Colors): string {
  if (w.state === 'running') {
    const restored = w.origin.kind === 'restore' ? ` (restored from ${w.origin.checkpointId})` : '';
    return colorState('running', c) + restored;
  }
  if (w.state === 'unknown') return `on node ${w.node}`;
  const end = w.ended;
  const how = end?.code !== undefined ? `exited ${end.code}` : 'killed';
  const text = `${how}${end?.signal ? ` (${end.signal})` : ''}`;
  return end?.code === 0 ? c.green(text) : c.red(text);
}

function workloadsTable(items: Workload[], c: Colors): string {
  return table(
    ['NAME', 'STATE', 'NODE', 'HOST PID', 'UPTIME', 'NEWEST CHECKPOINT'],
    items.map((w) => [
      w.name,
      workloadState(w, c),
      w.node,
      String(w.hostPid),
      w.state === 'running' ? formatDuration(Date.now() - Date.parse(w.startedAt)) : '-',
      w.newestCheckpoint ? `${w.newestCheckpoint.id} (${formatTime(w.newestCheckpoint.created)})` : '-',
    ]),
  );
}

/** `ckpt logs --workload N [--follow]`: the output so far, then (with --follow) new output as it comes, until interrupted. */
export async function printWorkloadOutput(ctx: CliContext, name: string, stream: 'stdout' | 'stderr', follow: boolean): Promise<void> {
  let offset = 0;
  for (;;) {
    const { text, next } = await ctx.client.workloadOutput(name, stream, offset);
    if (text) process.stdout.write(text);
    offset = next;
    if (!follow) return;
    await sleep(FOLLOW_INTERVAL_MS);
  }
}
