import { CommanderError } from 'commander';
import { ValidationError } from '../common/validation.js';
import { ApiError, ApiUnreachableError } from './api-client.js';
import { FeedError } from './feed-client.js';

/** A failure the CLI explains in one line (`ckpt: <message>`) and turns into an exit code. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

/**
 * Exit codes: 0 done, 1 failed (a job failed, the API said no, the server is unreachable), 2 bad usage (the CLI's own
 * checks, a bad config file, or the server's 400: the request itself was wrong), 130 interrupted.
 */
export const EXIT = { ok: 0, failed: 1, usage: 2, interrupted: 130 } as const;

export interface ErrorReport {
  /** First line is `ckpt: <reason>`; a validation error adds one indented line per field. */
  lines: string[];
  exitCode: number;
  /** What --json prints on stdout. */
  json: { error: string; message: string; status?: number; issues?: { field: string; reason: string }[] };
}

/** Turns anything a command threw into what the user sees. */
export function reportError(err: unknown): ErrorReport {
  if (err instanceof ApiError) {
    if (err.issues.length) {
      return {
        lines: [`ckpt: invalid request (${err.status}):`, ...err.issues.map((i) => `  ${i.field || '(input)'}: ${i.reason}`)],
        exitCode: exitCodeOf(err),
        json: { error: err.code, message: err.message, status: err.status, issues: err.issues },
      };
    }
    return {
      lines: [`ckpt: ${err.message} (${err.status}${err.code && err.code !== `http_${err.status}` ? ` ${err.code}` : ''})`],
      exitCode: exitCodeOf(err),
      json: { error: err.code, message: err.message, status: err.status },
    };
  }
  if (err instanceof CommanderError) {
    const message = err.message.replace(/^error: /, '');
    return { lines: [`ckpt: ${message}`], exitCode: EXIT.usage, json: { error: 'usage', message } };
  }
  if (err instanceof ValidationError) {
    // A bad config file, CKPT_* variable or flag value: the invocation is wrong, as with a bad flag.
    return { lines: [`ckpt: ${err.message}`], exitCode: EXIT.usage, json: { error: 'usage', message: err.message } };
  }
  if (err instanceof CliError) {
    return { lines: [`ckpt: ${err.message}`], exitCode: err.exitCode, json: { error: 'failed', message: err.message } };
  }
  if (err instanceof ApiUnreachableError || err instanceof FeedError) {
    return { lines: [`ckpt: ${err.message}`], exitCode: EXIT.failed, json: { error: err.code, message: err.message } };
  }
  const e = err as Error;
  return { lines: [`ckpt: ${e?.message ?? String(err)}`], exitCode: EXIT.failed, json: { error: 'internal', message: e?.message ?? String(err) } };
}

/** The server's 400 says the request was malformed: bad usage, like a bad flag. Any other refusal is a failure. */
function exitCodeOf(err: ApiError): number {
  return err.status === 400 ? EXIT.usage : EXIT.failed;
}
