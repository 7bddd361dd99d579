import { randomUUID } from 'node:crypto';
import cron, { type Logger as NodeCronLogger, type ScheduledTask } from 'node-cron';
import type { CronExpression } from './cron.js';
import { wallTimeAt } from './zoned-time.js';

type Listener = (tickMs: number) => void;

interface PooledTask {
  task: ScheduledTask;
  listeners: Set<Listener>;
}

/**
 * node-cron tasks shared by every schedule with the same pattern and time zone: 10,000 schedules on 60 distinct
 * patterns run 60 timers, not 10,000 (each node-cron task keeps a timer and recomputes its next run at every tick).
 *
 * Each subscriber gets `onTick(tickMs)` at the run times of its own expression: crontab's either-day rule (see
 * CronExpression) is applied per subscriber, since schedules with different day fields can share a time-only task.
 * A tick node-cron could not run on time (a blocked event loop) is still delivered, late.
 */
export class TickPool {
  private readonly tasks = new Map<string, PooledTask>();

  constructor(private readonly logger?: NodeCronLogger) {}

  /** Starts delivering ticks; the returned function stops them (and the task, when it was the last subscriber). */
  subscribe(expression: CronExpression, timeZone: string, onTick: Listener): () => void {
    const key = `${expression.tickPattern}|${timeZone}`;
    let pooled = this.tasks.get(key);
    if (!pooled) {
      pooled = this.start(expression.tickPattern, timeZone);
      this.tasks.set(key, pooled);
    }
    const listener: Listener = (tickMs) => {
      if (expression.eitherDayMatches) {
        const w = wallTimeAt(tickMs, timeZone);
        if (!expression.matchesDay(w.year, w.month, w.day)) return;
      }
      onTick(tickMs);
    };
    const entry = pooled;
    entry.listeners.add(listener);
    return () => {
      entry.listeners.delete(listener);
      if (entry.listeners.size || this.tasks.get(key) !== entry) return;
      this.tasks.delete(key);
      void entry.task.destroy();
    };
  }

  /** Distinct node-cron tasks running. */
  get taskCount(): number {
    return this.tasks.size;
  }

  close(): void {
    for (const { task } of this.tasks.values()) void task.destroy();
    this.tasks.clear();
  }

  private start(pattern: string, timeZone: string): PooledTask {
    const listeners = new Set<Listener>();
    const deliver = (date: Date) => {
      for (const listener of listeners) listener(date.getTime());
    };
    const task = cron.createTask(pattern, (ctx) => deliver(ctx.date), {
      timezone: timeZone,
      name: `ckpt-${randomUUID()}`,
      ...(this.logger ? { logger: this.logger } : {}),
    });
    task.on('execution:missed', (ctx) => deliver(ctx.date));
    void task.start();
    return { task, listeners };
  }
}
