import type { Redis } from 'ioredis';
import { RedisScript } from '../common/redis-script.js';
import type { Schedule } from './schema.js';

/** Where a schedule's definition came from. Config seeding only ever rewrites `config` ones. */
export type ScheduleOrigin = 'config' | 'api';

/** A stored schedule: the validated definition and bookkeeping. */
export interface ScheduleRecord {
  schedule: Schedule;
  origin: ScheduleOrigin;
  /** ms since the epoch. */
  createdAt: number;
  updatedAt: number;
}

/** Run-time state of a schedule, shared by every scheduler process. Times are ms since the epoch. */
export interface ScheduleState {
  paused: boolean;
  /** Failures in a row (target not resolving, enqueue refused, dump job failed); a new checkpoint resets it. */
  consecutiveFailures: number;
  /** Set after config.scheduler.unhealthyAfter consecutive failures; the schedule keeps running. */
  unhealthy: boolean;
  /** The latest tick any scheduler claimed (missed-tick detection starts from here). */
  lastTickAt?: number;
  /** When the latest job was enqueued, and its id. */
  lastFiredAt?: number;
  lastJobId?: string;
  lastCheckpointAt?: number;
  lastFailure?: { at: number; reason: string };
  lastSkip?: { at: number; reason: string };
}

export type ScheduleStoreErrorCode = 'ESCHEDULE_NOT_FOUND' | 'EEXISTS';

export class ScheduleStoreError extends Error {
  constructor(
    readonly code: ScheduleStoreErrorCode,
    message: string,
    readonly scheduleId: string,
  ) {
    super(message);
    this.name = 'ScheduleStoreError';
  }
}

/** What config seeding did, per schedule id. */
export interface SeedReport {
  created: string[];
  updated: string[];
  unchanged: string[];
  /** Changed through the API since: the API's version stays. */
  keptApiVersion: string[];
  /** Deleted through the API: not brought back. */
  keptDeleted: string[];
}

/** A change notification, published on `channel` after every write. */
export interface ScheduleChange {
  id: string;
  op: 'put' | 'delete' | 'pause' | 'resume';
}

// Replaces a definition only if it is still what the caller read ('' = absent), so concurrent writers never lose
// each other's change silently. KEYS: defs. ARGV: id, expected JSON or '', new JSON.
const COMPARE_AND_SET = new RedisScript('ckptScheduleCompareAndSet', `
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if (cur or '') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1`);

// KEYS: state hash. ARGV: field, value. Keeps the larger number.
const SET_MAX = new RedisScript('ckptScheduleSetMax', `
local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if tonumber(ARGV[2]) > cur then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
return 1`);

// KEYS: state hash. ARGV: threshold, at, reason. Returns {failures, 1 when this failure made it unhealthy}.
const RECORD_FAILURE = new RedisScript('ckptScheduleRecordFailure', `
local n = redis.call('HINCRBY', KEYS[1], 'consecutiveFailures', 1)
redis.call('HSET', KEYS[1], 'lastFailureAt', ARGV[2], 'lastFailureReason', ARGV[3])
if n >= tonumber(ARGV[1]) and redis.call('HGET', KEYS[1], 'unhealthy') ~= '1' then
  redis.call('HSET', KEYS[1], 'unhealthy', '1')
  return {n, 1}
end
return {n, 0}`);

/**
 * Schedules in Redis, shared by every process. Layout under `<prefix>:schedules:`:
 * `defs` hash id -> JSON ScheduleRecord; `state:<id>` hash (ScheduleState); `deleted` set of config-origin ids
 * deleted through the API; `version`, moved on by every write; and the pub/sub channel `changed` (JSON ScheduleChange)
 * so other processes pick changes up.
 *
 * Seeding from config (seedFromConfig): a schedule is created when absent, rewritten when it still has origin
 * `config` and the config says something else, and left alone once the API changed it (origin `api`) or deleted it.
 */
export class ScheduleStore {
  readonly channel: string;
  private readonly defsKey: string;
  private readonly deletedKey: string;
  private readonly versionKey: string;

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {
    for (const script of [COMPARE_AND_SET, SET_MAX, RECORD_FAILURE]) script.defineOn(redis);
    this.defsKey = `${prefix}:schedules:defs`;
    this.deletedKey = `${prefix}:schedules:deleted`;
    this.channel = `${prefix}:schedules:changed`;
    this.versionKey = `${prefix}:schedules:version`;
  }

