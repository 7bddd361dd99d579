import { CronExpression, type DstPolicy, type Run } from './cron.js';

type Listener = (tickMs: number) => void;

interface PooledTimer {
  listeners: Set<(run: Run) => void>;
  /** The run the timer waits for; null when there is none left (or the timer was stopped). */
  next: Run | null;
  timer?: NodeJS.Timeout;
}

/** setTimeout's longest delay (about 24.8 days); a later run is reached in several waits. */
const MAX_DELAY_MS = 2 ** 31 - 1;

/**
 * One timer shared by every schedule with the same time fields, time zone and DST policy: 10,000 schedules on 60
 * distinct patterns run 60 timers, not 10,000. The run times are CronExpression's (cron(8)'s DST rules), so the
 * ticks are exactly what next-runs shows.
 *
 * Each subscriber gets `onTick(tickMs)` at the run times of its own expression: crontab's either-day rule (see
 * CronExpression) is applied per subscriber, since schedules with different day fields can share a time-only timer.
 * A run the timer could not deliver on time (a blocked event loop) is still delivered, late.
 */
export class TickPool {
  private readonly timers = new Map<string, PooledTimer>();

  /** Starts delivering ticks; the returned function stops them (and the timer, when it was the last subscriber). */
  subscribe(expression: CronExpression, timeZone: string, dst: DstPolicy, onTick: Listener): () => void {
    const key = `${expression.tickPattern}|${timeZone}|${dst}`;
    let pooled = this.timers.get(key);
    if (!pooled) {
      pooled = this.start(CronExpression.parse(expression.tickPattern), timeZone, dst);
      this.timers.set(key, pooled);
    }
    const listener = (run: Run) => {
      if (expression.eitherDayMatches && !expression.matchesDay(run.date.year, run.date.month, run.date.day)) return;
      onTick(run.at);
    };
    const entry = pooled;
    entry.listeners.add(listener);
    return () => {
      entry.listeners.delete(listener);
      if (entry.listeners.size || this.timers.get(key) !== entry) return;
      this.timers.delete(key);
      stopTimer(entry);
    };
  }

  /** Distinct timers running. */
  get taskCount(): number {
    return this.timers.size;
  }

  close(): void {
    for (const pooled of this.timers.values()) stopTimer(pooled);
    this.timers.clear();
  }

  private start(expression: CronExpression, timeZone: string, dst: DstPolicy): PooledTimer {
    const pooled: PooledTimer = { listeners: new Set(), next: expression.nextRun(Date.now(), timeZone, dst) };
    const arm = () => {
      if (pooled.next === null) return;
      pooled.timer = setTimeout(fire, Math.min(MAX_DELAY_MS, Math.max(0, pooled.next.at - Date.now())));
    };
    const fire = () => {
      const now = Date.now();
      // Every run due by now, in order (several after a blocked event loop); a timer that fired early just waits again.
      while (pooled.next !== null && pooled.next.at <= now) {
        const run = pooled.next;
        pooled.next = expression.nextRun(run.at, timeZone, dst);
        for (const listener of pooled.listeners) listener(run);
      }
      arm();
    };
    arm();
    return pooled;
  }
}

function stopTimer(pooled: PooledTimer): void {
  pooled.next = null;
  clearTimeout(pooled.timer);
}
