import type { Redis } from 'ioredis';
import { setTimeout as sleep } from 'node:timers/promises';
import { LuaScript } from './lua-script.js';

// KEYS: lease. ARGV: owner, ttlMs. Extends the lease only while we still hold it.
const RENEW = new LuaScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1`);

const RELEASE = new LuaScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])`);

/**
 * A lock with a time limit in one Redis key: held by at most one owner, gone by itself when the owner dies.
 * The owner renews it while working; a renew that fails means someone else may hold it now.
 */
export class RedisLease {
  constructor(
    private readonly redis: Redis,
    readonly key: string,
    readonly owner: string,
    private readonly ttlMs: number,
  ) {}

  /** True when we hold it now (newly, or still). */
  async tryAcquire(): Promise<boolean> {
    if ((await this.redis.set(this.key, this.owner, 'PX', this.ttlMs, 'NX')) === 'OK') return true;
    return this.renew();
  }

  /** Polls until acquired or `waitMs` passed. */
  async acquire(waitMs: number, pollMs = 50): Promise<boolean> {
    const deadline = Date.now() + waitMs;
    for (;;) {
      if (await this.tryAcquire()) return true;
      if (Date.now() >= deadline) return false;
      await sleep(pollMs);
    }
  }

  async renew(): Promise<boolean> {
    return (await RENEW.run(this.redis, [this.key], [this.owner, this.ttlMs])) === 1;
  }

  async release(): Promise<void> {
    await RELEASE.run(this.redis, [this.key], [this.owner]);
  }
}