  /** The same store over another connection (the scheduler's auto-pipelined one). */
  withConnection(redis: Redis): ScheduleStore {
    return new ScheduleStore(redis, this.prefix);
  }

  async list(): Promise<ScheduleRecord[]> {
    const all = await this.redis.hgetall(this.defsKey);
    return Object.values(all)
      .map((json) => JSON.parse(json) as ScheduleRecord)
      .sort((a, b) => (a.schedule.id < b.schedule.id ? -1 : 1));
  }

  async get(id: string): Promise<ScheduleRecord | null> {
    const json = await this.redis.hget(this.defsKey, id);
    return json ? (JSON.parse(json) as ScheduleRecord) : null;
  }

  /** EEXISTS when the id is taken. */
  async create(schedule: Schedule, origin: ScheduleOrigin = 'api'): Promise<ScheduleRecord> {
    const now = Date.now();
    const record: ScheduleRecord = { schedule, origin, createdAt: now, updatedAt: now };
    if (!(await this.compareAndSet(schedule.id, '', record))) {
      throw new ScheduleStoreError('EEXISTS', `schedule ${schedule.id} exists already`, schedule.id);
    }
    await this.redis.multi().srem(this.deletedKey, schedule.id).del(this.stateKey(schedule.id)).exec();
    await this.notify({ id: schedule.id, op: 'put' });
    return record;
  }

  /** Replaces the definition (origin becomes `api`: config seeding no longer touches it). ESCHEDULE_NOT_FOUND when absent. */
  async update(schedule: Schedule): Promise<ScheduleRecord> {
    for (;;) {
      const current = await this.redis.hget(this.defsKey, schedule.id);
      if (!current) throw notFound(schedule.id);
      const old = JSON.parse(current) as ScheduleRecord;
      const record: ScheduleRecord = { schedule, origin: 'api', createdAt: old.createdAt, updatedAt: Date.now() };
      if (await this.compareAndSet(schedule.id, current, record)) {
        await this.startTicksFromNow(schedule.id);
        await this.notify({ id: schedule.id, op: 'put' });
        return record;
      }
    }
  }

  /** Removes definition and state. A config-origin schedule is remembered as deleted so seeding does not bring it back. */
  async delete(id: string): Promise<void> {
    const record = await this.get(id);
    if (!record) throw notFound(id);
    const tx = this.redis.multi().hdel(this.defsKey, id).del(this.stateKey(id));
    if (record.origin === 'config') tx.sadd(this.deletedKey, id);
    await tx.exec();
    await this.notify({ id, op: 'delete' });
  }

  async pause(id: string): Promise<ScheduleState> {
    await this.mustExist(id);
    await this.redis.hset(this.stateKey(id), 'paused', '1');
    await this.notify({ id, op: 'pause' });
    return this.getState(id);
  }

  /** Ticks missed while paused are not caught up: lastTickAt moves to now. */
  async resume(id: string): Promise<ScheduleState> {
    await this.mustExist(id);
    await this.startTicksFromNow(id);
    await this.redis.hset(this.stateKey(id), 'paused', '0');
    await this.notify({ id, op: 'resume' });
    return this.getState(id);
  }

  async getState(id: string): Promise<ScheduleState> {
    return toState(await this.redis.hgetall(this.stateKey(id)));
  }

  async getStates(ids: string[]): Promise<Map<string, ScheduleState>> {
    if (!ids.length) return new Map();
    const pipeline = this.redis.pipeline();
    for (const id of ids) pipeline.hgetall(this.stateKey(id));
    const rows = (await pipeline.exec()) ?? [];
    return new Map(ids.map((id, i) => [id, toState((rows[i]?.[1] ?? {}) as Record<string, string>)]));
  }

  /** Applies the config's schedules (see the class comment). Never deletes: a schedule gone from the config stays. */
  async seedFromConfig(schedules: Schedule[]): Promise<SeedReport> {
    const report: SeedReport = { created: [], updated: [], unchanged: [], keptApiVersion: [], keptDeleted: [] };
    for (const schedule of schedules) {
      for (;;) {
        if (await this.redis.sismember(this.deletedKey, schedule.id)) {
          report.keptDeleted.push(schedule.id);
          break;
        }
        const current = await this.redis.hget(this.defsKey, schedule.id);
        const now = Date.now();
        if (!current) {
          if (await this.compareAndSet(schedule.id, '', { schedule, origin: 'config', createdAt: now, updatedAt: now })) {
            report.created.push(schedule.id);
            await this.notify({ id: schedule.id, op: 'put' });
            break;
          }
          continue;
        }
        const old = JSON.parse(current) as ScheduleRecord;
        if (old.origin !== 'config') {
          report.keptApiVersion.push(schedule.id);
          break;
        }
        if (JSON.stringify(old.schedule) === JSON.stringify(schedule)) {
          report.unchanged.push(schedule.id);
          break;
        }
        if (await this.compareAndSet(schedule.id, current, { ...old, schedule, updatedAt: now })) {
          await this.startTicksFromNow(schedule.id);
          report.updated.push(schedule.id);
          await this.notify({ id: schedule.id, op: 'put' });
          break;
        }
      }
    }
    return report;
  }

