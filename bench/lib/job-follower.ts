import type { Redis } from 'ioredis';
import type { EventLog } from '../../src/events/event-log.js';
import type { FeedEvent } from '../../src/events/types.js';

/**
 * Follows the event stream from where it is now: `finished(ids)` resolves with each job's finishing event
 * (job.completed, or a final job.failed, which throws) as it arrives.
 */
export class JobFollower {
  private constructor(
    private readonly eventLog: EventLog,
    private readonly blocking: Redis,
    private lastEventId: string,
  ) {}

  static async start(eventLog: EventLog, blocking: Redis): Promise<JobFollower> {
    return new JobFollower(eventLog, blocking, await eventLog.lastId());
  }

  async finished(jobIds: Set<string>): Promise<Map<string, FeedEvent>> {
    const done = new Map<string, FeedEvent>();
    while (done.size < jobIds.size) {
      for (const e of await this.eventLog.waitAfter(this.blocking, this.lastEventId, 5000)) {
        this.lastEventId = e.id;
        if ((e.event === 'job.completed' || (e.event === 'job.failed' && e.data.final)) && jobIds.has(e.jobId!)) done.set(e.jobId!, e);
      }
    }
    for (const [id, e] of done) if (e.event === 'job.failed') throw new Error(`job ${id} failed: ${e.data.reason}`);
    return done;
  }
}
