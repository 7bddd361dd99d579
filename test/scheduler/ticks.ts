import { nextRuns } from '../../src/scheduler/cron.js';

/** Every tick of a cron schedule from `first` to `last` (epoch ms, both included), as the cron expression gives them. */
export function cronTicks(schedule: { cron: string; timezone?: string }, first: number, last: number): number[] {
  const s = { cron: schedule.cron, timezone: schedule.timezone ?? 'UTC' };
  const ticks = [first];
  for (;;) {
    const next = nextRuns(s, 1, ticks.at(-1)!)[0]!.getTime();
    if (next > last) return ticks;
    ticks.push(next);
  }
}
