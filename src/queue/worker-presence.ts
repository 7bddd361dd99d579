import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { RedisScript } from '../common/redis-script.js';

export interface WorkerPresenceOptions {
  redis: Redis;
  /** The sorted set of live workers (queueKeys(prefix).workers): member `<node>/<instance>`, score = expiry in Redis time. */
  key: string;
  node: string;
  /** A worker that stops renewing counts as gone this long after its last beat (it beats every third of it). */
  ttlMs: number;
}

// Redis time decides expiry (as in the lease semaphore): workers and API processes on different hosts agree.
const BEAT = new RedisScript('ckptWorkerBeat', `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return 1
`);

const LIVE_WORKERS = new RedisScript('ckptLiveWorkers', `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf')
`);

/**
 * A worker's announcement that its node is served: a beat in Redis every ttlMs / 3, withdrawn on stop. The API refuses
 * jobs for nodes nobody serves (liveNodes) instead of queueing them forever.
 */
export class WorkerPresence {
  readonly member: string;
  private timer?: NodeJS.Timeout;

  constructor(private readonly options: WorkerPresenceOptions) {
    this.member = `${options.node}/${randomUUID()}`;
    BEAT.defineOn(options.redis);
  }

  /** The first beat (awaited: the node is live once this returns), then beats in the background. */
  async start(onError: (err: Error) => void): Promise<void> {
    await this.beat();
    this.timer = setInterval(() => void this.beat().catch(onError), Math.max(100, Math.floor(this.options.ttlMs / 3)));
    this.timer.unref();
  }

  /** Withdraws at once: jobs for this node are refused from now on unless another worker serves it. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.options.redis.zrem(this.options.key, this.member);
  }

  private async beat(): Promise<void> {
    await BEAT.run(this.options.redis, [this.options.key], [this.member, this.options.ttlMs]);
  }
}

/** The nodes at least one live worker serves, sorted. */
export async function liveNodes(redis: Redis, key: string): Promise<string[]> {
  // Defined here, not ahead: the callers' connections do not auto-pipeline (see RedisScript.defineOn).
  LIVE_WORKERS.defineOn(redis);
  const members = (await LIVE_WORKERS.run(redis, [key], [])) as string[];
  return [...new Set(members.map((m) => m.slice(0, m.lastIndexOf('/'))))].sort();
}
