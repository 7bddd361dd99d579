import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { CronExpression } from './cron.js';
import type { ScheduleRecord, ScheduleState, ScheduleStore } from './schedule-store.js';
import type { Schedule } from './schema.js';
import { isActiveHere } from './tick-plan.js';
import { TickPool } from './tick-pool.js';

export interface ScheduleArmingOptions {
  /** Duplicated for the change subscription. */
  redis: Redis;
  store: ScheduleStore;
  /** This scheduler's node: schedules of other nodes are armed here only with followsOtherNodes. */
  node: string;
  followsOtherNodes: boolean;
  /** config scheduler.reloadIntervalMs: a full reload now and then, in case a change notification was lost. */
  reloadIntervalMs: number;
  logger: Logger;
  /** Called at each run time of an armed schedule. */
  onTick(scheduleId: string, tickMs: number): void;
}

interface Armed {
  /** cron + timezone + dst: what the ticks are made from. */
  version: string;
  cron: CronExpression;
  unsubscribe: () => void;
  /** The definition as last loaded (a tick re-reads it from Redis once it holds the claim). */
  schedule: Schedule;
}

/**
 * Keeps the tick timers in step with the schedules in Redis: every active schedule of this node is armed on the
 * shared TickPool (one timer per distinct time pattern, not one per schedule), re-armed when its cron, time zone or
 * DST policy changes, disarmed when it is paused, disabled or deleted. Follows changes from every process (pub/sub)
 * and reloads everything when the store says a write happened that it did not hear of.
 */
export class ScheduleArming {
  private readonly armed = new Map<string, Armed>();
  private readonly ticks = new TickPool();
  /** Parsed expressions by text: schedules share few patterns, and parsing (validation included) is the dear part of arming. */
  private parsed = new Map<string, CronExpression>();
  private subscriber?: Redis;
  private reloadTimer?: NodeJS.Timeout;
  private syncQueue: Promise<void> = Promise.resolve();
  /** The store's version the last full load read. */
  private loadedVersion = '';
  private running = false;

  constructor(private readonly options: ScheduleArmingOptions) {}

  /** Subscribes to changes, then arms every active schedule; returns the states it read (for missed-tick catch-up). */
  async start(): Promise<Map<string, ScheduleState>> {
    this.running = true;
    const { store, logger } = this.options;
    // Subscribe before the first full load, so no change slips between the two.
    this.subscriber = this.options.redis.duplicate({ enableAutoPipelining: false, lazyConnect: false });
    // ioredis reconnects by itself; without a listener its connection errors would be "unhandled".
    this.subscriber.on('error', (err: Error) => logger.debug({ err }, 'scheduler: pub/sub connection error'));
    this.subscriber.on('message', (_channel: string, message: string) => {
      try {
        const { id } = JSON.parse(message) as { id: string };
        this.enqueueSync(() => this.syncOne(id));
      } catch (err) {
        logger.warn({ err, message }, 'scheduler: bad change notification');
      }
    });
    await this.subscriber.subscribe(store.channel);
    const states = await this.syncAll();
    this.reloadTimer = setInterval(() => this.enqueueSync(() => this.reloadIfChanged()), this.options.reloadIntervalMs);
    return states;
  }

  /** Stops every timer; waits for a reload under way. */
  async stop(): Promise<void> {
    this.running = false;
    clearInterval(this.reloadTimer);
    for (const id of [...this.armed.keys()]) this.disarm(id);
    this.ticks.close();
    await this.syncQueue;
    this.subscriber?.disconnect();
  }

  /** Ids of the schedules armed here, sorted. */
  ids(): string[] {
    return [...this.armed.keys()].sort();
  }

  /** The definition a schedule is armed with, or undefined when it is not armed here. */
  schedule(id: string): Schedule | undefined {
    return this.armed.get(id)?.schedule;
  }

  /**
   * Ticks that passed while no scheduler ran: per armed schedule, its latest run time up to `now` when that is after
   * its lastTickAt (which creation, resume and updates move to "now"). One per schedule; the missed policy decides.
   */
  missedTicks(states: Map<string, ScheduleState>, now: number): { scheduleId: string; tickMs: number }[] {
    const missed: { scheduleId: string; tickMs: number }[] = [];
    for (const [id, { cron, schedule }] of this.armed) {
      const lastTickAt = states.get(id)?.lastTickAt;
      if (!lastTickAt) continue;
      const latest = cron.prev(now + 1, schedule.timezone, schedule.dst);
      if (latest !== null && latest > lastTickAt) missed.push({ scheduleId: id, tickMs: latest });
    }
    return missed;
  }

  private enqueueSync(fn: () => Promise<void>): void {
    this.syncQueue = this.syncQueue.then(fn).catch((err) => this.options.logger.warn({ err }, 'scheduler: reload failed'));
  }

  /** A full load only when some write happened since the last one (whose notification may have been lost). */
  private async reloadIfChanged(): Promise<void> {
    if ((await this.options.store.version()) !== this.loadedVersion) await this.syncAll();
  }

  private async syncAll(): Promise<Map<string, ScheduleState>> {
    const { store } = this.options;
    // Read first: a write during the load moves it on, and the next reload loads again.
    this.loadedVersion = await store.version();
    this.parsed = new Map();
    const records = await store.list();
    const states = await store.getStates(records.map((r) => r.schedule.id));
    const seen = new Set<string>();
    for (const record of records) {
      seen.add(record.schedule.id);
      this.apply(record.schedule.id, record, states.get(record.schedule.id)!);
    }
    for (const id of [...this.armed.keys()]) if (!seen.has(id)) this.disarm(id);
    return states;
  }

  private async syncOne(id: string): Promise<void> {
    const [record, state] = await Promise.all([this.options.store.get(id), this.options.store.getState(id)]);
    this.apply(id, record, state);
  }

  private apply(id: string, record: ScheduleRecord | null, state: ScheduleState): void {
    if (!this.running) return;
    if (!isActiveHere(record, state, this.options.node, this.options.followsOtherNodes)) {
      this.disarm(id);
      return;
    }
    const { cron: expression, timezone, dst = 'cron' } = record.schedule;
    const version = `${expression}|${timezone}|${dst}`;
    const current = this.armed.get(id);
    if (current?.version === version) {
      current.schedule = record.schedule;
      return;
    }
    this.disarm(id);
    let cron = this.parsed.get(expression);
    if (!cron) this.parsed.set(expression, (cron = CronExpression.parse(expression)));
    const unsubscribe = this.ticks.subscribe(cron, timezone, dst, (tickMs) => this.options.onTick(id, tickMs));
    this.armed.set(id, { version, cron, unsubscribe, schedule: record.schedule });
  }

  private disarm(id: string): void {
    const armed = this.armed.get(id);
    if (!armed) return;
    armed.unsubscribe();
    this.armed.delete(id);
  }
}