  /** A changed or resumed schedule starts from now: ticks before (of its old cron, or while paused) are not "missed". */
  private async startTicksFromNow(id: string): Promise<void> {
    await this.recordTick(id, Date.now());
  }

  /** Moves lastTickAt forward (never back). */
  async recordTick(id: string, tickMs: number): Promise<void> {
    await SET_MAX.run(this.redis, [this.stateKey(id)], ['lastTickAt', tickMs]);
  }

  async recordFired(id: string, jobId: string, at = Date.now()): Promise<void> {
    await this.redis.hset(this.stateKey(id), 'lastFiredAt', String(at), 'lastJobId', jobId);
  }

  async recordSkip(id: string, reason: string, at = Date.now()): Promise<void> {
    await this.redis.hset(this.stateKey(id), 'lastSkipAt', String(at), 'lastSkipReason', reason);
  }

  /** Counts a failure; `becameUnhealthy` is true for the one failure that reached the threshold. */
  async recordFailure(
    id: string,
    reason: string,
    unhealthyAfter: number,
  ): Promise<{ consecutiveFailures: number; becameUnhealthy: boolean }> {
    const [n, became] = (await RECORD_FAILURE.run(this.redis, [this.stateKey(id)], [unhealthyAfter, Date.now(), reason])) as [
      number,
      number,
    ];
    return { consecutiveFailures: n, becameUnhealthy: became === 1 };
  }

  /** A checkpoint was made: the failure streak ends and the schedule is healthy again. */
  async recordSuccess(id: string, at = Date.now()): Promise<void> {
    await this.redis.hset(this.stateKey(id), 'consecutiveFailures', '0', 'unhealthy', '0', 'lastCheckpointAt', String(at));
  }

  private async mustExist(id: string): Promise<void> {
    if (!(await this.redis.hexists(this.defsKey, id))) throw notFound(id);
  }

  private async compareAndSet(id: string, expected: string, record: ScheduleRecord): Promise<boolean> {
    return (await COMPARE_AND_SET.run(this.redis, [this.defsKey], [id, expected, JSON.stringify(record)])) === 1;
  }

  /**
   * A number that every write moves on: a scheduler re-reads all schedules only when it changed, so its periodic
   * reload (for a lost change notification) costs one GET, not 10,000 records.
   */
  async version(): Promise<string> {
    return (await this.redis.get(this.versionKey)) ?? '0';
  }

  private async notify(change: ScheduleChange): Promise<void> {
    await this.redis.multi().incr(this.versionKey).publish(this.channel, JSON.stringify(change)).exec();
  }

  private stateKey(id: string): string {
    return `${this.prefix}:schedules:state:${id}`;
  }
}

function notFound(id: string): ScheduleStoreError {
  return new ScheduleStoreError('ESCHEDULE_NOT_FOUND', `schedule ${id} not found`, id);
}

function toState(h: Record<string, string>): ScheduleState {
  const num = (k: string) => (h[k] === undefined ? undefined : Number(h[k]));
  const state: ScheduleState = {
    paused: h.paused === '1',
    consecutiveFailures: num('consecutiveFailures') ?? 0,
    unhealthy: h.unhealthy === '1',
  };
  if (h.lastTickAt) state.lastTickAt = num('lastTickAt');
  if (h.lastFiredAt) state.lastFiredAt = num('lastFiredAt');
  if (h.lastJobId) state.lastJobId = h.lastJobId;
  if (h.lastCheckpointAt) state.lastCheckpointAt = num('lastCheckpointAt');
  if (h.lastFailureAt) state.lastFailure = { at: num('lastFailureAt')!, reason: h.lastFailureReason ?? '' };
  if (h.lastSkipAt) state.lastSkip = { at: num('lastSkipAt')!, reason: h.lastSkipReason ?? '' };
  return state;
}
