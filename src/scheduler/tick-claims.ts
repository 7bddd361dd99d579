import type { Redis } from 'ioredis';
import { LEASE_LUA } from '../queue/lease-semaphore.js';
import { RedisScript } from '../common/redis-script.js';

/** claimed: someone is working on the tick; enqueued / skipped: the tick is done, whatever happens to its job later. */
export type ClaimState = 'claimed' | 'enqueued' | 'skipped';

export interface TickClaim {
  scheduleId: string;
  tickMs: number;
  state: ClaimState;
  /** Scheduler instance working on (or that finished) the tick. */
  owner: string;
  /** ms (Redis clock) when first claimed: events about the tick's job cannot be older. */
  claimedAt: number;
  /** ms (Redis clock) until which the owner is presumed alive; after it, another scheduler takes over. 0: finished. */
  leaseUntil: number;
  /** How many times the claim was taken over from an owner that did not finish. */
  takeovers: number;
  jobId?: string;
  reason?: string;
}

export interface TickClaimsOptions {
  /** Redis key prefix (config redis.prefix). Claims: `<prefix>:tick:<scheduleId>:<tickMs>`. */
  prefix: string;
  /** How long a claim is kept: must exceed any tick a scheduler may still try (missed-tick tolerance + margin). */
  ttlMs: number;
}

// The claim's owner holds the tick's lease (a lease set of capacity 1, see LEASE_LUA); `pending` lists unfinished
// claims by lease end, for recovery to find them.

// Claims several ticks in one call (a second's ticks arrive together). KEYS: pending, then per tick its claim and
// lease. ARGV: owner, ttlMs, then per tick its leaseMs and member. Returns per tick 1 (claimed) or 0 (someone's already).
const CLAIM = new RedisScript(
  'ckptTickClaim',
  `${LEASE_LUA}
local owner, ttl = ARGV[1], ARGV[2]
local now = lease_now()
local claimed = {}
for i = 1, (#KEYS - 1) / 2 do
  local claim, lease = KEYS[2 * i], KEYS[2 * i + 1]
  local lease_ms, member = tonumber(ARGV[1 + 2 * i]), ARGV[2 + 2 * i]
  if redis.call('EXISTS', claim) == 1 then
    claimed[i] = 0
  else
    lease_take(lease, owner, 1, lease_ms, false)
    redis.call('HSET', claim, 'state', 'claimed', 'owner', owner, 'claimedAt', string.format('%d', now), 'takeovers', '0')
    redis.call('PEXPIRE', claim, ttl)
    redis.call('ZADD', KEYS[1], now + lease_ms, member)
    claimed[i] = 1
  end
end
return claimed`,
);

// KEYS: claim, lease, pending. ARGV: owner, state, member, jobId or '', reason or ''.
const FINISH = new RedisScript(
  'ckptTickFinish',
  `if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] or redis.call('HGET', KEYS[1], 'state') ~= 'claimed' then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[2])
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'jobId', ARGV[4]) end
if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], 'reason', ARGV[5]) end
redis.call('ZREM', KEYS[3], ARGV[3])
redis.call('DEL', KEYS[2])
return 1`,
);

// KEYS: claim, lease, pending. ARGV: new owner, leaseMs, member. Takes over a claim whose owner's lease ran out;
// returns the previous owner, or false.
const TAKE_OVER = new RedisScript(
  'ckptTickTakeOver',
  `${LEASE_LUA}
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('HGET', KEYS[1], 'state') ~= 'claimed' then
  redis.call('ZREM', KEYS[3], ARGV[3])
  return false
end
if not lease_take(KEYS[2], ARGV[1], 1, tonumber(ARGV[2]), false) then return false end
local previous = redis.call('HGET', KEYS[1], 'owner')
redis.call('HSET', KEYS[1], 'owner', ARGV[1])
redis.call('HINCRBY', KEYS[1], 'takeovers', 1)
redis.call('ZADD', KEYS[3], lease_now() + tonumber(ARGV[2]), ARGV[3])
return previous`,
);

// KEYS: pending. ARGV: limit. Unfinished claims whose lease has ended (Redis time).
const EXPIRED = new RedisScript(
  'ckptTicksExpired',
  `${LEASE_LUA}\nreturn redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', lease_now(), 'LIMIT', 0, tonumber(ARGV[1]))`,
);

/**
 * One claim per (schedule, tick) in Redis: whoever creates it handles the tick, every other scheduler leaves it.
 * A claim records its state, so a tick is handled exactly once even when its owner dies half-way: claims still in
 * state `claimed` are listed in `<prefix>:ticks:pending` (score: lease end) and another scheduler takes them over
 * when the lease has run out. A finished claim (`enqueued` / `skipped`) stays until its TTL, so the tick is never
 * handled again, also after its job finished and was removed from the queue.
 */
