export { CronExpression, CronSyntaxError, nextRuns } from './cron.js';
export {
  ScheduleStore,
  ScheduleStoreError,
  type ScheduleChange,
  type ScheduleOrigin,
  type ScheduleRecord,
  type ScheduleState,
  type SeedReport,
} from './schedule-store.js';
export { Scheduler, TriggerError, type SchedulerConfig, type SchedulerOptions } from './scheduler.js';
export { scheduleIdOfJob, tickJobId } from './tick-job.js';
export { planTick, type TickDecision, type TickFacts, type TickSource } from './tick-plan.js';
export { dumpJobOf, type DumpEnqueuer } from './tick-runner.js';
export {
  loadSchedulesFromConfig,
  scheduleSchema,
  type Schedule,
  type ScheduleInput,
} from './schema.js';
export { TickClaims, type ClaimState, type TickClaim } from './tick-claims.js';
export { toRunTime, toScheduleView, type RunTime, type ScheduleView } from './view.js';
export { startSchedulerService, type SchedulerService, type SchedulerServiceOptions } from './start-scheduler.js';
export { TickPool } from './tick-pool.js';
