import { UnrecoverableError } from 'bullmq';
import { CatalogError } from '../src/catalog/errors.js';
import { ValidationError } from '../src/common/validation.js';
import { CriuError, isRetryableCriuError } from '../src/criu/errors.js';
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
 * else an Error with a message that explains it. CRIU failures carry cr_errmsg (in the message) and CRIU's last
 * error lines from the log.
 */
export function toAttemptError(err: unknown): Error {
  if (err instanceof FinalJobError) return err;
  const message = reasonOf(err);
  const code = (err as { code?: string }).code ?? 'EFAILED';
  if (isUnrecoverable(err)) return new FinalJobError(message, code);
  const retry = new Error(message);
  (retry as Error & { code: string }).code = code;
  return retry;
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
  return (err as { code?: string }).code;
}
