import os from 'node:os';
import { ValidationError } from '../common/validation.js';
import { isCriuErrorLine, withoutCriuTime } from './log-tail.js';
import type { CriuReqType } from './rpc-messages.js';

/** Second names of the same number, left out so that each number has the name strerror's table uses. */
const ERRNO_ALIASES: ReadonlySet<string> = new Set(['EWOULDBLOCK', 'ENOTSUP']);

/** Linux's "invalid request code", which CRIU answers rejected options with; Node's table (POSIX names only) lacks it. */
const EBADRQC = 56;

/** errno names by number, from Node's own table for this platform (os.constants.errno), for cr_errno. */
const ERRNO_NAMES: ReadonlyMap<number, string> = new Map([
  ...Object.entries(os.constants.errno)
    .filter(([name]) => !ERRNO_ALIASES.has(name))
    .map(([name, errno]): [number, string] => [errno, name]),
  [EBADRQC, 'EBADRQC'],
]);

/** 'ESRCH' for 3; 'E<n>' for numbers the table does not know (Linux-only ones such as 133, EHWPOISON). */
export function errnoName(errno: number): string {
  return ERRNO_NAMES.get(errno) ?? `E${errno}`;
}

/** What a few errnos mean coming from CRIU (it records the first errno of the failure). */
const ERRNO_HINTS: Record<string, string> = {
  ESRCH: 'no such process',
  EEXIST: 'a pid the checkpoint needs is taken',
  EBADRQC: 'CRIU rejected the options',
  EPERM: 'operation not permitted',
  EACCES: 'permission denied',
  ENOENT: 'a file CRIU needs does not exist',
};

export interface CriuErrorDetails {
  requestType: CriuReqType;
  errno?: number;
  criuMessage?: string;
  logTail?: string[];
  /** Where the log tail came from, for the message. */
  logFile?: string;
}

/** CRIU answered and said the request failed. */
export class CriuError extends Error {
  readonly code = 'ECRIU';
  readonly requestType: CriuReqType;
  /** cr_errno: the first errno CRIU recorded, when it sent one. */
  readonly errno?: number;
  readonly errnoName?: string;
  /** cr_errmsg: CRIU's first error line. */
  readonly criuMessage?: string;
  /** The "Error (" lines and the last lines of CRIU's log file, when a log file was requested. */
  readonly logTail: string[];
  readonly logFile?: string;
  /** The message without where the log file is (a job's attempt folder is gone once the job has failed). */
  readonly summary: string;

  constructor(details: CriuErrorDetails) {
    const name = details.errno ? errnoName(details.errno) : undefined;
    const hint = name && ERRNO_HINTS[name];
    const errnoPart = name ? `${name}${hint ? ` (${hint})` : ''}` : undefined;
    const reason = failureReason(details.criuMessage, details.logTail ?? []);
    const parts = [errnoPart, reason].filter(Boolean);
    const summary = `CRIU ${details.requestType} failed: ${parts.length ? parts.join(': ') : 'no reason given'}`;
    super(`${summary}${details.logFile ? `; see ${details.logFile}` : ''}`);
    this.summary = summary;
    this.name = 'CriuError';
    this.requestType = details.requestType;
    this.errno = details.errno;
    this.errnoName = name;
    this.criuMessage = details.criuMessage;
    this.logTail = details.logTail ?? [];
    this.logFile = details.logFile;
  }
}

/**
 * Error lines that say nothing about why an operation failed: CRIU's closing "Dumping FAILED." and the harmless
 * RLIMIT_NOFILE complaint that CRIU logs first on every request where it may not raise its own limit (then it is
 * cr_errmsg of every reply, success or not).
 */
export const UNINFORMATIVE = [/\b(Dumping|Restoring|Pre-dumping) FAILED\.?$/, /rlimit: Can't setup RLIMIT_NOFILE for self/];

/**
 * The line that best explains a failure: the log's first informative "Error (" line, else cr_errmsg (CRIU's first
 * error line; lost for the requests CRIU 4.1 forks for) unless it is uninformative, else the log's last error line.
 */
function failureReason(criuMessage: string | undefined, logTail: string[]): string | undefined {
  const informative = (line: string) => !UNINFORMATIVE.some((re) => re.test(line));
  // Log lines start with a timestamp, "(00.072050) Error (file.c:123): ...": the reason starts at "Error".
  const errors = logTail.filter(isCriuErrorLine).map(withoutCriuTime);
  return errors.find(informative) ?? (criuMessage && informative(criuMessage) ? criuMessage : undefined) ?? errors.at(-1) ?? criuMessage;
}

export type CriuConnectionErrorCode =
  | 'ECRIU_NO_SOCKET'
  | 'ECRIU_ACCESS'
  | 'ECRIU_DIED'
  | 'ECRIU_DECODE'
  | 'ECRIU_TIMEOUT'
  | 'ECRIU_ABORTED';

/** The conversation with the CRIU service went wrong before a final reply: nothing, or nothing usable, came back. */
export class CriuConnectionError extends Error {
  constructor(
    readonly code: CriuConnectionErrorCode,
    message: string,
    readonly socketPath: string,
    readonly requestType?: CriuReqType,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'CriuConnectionError';
  }
}

/** A feature the operation needs is not available with this CRIU and kernel (FEATURE_CHECK said so). */
export class CriuUnsupportedError extends Error {
  readonly code = 'ECRIU_UNSUPPORTED';
  constructor(
    readonly feature: 'memTrack' | 'lazyPages' | 'pidfdStore',
    message: string,
  ) {
    super(message);
    this.name = 'CriuUnsupportedError';
  }
}

const RETRYABLE_CONNECTION_CODES: ReadonlySet<string> = new Set(['ECRIU_NO_SOCKET', 'ECRIU_DIED', 'ECRIU_TIMEOUT']);

/**
 * Worth trying again later: the service was missing, died or was too slow, or a restore found its pid still taken
 * (a just-killed task lingers as a zombie for a moment). Not retryable: no such process, rejected options, bad input,
 * permission problems, an abort by the caller, an unsupported feature.
 */
export function isRetryableCriuError(err: unknown): boolean {
  if (err instanceof ValidationError) return false;
  if (err instanceof CriuConnectionError) return RETRYABLE_CONNECTION_CODES.has(err.code);
  if (err instanceof CriuError) return err.requestType === 'RESTORE' && err.errnoName === 'EEXIST';
  return false;
}
