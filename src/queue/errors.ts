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

/**
 * A job for a node that no live worker serves (or a checkpoint whose only copy is on such a node): refused at enqueue
 * instead of waiting forever. `field` is the request field it concerns (`node`, or `checkpointId`).
 */
export class NodeUnservedError extends Error {
  readonly code = 'ENODE_UNSERVED';
  constructor(
    message: string,
    readonly node: string,
    readonly liveNodes: string[],
    readonly field: string,
  ) {
    super(message);
    this.name = 'NodeUnservedError';
  }
}

/** A restore or drill of a checkpoint the catalog does not list (the same code as the catalog's own "no such checkpoint"). */
export class UnknownCheckpointError extends Error {
  readonly code = 'ECHECKPOINT_NOT_FOUND';
  constructor(readonly checkpointId: string) {
    super(`checkpoint ${checkpointId} not found`);
    this.name = 'UnknownCheckpointError';
  }
}

/**
 * A migration that cannot be done as asked: nothing carries the checkpoint to the other node (neither storage.remote
 * nor storage.shared), or the process is on toNode already. `field` is the request field it concerns.
 */
export class MigrationRefusedError extends Error {
  readonly code = 'EMIGRATION_REFUSED';
  constructor(
    message: string,
    readonly field: string,
  ) {
    super(message);
    this.name = 'MigrationRefusedError';
  }
}
