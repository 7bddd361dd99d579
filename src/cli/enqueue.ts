import type { Job, JobResult } from './api-client.js';
import type { CliContext } from './context.js';
import { EXIT } from './errors.js';
import { formatBytes, formatDuration, formatMicros } from './format.js';
import { JobWatcher, type JobOutcome } from './job-watcher.js';
import { createProgressView } from './progress-view.js';

export interface Enqueued {
  jobIds: string[];
  /** Per job: its type and what it works on ("pid 42", a checkpoint id), to name it while it runs. */
  jobs: Record<string, { type: string; what: string }>;
  /** What the API answered, printed as is without --wait. */
  response: Record<string, unknown>;
  batchId?: string;
}

/**
 * Enqueues, and with --wait follows the jobs to their end. The feed subscription is opened first, so not one event
 * of the new jobs can be missed, however fast they run.
 */
export async function enqueue(ctx: CliContext, wait: boolean, doEnqueue: () => Promise<Enqueued>): Promise<void> {
  if (!wait) {
    const e = await doEnqueue();
    if (ctx.json) return ctx.printJson(e.response);
    for (const id of e.jobIds) ctx.out(queuedLine(e, id));
    return;
  }
  const view = createProgressView(ctx.json ? 'none' : ctx.interactive ? 'bars' : 'lines', process.stderr, ctx.cErr);
  const watcher = await JobWatcher.open(ctx, view);
  let e: Enqueued;
  try {
    e = await doEnqueue();
  } catch (err) {
    watcher.close();
    throw err;
  }
  const onInterrupt = () => {
    view.stop();
    watcher.close();
    ctx.err(`ckpt: stopped waiting; the job goes on: ckpt job ${e.batchId ?? e.jobIds[0]}`);
    process.exit(EXIT.interrupted);
  };
  process.once('SIGINT', onInterrupt);
  let outcomes: JobOutcome[];
  try {
    for (const id of e.jobIds) view.log(queuedLine(e, id));
    const labels = Object.fromEntries(e.jobIds.map((id) => [id, `${e.jobs[id]?.type ?? 'job'} ${e.jobs[id]?.what ?? id}`]));
    outcomes = await watcher.wait(e.jobIds, labels);
  } finally {
    process.off('SIGINT', onInterrupt);
  }
  const failed = outcomes.filter((o) => o.state === 'failed');
  if (ctx.json) {
    if (e.batchId) {
      const batch = outcomes.find((o) => o.id === e.batchId)!;
      ctx.printJson({ batch: batch.job, jobs: outcomes.filter((o) => o !== batch).map((o) => o.job) });
    } else {
      ctx.printJson(outcomes[0]!.job);
    }
  } else {
    for (const o of outcomes) if (o.id !== e.batchId) printOutcome(ctx, o);
    if (e.batchId) ctx.out(`batch ${e.batchId}: ${outcomes.length - 1 - failed.filter((o) => o.id !== e.batchId).length} of ${outcomes.length - 1} restored`);
  }
  if (failed.length) process.exitCode = EXIT.failed;
}

function queuedLine(e: Enqueued, id: string): string {
  const j = e.jobs[id];
  return j ? `queued ${j.type} job ${id}: ${j.what}` : `queued job ${id}`;
}

/** What a finished job did, in a few lines: a dump's checkpoint, frozen time, pages and bytes; a restore's pid or workloads. */
export function describeOutcome(job: Job): string[] {
  const r: JobResult = job.result ?? { durationMs: NaN };
  const s = (r.stats ?? {}) as Record<string, number | undefined>;
  if (job.state === 'failed') {
    const attempts = job.attemptsMade ? ` after ${job.attemptsMade} attempt${job.attemptsMade === 1 ? '' : 's'}` : '';
    const [first = 'no reason given', ...rest] = String(job.failedReason ?? '').split('\n');
    return [`${job.type} job ${job.id} failed${attempts}: ${first}`, ...rest.filter(Boolean).map((l) => `  ${l}`)];
  }
  const lines = [`${job.type} job ${job.id} completed`];
  const row = (k: string, v: string) => lines.push(`  ${k.padEnd(12)} ${v}`);
  if (job.type === 'restore') {
    // A workload's restore: each copy by the name its output and `ckpt workloads` go by.
    if (r.workloads?.length) for (const w of r.workloads) row('workload', `${w.name}, host pid ${w.hostPid}`);
    else if (r.restoredPid !== undefined) row('restored pid', String(r.restoredPid));
    if (r.checkpointId) row('checkpoint', r.checkpointId);
  } else if (r.checkpointId) {
    row('checkpoint', r.checkpointId);
  }
  const frozen = s.frozenTimeUs ?? s.frozenTime;
  if (frozen !== undefined) row('frozen', formatMicros(frozen));
  const pages = s.pagesWritten ?? s.pagesRestored;
  if (pages !== undefined || r.bytes !== undefined) {
    row(job.type === 'restore' ? 'restored' : 'written', [pages !== undefined ? `${pages} pages` : '', r.bytes !== undefined ? formatBytes(r.bytes) : ''].filter(Boolean).join(', '));
  }
  if (Number.isFinite(r.durationMs)) row('duration', formatDuration(r.durationMs));
  if (r.commitMs !== undefined) row('committed', `${formatDuration(r.commitMs)} after CRIU (flushed, hashed)`);
  return lines;
}

function printOutcome(ctx: CliContext, o: JobOutcome): void {
  const lines = describeOutcome(o.job);
  if (o.state === 'failed') {
    ctx.err(`ckpt: ${lines.join('\n')}`);
  } else {
    ctx.out(lines.map((l, i) => (i === 0 ? ctx.c.green(l) : l)).join('\n'));
  }
}

