import { DelayedError, UnrecoverableError, WaitingError } from 'bullmq';
import { CatalogError } from '../src/catalog/errors.js';
import { ValidationError } from '../src/common/validation.js';
import { CriuConnectionError, CriuError, CriuUnsupportedError, isRetryableCriuError } from '../src/criu/errors.js';
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
  | { fate: 'final'; code: string; reason: string }
  | { fate: 'retry'; code: string; reason: string };

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
 */
export function classifyFailure(err: unknown, abortReason?: unknown): AttemptFate {
  const source = sourceOf(err, abortReason);
  const reason = reasonOf(err);
  const code = codeOf(err) ?? 'EFAILED';
  switch (source) {
    case 'moved':
      return { fate: 'moved' };
    case 'shutdown':
      return { fate: 'hand-back' };
    case 'cancelled':
      return { fate: 'final', code: 'ECANCELLED', reason: 'cancelled by an operator' };
    case 'final':
    case 'request':
    case 'catalog':
      return { fate: 'final', code, reason };
    case 'criu':
      return isRetryableCriuError(err) ? { fate: 'retry', code, reason } : { fate: 'final', code, reason };
    case 'target-busy':
    case 'unknown':
      return { fate: 'retry', code, reason };
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

/** One text a user can act on: the error's message, then CRIU's error lines that the message does not already say. */
export function reasonOf(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  if (!(err instanceof CriuError)) return err.message;
  const errorLines = err.logTail.filter((l) => l.includes('Error (') && !err.message.includes(l.trim())).slice(-5);
  return [err.message, ...errorLines].join('\n');
}

/** The code of an attempt error, for events. */
export function codeOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}
