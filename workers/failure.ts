import { UnrecoverableError } from 'bullmq';
import { CatalogError } from '../src/catalog/errors.js';
import { ValidationError } from '../src/common/validation.js';
import { CriuError, isRetryableCriuError, UNINFORMATIVE } from '../src/criu/errors.js';
import { PolicyError, TargetError } from '../src/targets/errors.js';

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

/** CRIU errors that more attempts cannot fix, and everything bad about the request itself. */
function isUnrecoverable(err: unknown): boolean {
  if (err instanceof TargetError || err instanceof PolicyError || err instanceof ValidationError) return true;
  if (err instanceof CatalogError) return true;
  if (err instanceof CriuError) return !isRetryableCriuError(err);
  const code = (err as { code?: string }).code;
  // CriuConnectionError: retryable ones (service gone, died, slow) are retried; an abort or a permission problem is not.
  if (typeof code === 'string' && code.startsWith('ECRIU_')) return !isRetryableCriuError(err);
  return false;
}

/**
 * The error a failed attempt hands to BullMQ: FinalJobError (an UnrecoverableError) when retrying cannot help,
 * else an Error with a message that explains it. The message is one line; CRIU's error lines that it does not already
 * say go into `details` (job.failed carries them), and a CRIU failure points at the job's log, which the API serves.
 */
export function toAttemptError(err: unknown, jobId: string): Error {
  if (err instanceof FinalJobError) return err;
  const pointer = err instanceof CriuError ? `; CRIU's log: GET /api/v1/jobs/${jobId}/log` : '';
  const message = reasonOf(err) + pointer;
  const code = (err as { code?: string }).code ?? 'EFAILED';
  const failure = isUnrecoverable(err) ? new FinalJobError(message, code) : Object.assign(new Error(message), { code });
  const details = detailsOf(err);
  return details.length ? Object.assign(failure, { details }) : failure;
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
    .filter((l) => l.includes('Error (') && !err.summary.includes(l.trim()) && !UNINFORMATIVE.some((re) => re.test(l)))
    .slice(-5);
}

/** The code of an attempt error, for events. */
export function codeOf(err: unknown): string | undefined {
  return (err as { code?: string }).code;
}
