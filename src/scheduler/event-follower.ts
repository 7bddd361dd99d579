import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { setTimeout as sleep } from 'node:timers/promises';
import type { EventLog } from '../events/event-log.js';
import { LeaseSemaphore, type Lease } from '../queue/lease-semaphore.js';
import { waitingDuplicate } from '../queue/redis.js';
import type { FeedEvent } from '../events/types.js';

export interface EventFollowerOptions {
  redis: Redis;
  eventLog: EventLog;
  /** Keys: `<name>:lease` (who follows) and `<name>:cursor` (the last event handled, shared). */
  name: string;
  owner: string;
  leaseMs: number;
  logger: Logger;
  /** Called in stream order for each event; an error is logged and the event is passed. */
  onEvent(event: FeedEvent): Promise<void>;
  /** Called each time this process becomes the follower (e.g. to catch up on what no one handled meanwhile). */
  onLead(): Promise<void>;
}

/**
 * Follows the event stream in exactly one process at a time: the holder of a Redis lease reads from a cursor shared
 * in Redis and hands each event to `onEvent`. When the holder dies, another process takes the lease over and goes
 * on from the cursor (events of the batch being handled at that moment may be handled again: handlers must tolerate it).
 * The first follower ever starts at the end of the stream.
 */
export class EventFollower {
  private readonly leases: LeaseSemaphore;
  private lease: Lease | null = null;
  private readonly cursorKey: string;
  private blocking?: Redis;
  private running = false;
  private loop?: Promise<void>;

  constructor(private readonly options: EventFollowerOptions) {
    this.leases = new LeaseSemaphore(options.redis, { key: `${options.name}:lease`, leaseMs: options.leaseMs });
    this.cursorKey = `${options.name}:cursor`;
  }

  start(): void {
    this.running = true;
    this.blocking = waitingDuplicate(this.options.redis);
    this.blocking.on('error', (err: Error) => this.options.logger.debug({ err }, 'scheduler: event follower connection error'));
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.blocking?.disconnect();
    await this.loop;
    await this.lease?.release();
  }

  private async run(): Promise<void> {
    const { leaseMs, logger, owner } = this.options;
    let cursor = '';
    while (this.running) {
      try {
        if (!this.lease || this.lease.lost) {
          await this.lease?.release();
          // The lease renews itself in the background while held; `lost` says another process follows now.
          this.lease = (await this.leases.acquire(owner)).lease;
          if (!this.lease) {
            await sleep(leaseMs / 3);
            continue;
          }
          cursor = (await this.options.redis.get(this.cursorKey)) ?? (await this.options.eventLog.lastId());
          await this.options.onLead();
        }
        const events = await this.options.eventLog.waitAfter(this.blocking!, cursor, Math.max(100, Math.floor(leaseMs / 4)));
        for (const event of events) {
          if (!this.running || this.lease.lost) break;
          await this.options.onEvent(event).catch((err) => logger.error({ err, eventId: event.id }, 'scheduler: event handler failed'));
          cursor = event.id;
        }
        // Saved once per batch: a takeover re-reads at most one batch (handlers tolerate seeing an event twice).
        if (events.length) await this.options.redis.set(this.cursorKey, cursor);
      } catch (err) {
        if (!this.running) break;
        logger.warn({ err }, 'scheduler: event follower error, retrying');
        await sleep(Math.min(1000, leaseMs / 3));
      }
    }
  }
}
