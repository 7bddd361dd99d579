export type TargetErrorCode =
  /** `{match}` matched no process. */
  | 'ETARGET_NONE'
  /** `{match}` matched more than one process; `matches` shows the first few (command lines cut short). */
  | 'ETARGET_AMBIGUOUS'
  /** `{match}` ran past its time limit over the process list (a regex that backtracks without end). */
  | 'ETARGET_MATCH_TIMEOUT'
  /** The pid (given, or read from the pid file) does not exist (or is a zombie). */
  | 'ETARGET_GONE'
  /** The pid file cannot be read or does not hold a pid. */
  | 'ETARGET_PIDFILE';

/** A process that `{match}` found: enough for a user to tell which one they meant. */
export interface TargetMatch {
  pid: number;
  cmdline: string;
}

/** A target spec that does not name exactly one live process. Unrecoverable: retrying will not help. */
export class TargetError extends Error {
  constructor(
    readonly code: TargetErrorCode,
    message: string,
    /** For ETARGET_AMBIGUOUS: the first few processes that matched, command lines cut short. */
    readonly matches: TargetMatch[] = [],
  ) {
    super(message);
    this.name = 'TargetError';
  }
}

/** A target the policy refuses (pid 1, kernel thread, ckpt's own processes and their ancestors, allow-lists). */
export class PolicyError extends Error {
  readonly code = 'EPOLICY';
  constructor(
    readonly pid: number,
    /** Why, in words for the user, e.g. "pid 1 (init) is never a target". */
    readonly reason: string,
  ) {
    super(`target pid ${pid} refused by policy: ${reason}`);
    this.name = 'PolicyError';
  }
}
