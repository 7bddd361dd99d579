import type { Redis } from 'ioredis';
import { setTimeout as sleep } from 'node:timers/promises';
import { RedisScript } from '../common/redis-script.js';

export interface LeaseSemaphoreOptions {
  /** Redis key (a sorted set: holder -> lease expiry in Redis time, ms). */
  key: string;
  /** Holders at once. Default 1 (a lock). */
  capacity?: number;
  /** A holder that stops renewing loses its place after this long (a process killed mid-work). Default 15 s. */
  leaseMs?: number;
}

export interface AcquireOptions {
  /** Give up after this long. Default 0: one try. */
  waitMs?: number;
  /** Time between tries. Default 100 ms. */
  pollMs?: number;
  signal?: AbortSignal;
}

/** A held place. Renewed in the background until released; `lost` turns true if renewing found it gone. */
export interface Lease {
  readonly holder: string;
  readonly lost: boolean;
  release(): Promise<void>;
}

export type AcquireResult = { lease: Lease; holders?: undefined } | { lease: null; holders: string[] };

/**
 * The lease logic every lease in ckpt runs, as Lua functions for the scripts below and for scripts that combine a
 * lease with other state (the scheduler's tick claims). A lease set is a sorted set: holder -> expiry in Redis time
 * (not the callers' clocks, so holders on different hosts agree). Expired holders are dropped before anything else,
 * so a crashed holder frees its place after its lease without anyone's help.
 */
export const LEASE_LUA = `
local function lease_now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- Gives holder a place for lease_ms when one is free (or, when reentrant, when it holds one already).
local function lease_take(key, holder, capacity, lease_ms, reentrant)
  local now = lease_now()
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  if (reentrant and redis.call('ZSCORE', key, holder)) or redis.call('ZCARD', key) < capacity then
    redis.call('ZADD', key, now + lease_ms, holder)
    redis.call('PEXPIRE', key, lease_ms * 2)
    return true
  end
  return false
end
-- Extends holder's lease, only while it still holds it.
local function lease_renew(key, holder, lease_ms)
  local now = lease_now()
  local score = redis.call('ZSCORE', key, holder)
  if not score or tonumber(score) < now then return false end
  redis.call('ZADD', key, now + lease_ms, holder)
  redis.call('PEXPIRE', key, lease_ms * 2)
  return true
end
`;

// KEYS: lease set. ARGV: holder, capacity, leaseMs. {1} when held, else {0, holders...}.
const ACQUIRE = new RedisScript(
  'ckptLeaseAcquire',
  `${LEASE_LUA}
if lease_take(KEYS[1], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), true) then return {1} end
return {0, unpack(redis.call('ZRANGE', KEYS[1], 0, -1))}`,
);

// KEYS: lease set. ARGV: holder, leaseMs.
const RENEW = new RedisScript('ckptLeaseRenew', `${LEASE_LUA}\nif lease_renew(KEYS[1], ARGV[1], tonumber(ARGV[2])) then return 1 end\nreturn 0`);

/**
 * A counting semaphore in Redis with leases: at most `capacity` holders at once, across processes and hosts; the
 * one lease of ckpt. Capacity 1 is a lock: the per-target dump lock, the scheduler's event follower and pruner;
 * a batch restore uses its concurrency as capacity.
 */
export class LeaseSemaphore {
  readonly key: string;
  private readonly capacity: number;
  private readonly leaseMs: number;

  constructor(
    private readonly redis: Redis,
    options: LeaseSemaphoreOptions,
  ) {
    ACQUIRE.defineOn(redis);
    RENEW.defineOn(redis);
    this.key = options.key;
    this.capacity = options.capacity ?? 1;
    this.leaseMs = options.leaseMs ?? 15_000;
  }

  /** Takes a place for `holder` (re-entrant: a holder that already has one keeps it), or reports who holds them all. */
  async acquire(holder: string, options: AcquireOptions = {}): Promise<AcquireResult> {
    const deadline = Date.now() + (options.waitMs ?? 0);
    for (;;) {
      options.signal?.throwIfAborted();
      const res = (await ACQUIRE.run(this.redis, [this.key], [holder, this.capacity, this.leaseMs])) as [number, ...string[]];
      if (res[0] === 1) return { lease: this.startLease(holder) };
      if (Date.now() >= deadline) return { lease: null, holders: res.slice(1) as string[] };
      await sleep(Math.min(options.pollMs ?? 100, Math.max(1, deadline - Date.now())), undefined, { signal: options.signal });
    }
  }

  private startLease(holder: string): Lease {
    let lost = false;
    let released = false;
    const renew = async () => {
      if (released || lost) return;
      try {
        if ((await RENEW.run(this.redis, [this.key], [holder, this.leaseMs])) !== 1) lost = true;
      } catch {
        // Redis unreachable for a moment: try again at the next tick; the lease is long enough for a few misses.
      }
    };
    const timer = setInterval(() => void renew(), Math.max(50, Math.floor(this.leaseMs / 3)));
    timer.unref();
    return {
      holder,
      get lost() {
        return lost;
      },
      release: async () => {
        if (released) return;
        released = true;
        clearInterval(timer);
        // A lost lease may be someone else's place by now: only our own entry goes.
        await this.redis.zrem(this.key, holder).catch(() => undefined);
      },
    };
  }
}
