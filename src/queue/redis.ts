import { Redis, type RedisOptions } from 'ioredis';

/** A Redis URL (redis://host:port/db) or ioredis options. */
export type RedisConnection = string | RedisOptions;

/**
 * A new ioredis client that reconnects by itself (backoff up to 2 s, forever).
 * `blocking`: for BullMQ workers, which require maxRetriesPerRequest null (commands wait for the reconnect instead of failing).
 * Producers keep ioredis' default so an API request fails instead of hanging while Redis is away.
 */
export function createRedis(connection: RedisConnection, options: { blocking?: boolean } = {}): Redis {
  const forced: RedisOptions = options.blocking ? { maxRetriesPerRequest: null } : {};
  const retryStrategy = (times: number) => Math.min(times * 100, 2000);
  return typeof connection === 'string'
    ? new Redis(connection, { retryStrategy, ...forced })
    : new Redis({ retryStrategy, ...connection, ...forced });
}
