import { DelayedError, UnrecoverableError, WaitingError } from 'bullmq';
import { CatalogError } from '../src/catalog/errors.js';
import { ValidationError } from '../src/common/validation.js';
import { CriuConnectionError, CriuError, CriuUnsupportedError, isRetryableCriuError, UNINFORMATIVE } from '../src/criu/errors.js';
import { isCriuErrorLine } from '../src/criu/log-tail.js';
import { CriuStatsError } from '../src/criu/stats.js';
import { PolicyError, TargetError } from '../src/targets/errors.js';
import { CancelAbort, ShutdownAbort } from './worker-context.js';

/** Worth another attempt: the target is busy (another dump, or a CRIU still holding it). */
export class RetryableJobError extends Error {
  constructor(
    readonly code: 'ETARGET_BUSY',
    message: string,
  ) {
    super(message);
    this.name = 'RetryableJobError';
  }
}

/** Fails the job at once, whatever attempts are left; keeps the original error's code for events. */
export class FinalJobError extends UnrecoverableError {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
  }
}

/**
 * What becomes of a failed attempt:
 * - `moved`: the processor already moved the job (to delayed or back to wait) and BullMQ must be told so as is;
 * - `hand-back`: the worker is shutting down; the job goes back to wait without using an attempt;
 * - `final`: the job fails now, whatever attempts are left (the request is wrong, CRIU refused for good, cancelled);
 * - `retry`: the job fails this attempt and BullMQ tries again (with ckpt's backoff) while attempts are left.
 */
export type AttemptFate =
  | { fate: 'moved' }
  | { fate: 'hand-back' }
  | { fate: 'final'; code: string; reason: string; details: string[] }
  | { fate: 'retry'; code: string; reason: string; details: string[] };

/** Where an attempt's error came from, as far as its fate goes. */
type FailureSource =
  | 'moved'
  | 'cancelled'
  | 'shutdown'
  | 'final'
  | 'request'
  | 'catalog'
  | 'criu'
  | 'target-busy'
  | 'unknown';

/**
 * The one place that decides the fate of a failed attempt. `abortReason` is the attempt's abort signal's reason (an
 * operator's cancel or the worker's shutdown), which wins over whatever error the abort made the processor throw.
 * The reason is one line; CRIU's error lines that it does not already say are the `details` (job.failed carries them),
 * and with `jobId` a CRIU failure's reason points at the job's log, which the API serves.
 */
export function classifyFailure(err: unknown, abortReason?: unknown, jobId?: string): AttemptFate {
  const source = sourceOf(err, abortReason);
  const pointer = err instanceof CriuError && jobId !== undefined ? `; CRIU's log: GET /api/v1/jobs/${jobId}/log` : '';
  const reason = reasonOf(err) + pointer;
  const details = detailsOf(err);
  const code = codeOf(err) ?? 'EFAILED';
  switch (source) {
    case 'moved':
      return { fate: 'moved' };
    case 'shutdown':
      return { fate: 'hand-back' };
    case 'cancelled':
      return { fate: 'final', code: 'ECANCELLED', reason: 'cancelled by an operator', details: [] };
    case 'final':
      // A processor's own verdict: its message is written for the user, in full (a drill's says what CRIU said).
      return { fate: 'final', code, reason: (err as Error).message, details };
    case 'request':
    case 'catalog':
      return { fate: 'final', code, reason, details };
    case 'criu':
      return { fate: isRetryableCriuError(err) ? 'retry' : 'final', code, reason, details };
    case 'target-busy':
    case 'unknown':
      return { fate: 'retry', code, reason, details };
    default:
      return unreachable(source);
  }
}

function sourceOf(err: unknown, abortReason: unknown): FailureSource {
  if (err instanceof DelayedError || err instanceof WaitingError) return 'moved';
  if (abortReason instanceof CancelAbort) return 'cancelled';
  if (abortReason instanceof ShutdownAbort) return 'shutdown';
  if (err instanceof UnrecoverableError) return 'final';
  if (err instanceof TargetError || err instanceof PolicyError || err instanceof ValidationError) return 'request';
  if (err instanceof CatalogError) return 'catalog';
  const criu = err instanceof CriuError || err instanceof CriuConnectionError || err instanceof CriuUnsupportedError || err instanceof CriuStatsError;
  if (criu) return 'criu';
  if (err instanceof RetryableJobError) return 'target-busy';
  return 'unknown';
}

function unreachable(source: never): never {
  throw new Error(`unclassified failure source ${String(source)}`);
}

/**
 * Whether a job.failed BullMQ reported is the job's last: failed for good (a FinalJobError, or BullMQ finished it),
 * or no attempts left.
 */
export function isLastFailure(err: Error, job: { finishedOn?: number; attemptsMade: number; opts: { attempts?: number } }): boolean {
  const unrecoverable = err instanceof UnrecoverableError || err.name === 'UnrecoverableError';
  return unrecoverable || job.finishedOn !== undefined || job.attemptsMade >= (job.opts.attempts ?? 1);
}

/**
 * Whether the job runs again after this attempt's error (decided as classifyFailure does): a retry with attempts
 * left, or a job handed back or moved by the processor. Asked before BullMQ counts the attempt.
 */
export function runsAgain(err: unknown, abortReason: unknown, job: { attemptsMade: number; opts: { attempts?: number } }): boolean {
  const { fate } = classifyFailure(err, abortReason);
  if (fate === 'hand-back' || fate === 'moved') return true;
  return fate === 'retry' && job.attemptsMade + 1 < (job.opts.attempts ?? 1);
}

/** One line a user can act on: the error's message (a CRIU error's without the path of a log file that is gone). */
export function reasonOf(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  return (err instanceof CriuError ? err.summary : err.message).split('\n')[0]!;
}

/** CRIU's error lines that the reason does not already say, the harmless ones left out (at most 5, the last). */
export function detailsOf(err: unknown): string[] {
  if (!(err instanceof CriuError)) return [];
  return err.logTail
    .filter((l) => isCriuErrorLine(l) && !err.summary.includes(l.trim()) && !UNINFORMATIVE.some((re) => re.test(l)))
    .slice(-5);
}

/** The code of an attempt error, for events. */
export function codeOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** The attempt's error as BullMQ gets it, with CRIU's details (when any) for job.failed. */
export function withDetails<E extends Error>(err: E, details: string[]): E {
  return details.length ? Object.assign(err, { details }) : err;
}
