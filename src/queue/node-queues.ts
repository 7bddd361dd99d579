import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { queueKeys, queueNameFor } from './keys.js';

/**
 * The BullMQ queue of each node (one per node), made on first use over one connection, and the index saying which
 * node's queue holds a job.
 */
export class NodeQueues {
  private readonly queues = new Map<string, Queue>();
  private readonly jobNodesKey: string;

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {
    this.jobNodesKey = queueKeys(prefix).jobNodes;
  }

  of(node: string): Queue {
    let queue = this.queues.get(node);
    if (!queue) {
      queue = new Queue(queueNameFor(node), { connection: this.redis, prefix: this.prefix });
      this.queues.set(node, queue);
    }
    return queue;
  }

  /** The node whose queue holds (or held) the job, or null for an id never enqueued. */
  nodeOf(jobId: string): Promise<string | null> {
    return this.redis.hget(this.jobNodesKey, jobId);
  }

  /** Closes the queues; the connection stays its owner's. */
  async close(): Promise<void> {
    await Promise.all([...this.queues.values()].map((q) => q.close()));
  }
}

/**
 * True while the job may still run: waiting, delayed, active or waiting for children. For the catalog's isRefLive (a
 * restore's ref on a checkpoint lapses with its job). Apart from JobQueue, which needs the catalog to enqueue restores:
 * the catalog asks this instead of the queue, so neither has to be made before the other.
 */
export async function isJobLive(queues: NodeQueues, jobId: string): Promise<boolean> {
  const node = await queues.nodeOf(jobId);
  if (!node) return false;
  // 'unknown': removed by retention, or claimed and not added yet.
  const state = await queues.of(node).getJobState(jobId);
  return state !== 'completed' && state !== 'failed' && state !== 'unknown';
}