export class TickClaims {
  private readonly pendingKey: string;

  constructor(
    private readonly redis: Redis,
    private readonly options: TickClaimsOptions,
  ) {
    this.pendingKey = `${options.prefix}:ticks:pending`;
    for (const script of [CLAIM, FINISH, TAKE_OVER, EXPIRED]) script.defineOn(redis);
  }

  /** True when this owner now holds the tick; false when someone else claimed it first. */
  async claim(scheduleId: string, tickMs: number, owner: string, leaseMs: number): Promise<boolean> {
    return (await this.claimMany([{ scheduleId, tickMs, leaseMs }], owner))[0]!;
  }

  /** claim() for several ticks in one Redis call; per tick, whether this owner now holds it. */
  async claimMany(ticks: { scheduleId: string; tickMs: number; leaseMs: number }[], owner: string): Promise<boolean[]> {
    const keys = [this.pendingKey];
    const args: (string | number)[] = [owner, this.options.ttlMs];
    for (const { scheduleId, tickMs, leaseMs } of ticks) {
      const [claim, lease] = this.keys(scheduleId, tickMs);
      keys.push(claim, lease);
      args.push(leaseMs, member(scheduleId, tickMs));
    }
    return ((await CLAIM.run(this.redis, keys, args)) as number[]).map((r) => r === 1);
  }

  /**
   * Marks the tick done. False when `owner` no longer holds it (its lease ran out and another scheduler took over):
   * then the caller must not report the tick, the new owner does.
   */
  async finish(
    scheduleId: string,
    tickMs: number,
    owner: string,
    outcome: { state: 'enqueued'; jobId: string } | { state: 'skipped'; reason: string },
  ): Promise<boolean> {
    const res = await FINISH.run(
      this.redis,
      this.keys(scheduleId, tickMs),
      [
        owner,
        outcome.state,
        member(scheduleId, tickMs),
        outcome.state === 'enqueued' ? outcome.jobId : '',
        outcome.state === 'skipped' ? outcome.reason : '',
      ],
    );
    return res === 1;
  }

  /** Up to `limit` unfinished claims whose owner's lease has run out (candidates for takeOver). */
  async expired(limit = 100): Promise<{ scheduleId: string; tickMs: number }[]> {
    return ((await EXPIRED.run(this.redis, [this.pendingKey], [limit])) as string[]).map(parseMember);
  }

  /**
   * Takes over an unfinished claim whose lease ran out; null when it is finished, gone, or its owner renewed it.
   * `previousOwner` is who held it before.
   */
  async takeOver(scheduleId: string, tickMs: number, owner: string, leaseMs: number): Promise<(TickClaim & { previousOwner: string }) | null> {
    const previous = await TAKE_OVER.run(this.redis, this.keys(scheduleId, tickMs), [owner, leaseMs, member(scheduleId, tickMs)]);
    if (typeof previous !== 'string') return null;
    const claim = await this.get(scheduleId, tickMs);
    return claim ? { ...claim, previousOwner: previous } : null;
  }

  async get(scheduleId: string, tickMs: number): Promise<TickClaim | null> {
    const [claimKey, leaseKey] = this.keys(scheduleId, tickMs);
    const h = await this.redis.hgetall(claimKey);
    if (!h.state) return null;
    const leaseUntil = h.state === 'claimed' ? Number(await this.redis.zscore(leaseKey, h.owner ?? '')) : 0;
    const claim: TickClaim = {
      scheduleId,
      tickMs,
      state: h.state as ClaimState,
      owner: h.owner ?? '',
      claimedAt: Number(h.claimedAt),
      leaseUntil,
      takeovers: Number(h.takeovers ?? 0),
    };
    if (h.jobId) claim.jobId = h.jobId;
    if (h.reason) claim.reason = h.reason;
    return claim;
  }

  /** The claim (hash) and its lease (lease set). */
  private keys(scheduleId: string, tickMs: number): [string, string, string] {
    const claim = `${this.options.prefix}:tick:${scheduleId}:${tickMs}`;
    return [claim, `${claim}:lease`, this.pendingKey];
  }
}

// Schedule ids have no ':' (see scheduleIdSchema), so the last ':' separates the tick.
function member(scheduleId: string, tickMs: number): string {
  return `${scheduleId}:${tickMs}`;
}

function parseMember(m: string): { scheduleId: string; tickMs: number } {
  const at = m.lastIndexOf(':');
  return { scheduleId: m.slice(0, at), tickMs: Number(m.slice(at + 1)) };
}
