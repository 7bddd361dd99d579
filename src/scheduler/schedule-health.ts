import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { EventLog } from '../events/event-log.js';
import type { FeedEvent } from '../events/types.js';
import type { Pruner } from '../retention/pruner.js';
import type { ScheduleStore } from './schedule-store.js';
import type { Schedule } from './schema.js';
import { scheduleIdOfJob } from './tick-job.js';

export interface ScheduleHealthOptions {
  /** The scheduler's connection (the verify counters). */
  redis: Redis;
  store: ScheduleStore;
  eventLog: EventLog;
  /** config redis.prefix: verify counters are `<prefix>:scheduler:verify:<scheduleId>:*`. */
  prefix: string;
  /** config scheduler.unhealthyAfter. */
  unhealthyAfter: number;
  /** How long a checkpoint is remembered as counted for `verify` (config scheduler.tickClaimTtlMs). */
  verifySeenTtlMs: number;
  /** Enqueues a restore drill (src/queue's JobQueue.enqueueVerify); without it nothing is drilled. */
  enqueueVerify?: (input: { checkpointId: string; scheduleId: string }) => Promise<unknown>;
  /** Retention after each checkpoint; without it nothing is pruned. */
  pruner?: Pruner;
  logger: Logger;
}

/**
 * What happens to a schedule after its ticks: failures in a row make it unhealthy (announced once), a checkpoint
 * heals it, is drilled when `verify` says so and triggers retention. Fed by the scheduler's event follower (one
 * process at a time) and by the tick runner (targets refused at enqueue).
 */
export class ScheduleHealth {
  constructor(private readonly options: ScheduleHealthOptions) {}

  /** One more failure in a row; at `unhealthyAfter` the schedule becomes unhealthy (it keeps running). */
  async countFailure(id: string, reason: string): Promise<void> {
    const { store, eventLog, logger, unhealthyAfter } = this.options;
    const r = await store.recordFailure(id, reason, unhealthyAfter);
    if (!r.becameUnhealthy) return;
    logger.warn({ scheduleId: id, consecutiveFailures: r.consecutiveFailures, reason }, `schedule ${id} is unhealthy`);
    await eventLog.publish({ event: 'schedule.unhealthy', scheduleId: id, data: { consecutiveFailures: r.consecutiveFailures, reason } });
  }

  /** Checkpoints end a failure streak, are drilled and trigger retention; final failures add to the streak. */
  async onEvent(e: FeedEvent): Promise<void> {
    if (e.event !== 'checkpoint.created' && e.event !== 'job.failed') return;
    const scheduleId = e.scheduleId ?? (e.data.scheduleId as string | undefined) ?? scheduleIdOfJob(e.jobId);
    if (e.event === 'checkpoint.created' && !scheduleId && e.target) {
      await this.options.pruner?.pruneUnscheduled(e.target);
      return;
    }
    const record = scheduleId ? await this.options.store.get(scheduleId) : null;
    if (!scheduleId || !record) return;
    if (e.event === 'checkpoint.created') {
      await this.options.store.recordSuccess(scheduleId);
      await this.drillIfDue(record.schedule, String(e.data.checkpointId));
      await this.options.pruner?.pruneSchedule(scheduleId);
    } else if ((e.jobType ?? 'dump') === 'dump' && e.data.final === true) {
      // Only a final failure counts: an attempt that will be retried may still end in a checkpoint.
      const reason = String(e.data.failedReason ?? e.data.reason ?? e.data.message ?? 'dump job failed');
      await this.countFailure(scheduleId, `job ${e.jobId} failed: ${reason}`);
    }
  }

  /** `verify: true` drills every checkpoint of the schedule, `verify: N` every Nth (counted in Redis, each checkpoint once). */
  private async drillIfDue(schedule: Schedule, checkpointId: string): Promise<void> {
    const { redis, enqueueVerify, prefix, verifySeenTtlMs } = this.options;
    const every = schedule.verify === true ? 1 : schedule.verify || 0;
    if (!every || !enqueueVerify) return;
    const key = `${prefix}:scheduler:verify:${schedule.id}`;
    // A follower that takes over may hand this event over again: count each checkpoint once.
    if (!(await redis.set(`${key}:seen:${checkpointId}`, '1', 'PX', verifySeenTtlMs, 'NX'))) return;
    if ((await redis.incr(`${key}:count`)) % every === 0) await enqueueVerify({ checkpointId, scheduleId: schedule.id });
  }
}
