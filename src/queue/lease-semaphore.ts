import type { Redis } from 'ioredis';
import { setTimeout as sleep } from 'node:timers/promises';

export interface LeaseSemaphoreOptions {
  /** Redis key (a sorted set: holder -> lease expiry in Redis time, ms). */
  key: string;
  /** Holders at once. Default 1 (a lock). */
  capacity?: number;
  /** A holder that stops renewing loses its place after this long (a worker killed mid-job). Default 15 s. */
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

// Expired holders are dropped first, so a crashed holder frees its place after leaseMs without anyone's help.
// Redis time (not the callers' clocks) decides expiry: holders on different hosts agree.
const ACQUIRE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) * 2)
  return {1}
end
return {0, unpack(redis.call('ZRANGE', KEYS[1], 0, -1))}
`;

const RENEW = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) < now then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
return 1
`;

/**
 * A counting semaphore in Redis with leases: at most `capacity` holders at once, across processes and hosts.
 * Capacity 1 is the per-target dump lock; a batch restore uses its concurrency as capacity.
 */
export class LeaseSemaphore {
  readonly key: string;
  private readonly capacity: number;
  private readonly leaseMs: number;

  constructor(
    private readonly redis: Redis,
    options: LeaseSemaphoreOptions,
  ) {
    this.key = options.key;
    this.capacity = options.capacity ?? 1;
    this.leaseMs = options.leaseMs ?? 15_000;
  }

  /** Takes a place for `holder` (re-entrant: a holder that already has one keeps it), or reports who holds them all. */
  async acquire(holder: string, options: AcquireOptions = {}): Promise<AcquireResult> {
    const deadline = Date.now() + (options.waitMs ?? 0);
    for (;;) {
      options.signal?.throwIfAborted();
      const res = (await this.redis.eval(ACQUIRE, 1, this.key, holder, this.capacity, this.leaseMs)) as [number, ...string[]];
      if (res[0] === 1) return { lease: this.startLease(holder) };
      if (Date.now() >= deadline) return { lease: null, holders: res.slice(1) as string[] };
      await sleep(Math.min(options.pollMs ?? 100, Math.max(1, deadline - Date.now())), undefined, { signal: options.signal });
    }
  }

  private startLease(holder: string): Lease {
    let lost = false;
    let released = false;
    const renew = async () => {
      if (released) return;
      try {
        const ok = await this.redis.eval(RENEW, 1, this.key, holder, this.leaseMs);
        if (ok !== 1) lost = true;
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
        await this.redis.zrem(this.key, holder).catch(() => undefined);
      },
    };
  }
}
