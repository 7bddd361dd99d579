import { randomUUID } from 'node:crypto';

/** Job id of a tick: the same in every process, so a second enqueue of the tick finds the first job. */
export function tickJobId(scheduleId: string, tickMs: number): string {
  return `sched-${scheduleId}-${tickMs}`;
}

/** Job id of a trigger-now: unique, and still names its schedule. */
export function manualJobId(scheduleId: string): string {
  return `sched-${scheduleId}-manual-${randomUUID()}`;
}

/** The schedule a scheduler-made job id belongs to, or null. */
export function scheduleIdOfJob(jobId: string | undefined): string | null {
  const m = jobId ? /^sched-(.+)-(?:\d+|manual-[0-9a-f-]{36})$/.exec(jobId) : null;
  return m ? m[1]! : null;
}
