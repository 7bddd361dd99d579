/** A job exists but is in a state the operation does not apply to (cancel a finished job, retry one that did not fail). */
export class JobStateError extends Error {
  readonly code = 'EJOB_STATE';
  constructor(
    message: string,
    readonly jobId: string,
    readonly state: string,
  ) {
    super(message);
    this.name = 'JobStateError';
  }
}
