import type { Redis } from 'ioredis';
import { LuaScript } from './lua-script.js';

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
  /** ms (owner's clock) until which the owner is presumed alive; after it, another scheduler takes over. */
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

// KEYS: claim, pending. ARGV: owner, leaseUntil, ttlMs, member, tickMs.
const CLAIM = new LuaScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('HSET', KEYS[1], 'state', 'claimed', 'owner', ARGV[1], 'leaseUntil', ARGV[2], 'claimedAt', string.format('%d', now), 'takeovers', '0')
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[4])
return 1`);

// KEYS: claim, pending. ARGV: owner, state, member, jobId or '', reason or ''.
const FINISH = new LuaScript(`
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] or redis.call('HGET', KEYS[1], 'state') ~= 'claimed' then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[2])
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'jobId', ARGV[4]) end
if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], 'reason', ARGV[5]) end
redis.call('ZREM', KEYS[2], ARGV[3])
return 1`);

// KEYS: claim, pending. ARGV: new owner, now, new leaseUntil, member. Takes over a claim whose owner's lease ran out;
// returns the previous owner, or false.
const TAKE_OVER = new LuaScript(`
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('HGET', KEYS[1], 'state') ~= 'claimed' then
  redis.call('ZREM', KEYS[2], ARGV[4])
  return false
end
if tonumber(redis.call('HGET', KEYS[1], 'leaseUntil')) > tonumber(ARGV[2]) then return false end
local previous = redis.call('HGET', KEYS[1], 'owner')
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'leaseUntil', ARGV[3])
redis.call('HINCRBY', KEYS[1], 'takeovers', 1)
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
return previous`);

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
  }

  /** True when this owner now holds the tick; false when someone else claimed it first. */
  async claim(scheduleId: string, tickMs: number, owner: string, leaseMs: number): Promise<boolean> {
    const res = await CLAIM.run(
      this.redis,
      [this.key(scheduleId, tickMs), this.pendingKey],
      [owner, Date.now() + leaseMs, this.options.ttlMs, member(scheduleId, tickMs), tickMs],
    );
    return res === 1;
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
      [this.key(scheduleId, tickMs), this.pendingKey],
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
    return (await this.redis.zrangebyscore(this.pendingKey, '-inf', Date.now(), 'LIMIT', 0, limit)).map(parseMember);
  }

  /**
   * Takes over an unfinished claim whose lease ran out; null when it is finished, gone, or its owner renewed it.
   * `previousOwner` is who held it before.
   */
  async takeOver(scheduleId: string, tickMs: number, owner: string, leaseMs: number): Promise<(TickClaim & { previousOwner: string }) | null> {
    const now = Date.now();
    const previous = await TAKE_OVER.run(
      this.redis,
      [this.key(scheduleId, tickMs), this.pendingKey],
      [owner, now, now + leaseMs, member(scheduleId, tickMs)],
    );
    if (typeof previous !== 'string') return null;
    const claim = await this.get(scheduleId, tickMs);
    return claim ? { ...claim, previousOwner: previous } : null;
  }

  async get(scheduleId: string, tickMs: number): Promise<TickClaim | null> {
    const h = await this.redis.hgetall(this.key(scheduleId, tickMs));
    if (!h.state) return null;
    const claim: TickClaim = {
      scheduleId,
      tickMs,
      state: h.state as ClaimState,
      owner: h.owner ?? '',
      claimedAt: Number(h.claimedAt),
      leaseUntil: Number(h.leaseUntil),
      takeovers: Number(h.takeovers ?? 0),
    };
    if (h.jobId) claim.jobId = h.jobId;
    if (h.reason) claim.reason = h.reason;
    return claim;
  }

  private key(scheduleId: string, tickMs: number): string {
    return `${this.options.prefix}:tick:${scheduleId}:${tickMs}`;
  }
}

// Schedule ids have no ':' (see SCHEDULE_ID), so the last ':' separates the tick.
function member(scheduleId: string, tickMs: number): string {
  return `${scheduleId}:${tickMs}`;
}

function parseMember(m: string): { scheduleId: string; tickMs: number } {
  const at = m.lastIndexOf(':');
  return { scheduleId: m.slice(0, at), tickMs: Number(m.slice(at + 1)) };
}
