import { readFileSync } from 'node:fs';
import { Redis, type RedisOptions } from 'ioredis';
import { redisConfigSchema, type Config } from '../config/schema.js';

/** config.redis; a bare URL stands for `{url}` with every other key at its default. */
export type RedisConnection = string | Config['redis'];

/**
 * How a connection behaves while Redis does not answer:
 * - `fail-fast` (default): each command fails after `redis.commandTimeoutMs`, so an API request answers 503 instead of
 *   hanging with Redis (a hung server, a failover in progress).
 * - `wait`: commands wait for the reconnect however long it takes. For BullMQ workers (which require
 *   maxRetriesPerRequest null) and blocking reads (XREAD BLOCK would trip a command timeout), and for a worker's
 *   own writes, which should land late rather than fail a dump that CRIU finished.
 */
export type RedisMode = 'fail-fast' | 'wait';

/** Backoff of reconnect attempts: +100 ms per try, at most 2 s, forever. */
const retryStrategy = (times: number) => Math.min(times * 100, 2000);

/**
 * The one place ckpt makes Redis connections: every queue, worker, scheduler, feed, catalog, event log and metrics
 * connection comes from here (or is a `duplicate()` of one that did), so credentials, TLS and Sentinel apply to all.
 */
export function createRedis(connection: RedisConnection, options: { mode?: RedisMode } = {}): Redis {
  return new Redis({ ...redisOptions(settingsOf(connection)), ...modeOptions(options.mode ?? 'fail-fast', settingsOf(connection)) });
}

/** A connection of the same server and credentials that waits instead of failing: for XREAD BLOCK and the like. */
export function waitingDuplicate(redis: Redis): Redis {
  return redis.duplicate({ commandTimeout: undefined, maxRetriesPerRequest: null });
}

/**
 * An error that means Redis did not answer (timed out, gave up reconnecting, connection closed), as opposed to a
 * command Redis refused. The API answers these with 503.
 */
export function isRedisUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  return (
    err.message === 'Command timed out' ||
    err.name === 'MaxRetriesPerRequestError' ||
    err.message === 'Connection is closed.' ||
    /^(All sentinels are unreachable|Stream isn't writeable)/.test(err.message)
  );
}

/** The URL with its password (and user) replaced, for messages and logs. */
export function redactRedisUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparsable redis.url)';
  }
}

function settingsOf(connection: RedisConnection): Config['redis'] {
  return typeof connection === 'string' ? redisConfigSchema.parse({ url: connection }) : connection;
}

function modeOptions(mode: RedisMode, s: Config['redis']): RedisOptions {
  return mode === 'wait' ? { maxRetriesPerRequest: null } : { commandTimeout: s.commandTimeoutMs };
}

/**
 * ioredis options for config.redis: server (host:port of the URL, or the master `name` found through `sentinels`),
 * user and password (the URL's, for ACL users), database (the URL's path), TLS for `rediss://` (CA, client
 * certificate and key read from the files given).
 */
export function redisOptions(s: Config['redis']): RedisOptions {
  const url = new URL(s.url);
  const tls = url.protocol === 'rediss:' ? tlsOptions(s.tls) : undefined;
  const common: RedisOptions = {
    username: decodeURIComponent(url.username) || undefined,
    password: decodeURIComponent(url.password) || undefined,
    db: Number(url.pathname.slice(1) || 0),
    retryStrategy,
    ...(tls ? { tls } : {}),
  };
  if (s.sentinels.length === 0) return { ...common, host: url.hostname || '127.0.0.1', port: Number(url.port || 6379) };
  return {
    ...common,
    sentinels: s.sentinels,
    name: s.name,
    sentinelUsername: s.sentinelUsername,
    sentinelPassword: s.sentinelPassword,
    // Sentinels speak TLS too when the data nodes do (one certificate set for the deployment).
    ...(tls ? { enableTLSForSentinelMode: true, sentinelTLS: tls } : {}),
    // A master demoted while still alive (a manual failover) answers writes with READONLY: reconnect (asking the
    // sentinels again) and send the refused command to the new master. ioredis' failoverDetector is not used: its
    // disconnect on +switch-master ends for good a connection that was already reconnecting (a master that died).
    reconnectOnError: (err) => (err.message.startsWith('READONLY') ? 2 : false),
  };
}

function tlsOptions(tls: Config['redis']['tls']): NonNullable<RedisOptions['tls']> {
  const read = (field: 'ca' | 'cert' | 'key') => {
    const file = tls[field];
    if (!file) return undefined;
    try {
      return readFileSync(file);
    } catch (err) {
      throw new Error(`redis.tls.${field}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  };
  const options = { ca: read('ca'), cert: read('cert'), key: read('key'), servername: tls.servername };
  return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined));
}
