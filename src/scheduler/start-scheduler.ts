import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import type { EventLog } from '../events/event-log.js';
import type { RetentionCatalog } from '../retention/pruner.js';
import { limitHeapGrowth } from './heap-growth.js';
import { ScheduleStore, type SeedReport } from './schedule-store.js';
import { Scheduler, type SchedulerOptions } from './scheduler.js';
import type { DumpEnqueuer } from './tick-runner.js';
import { loadSchedulesFromConfig } from './schema.js';

export interface SchedulerServiceOptions {
  config: Config;
  /** The config file (for errors about its `schedules:`); default "config". */
  configFile?: string;
  redis: Redis;
  eventLog: EventLog;
  /** src/queue's JobQueue. */
  enqueuer: DumpEnqueuer;
  /** src/catalog's Catalog (retention). */
  catalog?: RetentionCatalog;
  /** Checks a trigger-now's target (resolves it with the workload registry, applies the policy); see SchedulerOptions. */
  checkTarget?: SchedulerOptions['checkTarget'];
  /** The nodes live workers serve: ticks of schedules of nodes nobody serves are reported failed here. */
  liveNodes?: SchedulerOptions['liveNodes'];
  logger: Logger;
}

export interface SchedulerService {
  store: ScheduleStore;
  /** Started when config.scheduler.enabled; trigger() works either way (for the API). */
  scheduler: Scheduler;
  seed: SeedReport;
  stop(): Promise<void>;
}

/**
 * What `ckpt up` (and any process with the scheduler role) runs: validates the config's schedules (ValidationError
 * naming the file, the schedule and the field), seeds them into Redis (see ScheduleStore.seedFromConfig), and starts
 * the scheduler unless config.scheduler.enabled is false. Register src/api/routes/schedules.ts with
 * `{store, scheduler}` from the result.
 */
export async function startSchedulerService(options: SchedulerServiceOptions): Promise<SchedulerService> {
  const { config, logger } = options;
  const schedules = loadSchedulesFromConfig(config.schedules, options.configFile ?? 'config');
  const store = new ScheduleStore(options.redis, config.redis.prefix);
  const seed = await store.seedFromConfig(schedules);
  if (schedules.length) logger.info({ seed }, `schedules from ${options.configFile ?? 'config'} seeded`);
  const scheduler = new Scheduler({
    redis: options.redis,
    store,
    enqueuer: options.enqueuer,
    eventLog: options.eventLog,
    config,
    logger,
    ...(options.catalog ? { catalog: options.catalog } : {}),
    ...(config.storage.retention ? { unscheduledRetention: config.storage.retention } : {}),
    ...(options.checkTarget ? { checkTarget: options.checkTarget } : {}),
    ...(options.liveNodes ? { liveNodes: options.liveNodes } : {}),
  });
  if (config.scheduler.enabled) {
    limitHeapGrowth(config.scheduler.heapGrowthPercent);
    await scheduler.start();
  }
  return { store, scheduler, seed, stop: () => scheduler.stop() };
}
