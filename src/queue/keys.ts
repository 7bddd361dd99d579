/**
 * Names ckpt's job machinery uses in Redis, all under the configured prefix.
 * BullMQ keys are `<prefix>:<queue name>:...`; ckpt's own are `<prefix>:jobs:...`.
 */

/** One BullMQ queue per node: a worker consumes only its own node's queue. */
export function queueNameFor(node: string): string {
  return `jobs.${node}`;
}

export function queueKeys(prefix: string) {
  return {
    /** Hash jobId -> node, so any process finds any job's queue. */
    jobNodes: `${prefix}:jobs:node-of`,
    /** Sorted set jobId by the time its id was claimed: JobQueue.pruneIndex visits the old ones. */
    jobClaims: `${prefix}:jobs:claimed-at`,
    /** Set of node names that ever had a job or a worker: listings visit their queues. */
    nodes: `${prefix}:jobs:nodes`,
    /** Sorted set `<node>/<worker instance>` -> expiry (Redis time, ms): the workers alive now (WorkerPresence). */
    workers: `${prefix}:jobs:workers`,
    /** Lease lock: one dump of a target at a time. Per node: the same pid on two hosts is two processes. */
    targetLock: (node: string, targetKey: string) => `${prefix}:jobs:lock:target:${node}:${targetKey}`,
    /**
     * Hash pid -> {startTime, target, checkpointId} of the processes a node's restores started: a later restore of
     * the same target recognises such a process as the checkpointed process (a restored one has a new start time).
     */
    /** Lease lock: one download of a checkpoint from the bucket at a time on a node (others wait and use its copy). */
    downloadLock: (node: string, checkpointId: string) => `${prefix}:jobs:lock:download:${node}:${checkpointId}`,
    restoredProcesses: (node: string) => `${prefix}:jobs:restored:${node}`,
    /** Pub/sub channel: ids of active jobs an operator cancelled; the worker running one aborts it. */
    cancelChannel: `${prefix}:jobs:cancel`,
    /** Marks a cancelled job, so a worker that takes it only later (stalled, handed back) aborts it at once. */
    cancelMark: (jobId: string) => `${prefix}:jobs:cancelled:${jobId}`,
    /** Lease semaphore: a batch restore's concurrency. */
    batchSlots: (batchId: string) => `${prefix}:jobs:slots:batch:${batchId}`,
  };
}
