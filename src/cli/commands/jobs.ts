import type { Command } from 'commander';
import type { DumpRequest, MigrationRequest, RestoreRequest } from '../api-client.js';
import { contextOf } from '../context.js';
import { CliError, EXIT } from '../errors.js';
import { enqueue } from '../enqueue.js';
import { describeTarget, jobDetails, jobsTable } from '../format.js';
import { addCriuOptions, addTargetOptions, criuFrom, intArg, targetFrom, type CriuFlags, type TargetFlags } from './options.js';
import { followJobLog } from './logs.js';
import { printWorkloadOutput } from './workloads.js';

interface DumpFlags extends TargetFlags, CriuFlags {
  stop?: boolean;
  wait?: boolean;
}

/** The POST /api/v1/dumps body the flags ask for. leaveRunning is only sent when --stop says otherwise. */
export function dumpRequestFrom(flags: DumpFlags): DumpRequest {
  const body: DumpRequest = { target: targetFrom(flags) };
  if (flags.stop) body.leaveRunning = false;
  const criu = criuFrom(flags);
  if (criu) body.criu = criu;
  return body;
}

export function registerJobCommands(program: Command): void {
  addCriuOptions(
    addTargetOptions(
      program
        .command('dump')
        .description('checkpoint a process (it keeps running unless --stop)')
        .option('--stop', 'stop the process after the dump (leaveRunning: false)')
        .option('--wait', 'follow the job until it ends, with a progress bar; exit 1 if it fails'),
    ),
  ).action(async function (this: Command, flags: DumpFlags) {
    const ctx = contextOf(this);
    const body = dumpRequestFrom(flags);
    await enqueue(ctx, Boolean(flags.wait), async () => {
      const { jobId } = await ctx.client.createDump(body);
      return { jobIds: [jobId], jobs: { [jobId]: { type: 'dump', what: describeTarget(body.target) } }, response: { jobId } };
    });
  });

  addCriuOptions(
    program
      .command('restore <checkpointId>')
      .description('restore a checkpoint')
      .option('--replicas <n>', "copies to start at once (a workload's checkpoint)", intArg(Number.MIN_SAFE_INTEGER))
      .option('--replace', 'if the checkpointed process still runs, stop it (its whole tree) and restore in its place: a rollback')
      .option('--wait', 'follow the job until it ends; exit 1 if it fails'),
  ).action(async function (this: Command, checkpointId: string, flags: CriuFlags & { wait?: boolean; replicas?: number; replace?: boolean }) {
    const ctx = contextOf(this);
    const body: RestoreRequest = { checkpointId, ...(flags.replicas !== undefined && { replicas: flags.replicas }) };
    if (flags.replace) body.replace = true;
    const criu = criuFrom(flags);
    if (criu) body.criu = criu;
    await enqueue(ctx, Boolean(flags.wait), async () => {
      const { jobId } = await ctx.client.createRestore(body);
      return { jobIds: [jobId], jobs: { [jobId]: { type: 'restore', what: checkpointId } }, response: { jobId } };
    });
  });

  program
    .command('restore-batch <checkpointIds...>')
    .description('restore several checkpoints as one batch; one failing does not stop the others')
    .option('--concurrency <n>', 'restores running at once', intArg(Number.MIN_SAFE_INTEGER))
    .option('--replicas <n>', "copies of each checkpoint (workload checkpoints), each its own restore", intArg(Number.MIN_SAFE_INTEGER))
    .option('--wait', 'follow every restore until the batch ends; exit 1 if any failed')
    .action(async function (this: Command, checkpointIds: string[], flags: { concurrency?: number; replicas?: number; wait?: boolean }) {
      const ctx = contextOf(this);
      await enqueue(ctx, Boolean(flags.wait), async () => {
        const r = await ctx.client.createRestoreBatch({
          checkpointIds,
          ...(flags.concurrency !== undefined ? { concurrency: flags.concurrency } : {}),
          ...(flags.replicas !== undefined ? { replicas: Object.fromEntries(checkpointIds.map((id) => [id, flags.replicas!])) } : {}),
        });
        const perCheckpoint = flags.replicas ?? 1;
        const jobs = Object.fromEntries(r.jobIds.map((id, i) => [id, { type: 'restore', what: checkpointIds[Math.floor(i / perCheckpoint)] ?? '?' }]));
        // The batch (parent) job ends after its children; waiting for it too gives its result, which lists every child.
        return {
          jobIds: [...r.jobIds, r.batchId],
          jobs: { ...jobs, [r.batchId]: { type: 'batch', what: `${checkpointIds.length} checkpoints` } },
          response: r,
          batchId: r.batchId,
        };
      });
    });

  addCriuOptions(
    addTargetOptions(
      program
        .command('migrate')
        .description('move a process to another node: dump and stop it on its node, restore it on --to (one job chain)')
        .requiredOption('--to <node>', 'the node to restore it on')
        .option('--from <node>', "the node it runs on (default: a workload's own node, else the API's node)")
        .option('--wait', 'follow the dump and the restore until the migration ends; exit 1 if it fails'),
    ),
  ).action(async function (this: Command, flags: TargetFlags & CriuFlags & { to: string; from?: string; wait?: boolean }) {
    const ctx = contextOf(this);
    const body: MigrationRequest = { target: targetFrom(flags), toNode: flags.to, ...(flags.from !== undefined && { fromNode: flags.from }) };
    const criu = criuFrom(flags);
    if (criu) body.criu = criu;
    await enqueue(ctx, Boolean(flags.wait), async () => {
      const m = await ctx.client.createMigration(body);
      const what = describeTarget(body.target!);
      return {
        jobIds: [m.dumpJobId, m.migrationId],
        jobs: { [m.dumpJobId]: { type: 'dump', what: `${what} on ${m.fromNode}` }, [m.migrationId]: { type: 'migrate', what: `${what} to ${m.toNode}` } },
        response: { ...m },
      };
    });
  });

  program
    .command('jobs')
    .description('list jobs, newest first')
    .option('--state <state>', 'waiting, active, completed, failed, delayed')
    .option('--type <type>', 'dump, restore, restore-batch')
    .option('--schedule <id>', 'only jobs fired by this schedule')
    .option('--limit <n>', 'at most this many', intArg(1))
    .action(async function (this: Command, flags: { state?: string; type?: string; schedule?: string; limit?: number }) {
      const ctx = contextOf(this);
      const res = await ctx.client.listJobs(flags);
      if (ctx.json) return ctx.printJson(res);
      if (!res.items.length) return ctx.err('no jobs');
      ctx.out(jobsTable(res.items, ctx.c));
    });

  program
    .command('job <id> [jobId]')
    .usage('<id> | cancel <id> | retry <id>')
    .description(
      'show one job (state, progress, attempts, result or failure reason); `job cancel <id>` removes a waiting or delayed job ' +
        'and aborts an active one (the target is thawed); `job retry <id>` runs a failed job again',
    )
    .action(async function (this: Command, first: string, second: string | undefined) {
      const ctx = contextOf(this);
      if (second !== undefined && first === 'cancel') {
        const res = await ctx.client.cancelJob(second);
        if (ctx.json) return ctx.printJson(res);
        return ctx.out(res.outcome === 'removed' ? `job ${res.id} cancelled (removed from the queue)` : `job ${res.id} is being aborted`);
      }
      if (second !== undefined && first === 'retry') {
        const res = await ctx.client.retryJob(second);
        if (ctx.json) return ctx.printJson(res);
        return ctx.out(`job ${res.jobId} queued again on node ${res.node}`);
      }
      if (second !== undefined) throw new CliError(`unknown job action ${JSON.stringify(first)}: use cancel or retry`, EXIT.usage);
      const job = await ctx.client.getJob(first);
      if (ctx.json) return ctx.printJson(job);
      ctx.out(jobDetails(job, ctx.c));
    });

  program
    .command('logs [jobId]')
    .description("print a job's CRIU log, or a workload's output (--workload)")
    .option('-f, --follow', 'stream new lines live until the job ends (a workload: until interrupted)')
    .option('--workload <name>', "a workload's output instead of a job's log")
    .option('--stderr', "with --workload: its stderr instead of its stdout")
    .action(async function (this: Command, jobId: string | undefined, flags: { follow?: boolean; workload?: string; stderr?: boolean }) {
      const ctx = contextOf(this);
      if (flags.workload !== undefined) {
        if (jobId !== undefined) throw new CliError('give a job id or --workload, not both', EXIT.usage);
        return printWorkloadOutput(ctx, flags.workload, flags.stderr ? 'stderr' : 'stdout', Boolean(flags.follow));
      }
      if (jobId === undefined) throw new CliError('give a job id, or --workload <name>', EXIT.usage);
      const job = await ctx.client.getJob(jobId);
      if (flags.follow && job.state !== 'completed' && job.state !== 'failed') return followJobLog(ctx, job);
      const text = await ctx.client.getJobLog(jobId);
      if (ctx.json) return ctx.printJson({ jobId, lines: text.split('\n').filter((l, i, all) => l || i < all.length - 1) });
      if (text) ctx.out(text);
    });
}

