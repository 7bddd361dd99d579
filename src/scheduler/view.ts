import { CronExpression, type Run } from './cron.js';
import type { ScheduleRecord, ScheduleState, ScheduleStore } from './schedule-store.js';
import type { Schedule } from './schema.js';
import { wallTimeAt, type WallTime } from './zoned-time.js';

/** A schedule as the API and the CLI show it: definition, origin, run-time state and the next run. */
export type ScheduleView = Schedule & {
  origin: ScheduleRecord['origin'];
  createdAt: number;
  updatedAt: number;
  state: ScheduleState & { healthy: boolean };
  /** ms since the epoch; null while paused or disabled. */
  nextRunAt: number | null;
  /** The next NEXT_RUNS_IN_VIEW run times (the first is nextRunAt); empty while paused or disabled. */
  nextRuns: RunTime[];
};

/** Enough upcoming runs for an operator to see the rhythm of a schedule at a glance (the dashboard shows them). */
const NEXT_RUNS_IN_VIEW = 3;

export function toScheduleView(record: ScheduleRecord, state: ScheduleState, now = Date.now()): ScheduleView {
  const s = record.schedule;
  const active = s.enabled && !state.paused;
  const runs = active ? CronExpression.parse(s.cron).runs(now, NEXT_RUNS_IN_VIEW, s.timezone, s.dst) : [];
  return {
    ...s,
    origin: record.origin,
    createdAt: record.createdAt,
    updatedAt: record.updatedAt,
    state: { ...state, healthy: !state.unhealthy },
    nextRunAt: runs[0]?.at ?? null,
    nextRuns: runs.map((run) => toRunTime(run, s.timezone)),
  };
}

/** Every stored schedule as a view. */
export async function listScheduleViews(store: Pick<ScheduleStore, 'list' | 'getStates'>, now = Date.now()): Promise<ScheduleView[]> {
  const records = await store.list();
  const states = await store.getStates(records.map((r) => r.schedule.id));
  return records.map((r) => toScheduleView(r, states.get(r.schedule.id)!, now));
}

/** One upcoming run: the instant (ISO, UTC) and the wall-clock time in the schedule's zone. */
export interface RunTime {
  at: string;
  local: string;
  /**
   * Only when DST changed the run: `moved` (its wall-clock time `due` was skipped when the clocks went forward: it
   * runs right after the gap) or `repeated` (the second pass of a wall-clock time the clocks went back over).
   */
  dst?: 'moved' | 'repeated';
  /** For a moved run: the skipped wall-clock time it was due at. */
  due?: string;
}

export function toRunTime(run: Run, timeZone: string): RunTime {
  return {
    at: new Date(run.at).toISOString(),
    local: formatWallTime(wallTimeAt(run.at, timeZone)),
    ...(run.dst ? { dst: run.dst } : {}),
    ...(run.due ? { due: formatWallTime(run.due) } : {}),
  };
}

function formatWallTime(w: WallTime): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${w.year}-${p(w.month)}-${p(w.day)} ${p(w.hour)}:${p(w.minute)}:${p(w.second)}`;
}

/** Time between the schedule's next two runs (its interval now, for "no checkpoint within 2 intervals"), or null while it does not run. */
export function scheduleIntervalMs(view: ScheduleView): number | null {
  if (view.nextRunAt === null) return null;
  const after = CronExpression.parse(view.cron).next(view.nextRunAt, view.timezone);
  return after === null ? null : after - view.nextRunAt;
}
