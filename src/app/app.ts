import { mkdir, statfs } from 'node:fs/promises';
import path from 'node:path';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { isLoopbackHost } from '../security/auth.js';
import { dataDir } from '../common/paths.js';
import type { Config } from '../config/schema.js';
import { CriuClient } from '../criu/client.js';
import { locateCriu } from '../criu/locate.js';
import { CriuService } from '../criu/criu-service.js';
import { EventLog } from '../events/event-log.js';
import { ensurePrivateDir } from '../security/trusted-files.js';
import { createRedis, redactRedisUrl } from '../queue/redis.js';
import { ManagedRedis, reachable } from './managed-redis.js';

/** Which parts one process runs. `ckpt up` runs all; `ckpt worker` only the worker. */
export interface AppRoles {
  api: boolean;
  worker: boolean;
  scheduler: boolean;
}

/** Redis and CRIU: what every role stands on, started (or found) once per process. */
export interface Foundation {
  /** Fails fast (redis.commandTimeoutMs) while Redis does not answer: for the API, the scheduler and the feed. */
  redis: Redis;
  eventLog: EventLog;
  /** Waits for Redis instead (see RedisMode): for the worker, whose writes should land late rather than fail a dump. */
  waiting: { redis: Redis; eventLog: EventLog };
  criuSocket: string;
  criuVersion?: string;
  /** Pids of ckpt's own helpers (managed Redis, CRIU service): never targets. */
  protectedPids(): number[];
  stop(): Promise<void>;
}

/**
 * Connects to Redis (starting a managed redis-server with AOF when the configured loopback address does not answer
 * and `manageRedis` is set) and to CRIU (the configured socket, else a supervised `criu service` of our own).
 */
export async function startFoundation(config: Config, log: Logger, opts: { manageRedis: boolean; needCriu: boolean }): Promise<Foundation> {
  const stops: (() => Promise<void>)[] = [];
  const stop = async () => {
    for (const fn of stops.splice(0).reverse()) await fn().catch((err) => log.warn({ err }, 'stop failed'));
  };
  try {
    return await connect(config, log, opts, stops, stop);
  } catch (err) {
    await stop();
    throw err;
  }
}

async function connect(
  config: Config,
  log: Logger,
  opts: { manageRedis: boolean; needCriu: boolean },
  stops: (() => Promise<void>)[],
  stop: () => Promise<void>,
): Promise<Foundation> {
  const url = new URL(config.redis.url);
  const host = url.hostname || '127.0.0.1';
  const port = Number(url.port || 6379);
  let managedRedis: ManagedRedis | undefined;
  // With sentinels the URL's host is not where Redis is; with credentials or TLS it is a Redis someone set up.
  const plainLocal = config.redis.sentinels.length === 0 && url.protocol === 'redis:' && !url.username && !url.password;
  if (plainLocal && !(await reachable(host, port))) {
    if (!opts.manageRedis || !isLoopbackHost(host)) {
      throw new Error(`Redis at ${redactRedisUrl(config.redis.url)} does not answer (ckpt starts its own only for a loopback address with \`ckpt up\`)`);
    }
    const dir = path.join(dataDir(), 'redis');
    log.info({ host, port, dir }, 'no Redis answers: starting a managed redis-server with AOF');
    managedRedis = new ManagedRedis({ dir, host, port });
    await managedRedis.start();
    stops.push(() => managedRedis!.stop());
  }
  const redis = createRedis(config.redis);
  const waitingRedis = createRedis(config.redis, { mode: 'wait' });
  // ioredis reconnects by itself and reports each failed try; commands report what matters to their callers.
  // Only the message: a refused AUTH's error carries the command's arguments, the password among them.
  for (const r of [redis, waitingRedis]) r.on('error', (err: Error) => log.debug({ error: err.message }, 'redis connection error'));
  stops.push(async () => {
    redis.disconnect();
    waitingRedis.disconnect();
  });
  // The first command proves the address, credentials and TLS (fail-fast: a wrong address does not hang the start).
  const serverPid = Number(/process_id:(\d+)/.exec(await redis.info('server'))?.[1] ?? 0);

  let criuSocket = config.criu.socket;
  let criuService: CriuService | undefined;
  let criuVersion: string | undefined;
  if (!criuSocket && opts.needCriu) {
    // It holds the socket that grants root and the pid file of the service ckpt kills as an orphan: ckpt's alone.
    ensurePrivateDir(config.criu.runtimeDir, (problem) => log.warn({ security: 'criu.runtimeDir' }, problem));
    const criu = await locateCriu(config.criu.bin, config.criu.env);
    criuVersion = criu.version;
    criuService = new CriuService({ bin: criu.bin, runtimeDir: config.criu.runtimeDir, env: config.criu.env });
    criuService.on('exit', (code, signal, stopped) => {
      if (stopped) log.info({ code, signal }, 'criu service stopped');
      else log.warn({ code, signal }, 'criu service exited');
    });
    criuService.on('socket-lost', () => log.warn({ socket: criuService!.socketPath }, 'criu service socket disappeared: restarting the service'));
    criuService.on('started', (pid) => log.info({ criuPid: pid, socket: criuService!.socketPath, version: criu.version }, 'criu service running'));
    await criuService.start();
    criuSocket = criuService.socketPath;
    stops.push(() => criuService!.stop());
  }
  if (!criuSocket) criuSocket = path.join(config.criu.runtimeDir, 'criu.sock');

  const eventLogOn = (r: Redis) => new EventLog(r, { key: `${config.redis.prefix}:events`, maxLen: config.events.maxLen });
  return {
    redis,
    eventLog: eventLogOn(redis),
    waiting: { redis: waitingRedis, eventLog: eventLogOn(waitingRedis) },
    criuSocket,
    criuVersion,
    protectedPids: () => [serverPid, managedRedis?.pid, criuService?.pid].filter((p): p is number => !!p),
    stop,
  };
}

/** Probes for /healthz. */
export function healthProbes(config: Config, foundation: Foundation) {
  return [
    {
      name: 'redis',
      async check() {
        const t0 = performance.now();
        await foundation.redis.ping();
        return { ok: true, latencyMs: Math.round((performance.now() - t0) * 10) / 10 };
      },
    },
    {
      name: 'criu',
      async check() {
        const v = await new CriuClient({ socketPath: foundation.criuSocket, timeoutMs: 2000 }).version();
        return { ok: true, version: v.text, socket: foundation.criuSocket };
      },
    },
    {
      name: 'storage',
      async check() {
        await mkdir(config.storage.root, { recursive: true, mode: 0o700 });
        const s = await statfs(config.storage.root);
        const freeBytes = s.bavail * s.bsize;
        return { ok: freeBytes >= config.storage.minFreeBytes, freeBytes, minFreeBytes: config.storage.minFreeBytes, root: config.storage.root };
      },
    },
  ];
}
