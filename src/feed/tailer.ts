import type { Redis } from 'ioredis';
import { setTimeout as sleep } from 'node:timers/promises';
import type { EventLog } from '../events/event-log.js';
import type { FeedEvent } from '../events/types.js';

export interface EventTailerOptions {
  eventLog: EventLog;
  /** A connection the tailer owns and blocks on (XREAD BLOCK); it is closed by stop(). Pass `waitingDuplicate(redis)`. */
  blockingRedis: Redis;
  /** How long one XREAD blocks. Default 5000 ms. */
  blockMs?: number;
  /** Most events taken per read. Default 1000. */
  batchSize?: number;
  /** Called when a read fails (the tailer retries with backoff). Default: nothing. */
  onError?: (err: Error) => void;
}

export type EventsListener = (events: FeedEvent[]) => void;

const MAX_RETRY_DELAY_MS = 5000;

/**
 * Reads the event stream once for the whole process and hands each batch to every listener (the feed's clients, the
 * metrics): one blocking reader per process, not one per client. It starts at the newest event when started, so
 * listeners see what happens from then on; history is read separately (replay).
 */
export class EventTailer {
  private readonly listeners = new Set<EventsListener>();
  private cursor = '0-0';
  private running = false;
  private loop?: Promise<void>;

  constructor(private readonly options: EventTailerOptions) {
    // Connection errors also fail the pending XREAD, which the loop reports (once per failure, not per reconnect try).
    options.blockingRedis.on('error', () => undefined);
  }

  /** The id of the newest event handed to listeners (or the newest in the stream when the tailer started). */
  get head(): string {
    return this.cursor;
  }

  /** Adds a listener; returns the function that removes it. Listeners run synchronously; what they throw goes to onError. */
  onEvents(listener: EventsListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async start(): Promise<void> {
    if (this.running) return;
    this.cursor = await this.options.eventLog.lastId();
    this.running = true;
    this.loop = this.run();
  }

  /** Stops reading and closes the blocking connection (also when never started). */
  async stop(): Promise<void> {
    this.running = false;
    // Disconnecting interrupts the blocked XREAD; the loop then sees running === false.
    this.options.blockingRedis.disconnect();
    await this.loop;
  }

  private async run(): Promise<void> {
    const { eventLog, blockingRedis, blockMs = 5000, batchSize = 1000 } = this.options;
    let failures = 0;
    while (this.running) {
      let events: FeedEvent[];
      try {
        events = await eventLog.waitAfter(blockingRedis, this.cursor, blockMs, batchSize);
        failures = 0;
      } catch (err) {
        if (!this.running) break;
        this.options.onError?.(err as Error);
        failures++;
        await sleep(Math.min(MAX_RETRY_DELAY_MS, 50 * 2 ** failures));
        continue;
      }
      if (events.length === 0) continue;
      this.cursor = events[events.length - 1]!.id;
      for (const listener of this.listeners) {
        try {
          listener(events);
        } catch (err) {
          this.options.onError?.(err as Error);
        }
      }
    }
  }
}
