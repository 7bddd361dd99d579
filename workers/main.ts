import { Catalog } from '../src/catalog/catalog.js';
import { CheckpointStore } from '../src/catalog/checkpoint-store.js';
import type { Config } from '../src/config/schema.js';
import { locateCriu } from '../src/criu/locate.js';
import { CriuService } from '../src/criu/service.js';
import { EventLog } from '../src/events/event-log.js';
import { createRedis } from '../src/queue/redis.js';
import { TargetPolicy } from '../src/targets/policy.js';
import { CkptWorker } from './ckpt-worker.js';

export interface RunWorkerOptions {
  /** Stop gracefully on SIGTERM / SIGINT (see CkptWorker.close). Default true. */
  handleSignals?: boolean;
  /** Errors that belong to no job. Default: written to stderr. */
  onError?: (err: Error) => void;
}

export interface RunningWorker {
  worker: CkptWorker;
  /** Stops the worker, then the CRIU service it started (if any) and its Redis connections. Idempotent. */
  close(): Promise<void>;
  /** Settles once close() has finished (after a signal, or an explicit close()). */
  closed: Promise<void>;
}

/**
 * `ckpt worker`: one worker process for config.node, with everything it needs built from the config:
 * the event log, the CRIU service (its own supervised one unless criu.socket names a running service),
 * the checkpoint store and catalog, and the target policy.
 */
export async function runWorker(config: Config, options: RunWorkerOptions = {}): Promise<RunningWorker> {
  const onError = options.onError ?? ((err: Error) => console.error(`ckpt worker: ${err.message}`));
  const redis = createRedis(config.redis.url);
  redis.on('error', onError);
  const eventLog = new EventLog(redis, { key: `${config.redis.prefix}:events`, maxLen: config.events.maxLen });
  let service: CriuService | undefined;
  let criuSocket = config.criu.socket;
  if (!criuSocket) {
    const criu = await locateCriu(config.criu.bin, config.criu.env);
    service = new CriuService({ bin: criu.bin, runtimeDir: config.criu.runtimeDir, env: config.criu.env });
    await service.start();
    criuSocket = service.socketPath;
  }
  const store = new CheckpointStore({ root: config.storage.root });
  const catalog = new Catalog(redis, { prefix: config.redis.prefix, store, node: config.node });
  const policy = new TargetPolicy({
    allowUids: config.policy.allowUids,
    allowCommands: config.policy.allowCommands,
    protectedPids: () => (service?.pid ? [service.pid] : []),
  });
  const worker = new CkptWorker({ config, eventLog, criuSocket, catalog, store, policy, onError });
  try {
    await worker.start();
  } catch (err) {
    await worker.close().catch(() => undefined);
    await service?.stop();
    redis.disconnect();
    throw err;
  }

  let resolveClosed!: () => void;
  const closed = new Promise<void>((resolve) => (resolveClosed = resolve));
  let closing: Promise<void> | undefined;
  const onSignal = () => void close();
  const close = () => {
    closing ??= (async () => {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      try {
        await worker.close();
        await service?.stop();
      } finally {
        redis.disconnect();
        resolveClosed();
      }
    })();
    return closing;
  };
  if (options.handleSignals ?? true) {
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
  }
  return { worker, close, closed };
}
