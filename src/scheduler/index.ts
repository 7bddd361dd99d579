export { CronExpression, CronSyntaxError, nextRuns } from './cron.js';
export { Pruner, type PrunedCheckpoint, type PrunerOptions, type RetentionCatalog } from './pruner.js';
export { planRetention, type PruneCandidate, type PruneReason, type RetainedCheckpoint } from './retention.js';
export {
  ScheduleStore,
  ScheduleStoreError,
  type ScheduleChange,
  type ScheduleOrigin,
  type ScheduleRecord,
  type ScheduleState,
  type SeedReport,
} from './schedule-store.js';
export {
  Scheduler,
  TriggerError,
  scheduleIdOfJob,
  tickJobId,
  type DumpEnqueuer,
  type SchedulerConfig,
  type SchedulerOptions,
} from './scheduler.js';
export {
  durationSchema,
  loadSchedulesFromConfig,
  parseDuration,
  retentionSchema,
  scheduleIdSchema,
  scheduleSchema,
  type Schedule,
  type ScheduleInput,
} from './schema.js';
export { TickClaims, type ClaimState, type TickClaim } from './tick-claims.js';
export { toRunTime, toScheduleView, type RunTime, type ScheduleView } from './view.js';
export { startSchedulerService, type SchedulerService, type SchedulerServiceOptions } from './service.js';
export { TickPool } from './tick-pool.js';
