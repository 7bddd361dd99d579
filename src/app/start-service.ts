import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { Logger } from 'pino';
import { Authenticator } from '../security/auth.js';
import { checkpointRoutes } from '../api/routes/checkpoints.js';
import { consoleRoutes } from '../api/routes/console.js';
import { jobRoutes } from '../api/routes/jobs.js';
import { scheduleRoutes } from '../api/routes/schedules.js';
import { workloadRoutes } from '../api/routes/workloads.js';
import { operationsRoutes } from '../api/routes/operations.js';
import { createApiServer } from '../api/server.js';
import { Catalog } from '../catalog/catalog.js';
import { CheckpointStore } from '../catalog/checkpoint-store.js';
import { readDumpLog } from '../catalog/checkpoint-log.js';
import { RemoteStore } from '../storage/remote-store.js';
import type { Config } from '../config/schema.js';
import { registerDashboard } from '../dashboard/register.js';
import { FeedServer } from '../feed/server.js';
import { runHealthChecks } from '../observability/health.js';
import { summarize } from '../observability/inventory.js';
import { createMetrics } from '../observability/metrics.js';
import { withoutCommandLine } from '../queue/job-view.js';
import { JobQueue } from '../queue/job-queue.js';
import { isJobLive, NodeQueues } from '../queue/node-queues.js';
import { startSchedulerService } from '../scheduler/start-scheduler.js';
import { jobKeyFileOf, loadSigner } from '../security/key-file.js';
import { ensurePrivateDir } from '../security/trusted-files.js';
import { listScheduleViews, scheduleIntervalMs } from '../scheduler/view.js';
import { TargetPolicy } from '../targets/policy.js';
import { workloadTargetKey } from '../targets/key.js';
import { resolveTarget } from '../targets/resolve.js';
import type { TargetSpec } from '../targets/spec.js';
import { WorkloadRegistry } from '../workloads/registry.js';
import { Workloads } from '../workloads/workloads.js';
import { CkptWorker } from '../../workers/ckpt-worker.js';
import { healthProbes, startFoundation, type AppRoles } from './app.js';
import { assertAddressFree } from './port-check.js';
import { RuntimeDirLock } from './runtime-lock.js';

export interface RunningService {
  /** Base URL of the API, when this process serves it. */
  url?: string;
  /** Stops every part, newest first. Idempotent. */
  close(): Promise<void>;
}

export interface ServiceOptions {
  config: Config;
  /** Which file the config came from (named in schedule validation errors). */
  configFile?: string;
  roles: AppRoles;
  log: Logger;
  version: string;
}


/** How often each process forgets index entries of jobs BullMQ has removed. */
const INDEX_PRUNE_INTERVAL_MS = 10 * 60 * 1000;
/**
 * Starts the parts of ckpt this process runs, in the order data flows: Redis and CRIU, the catalog, the queue,
 * the worker (queue -> CRIU -> catalog -> events), the scheduler (-> queue), then the API and feed (-> queue, <- events).
 */
export async function startService({ config, configFile, roles, log, version }: ServiceOptions): Promise<RunningService> {
  const auth = new Authenticator({ host: config.api.host, tokens: config.api.tokens });
  if (roles.api) auth.assertStartable();
  const stops: (() => Promise<void>)[] = [];
  const close = async () => {
    for (const stop of stops.splice(0).reverse()) await stop().catch((err) => log.warn({ err }, 'stop failed'));
  };
  // First of all, touching nothing else: the runtime folder of the CRIU service this process will run must be its
  // alone (another instance's service would be killed, its socket removed), and the API's address must be free.
  if (roles.worker && !config.criu.socket) {
    const api = roles.api ? `${config.api.host}:${config.api.port}` : '';
    const lock = new RuntimeDirLock({ dir: config.criu.runtimeDir, holder: { node: config.node, configFile: configFile ? path.resolve(configFile) : '', api } });
    await lock.acquire();
    stops.push(() => lock.release());
  }
  try {
    if (roles.api) await assertAddressFree(config.api.host, config.api.port);
    // Before anything runs: every process signs (API, scheduler) or verifies (worker) jobs with the deployment's key,
    // and a worker's storage root must be ckpt's alone (it holds process memory and the manifests restores trust).
    const signer = loadSigner(jobKeyFileOf(config));
    if (roles.worker) ensurePrivateDir(config.storage.root, (problem) => log.warn({ security: 'storage.root' }, problem));

    const foundation = await startFoundation(config, log, { manageRedis: roles.api, needCriu: roles.worker });
    stops.push(() => foundation.stop());
    const { redis, eventLog } = foundation;
    const onError = (err: Error) => log.error({ err }, err.message);

    const store = new CheckpointStore({ root: config.storage.root, sync: config.storage.sync, signer });
    // Credentials and the encryption key are checked here: a bad file stops the start, naming it.
    const remote = config.storage.remote && new RemoteStore({ config: config.storage.remote, signer });
    if (remote) stops.push(async () => remote.close());
    // The catalog drops in-use marks of restores whose job is gone (a worker died): it reads job states itself, as the
    // queue needs the catalog to enqueue restores.
    const jobStates = new NodeQueues(redis, config.redis.prefix);
    stops.push(() => jobStates.close());
    const catalogOn = (connection: typeof redis) =>
      new Catalog(connection, {
        prefix: config.redis.prefix,
        store,
        node: config.node,
        sharedStorage: config.storage.shared,
        isRefLive: (jobId) => isJobLive(jobStates, jobId),
        ...(remote && { remote }),
      });
    const catalog = catalogOn(redis);
    const policy = new TargetPolicy({
      allowUids: config.policy.allowUids,
      allowCommands: config.policy.allowCommands,
      protectedPids: foundation.protectedPids,
    });
    const registry = new WorkloadRegistry(redis, config.redis.prefix);
    const workloads = new Workloads({
      registry,
      eventLog,
      node: config.node,
      root: config.workloads.root,
      stopGraceMs: config.workloads.stopGraceMs,
      policy,
    });
    const resolve = (spec: TargetSpec) => resolveTarget(spec, { workloads, exclude: policy.ownPids() });
    // A dump asked for through the API (POST /dumps, trigger-now) is checked at the edge, so a refused or
    // unresolvable target answers 4xx at once instead of becoming a failed job; the worker checks again when it runs.
    const checkTarget = async (spec: TargetSpec) => policy.check(await resolve(spec));
    const queue = new JobQueue({
      connection: config.redis,
      prefix: config.redis.prefix,
      node: config.node,
      eventLog,
      defaults: config.worker,
      checkpoints: catalog,
      workloads: registry,
      signer,
      requireLiveNode: true,
      sharedStorage: config.storage.shared,
      remoteStorage: config.storage.remote !== undefined,
    });
    stops.push(() => queue.close());
    // BullMQ drops finished jobs past keepCompleted / keepFailed; the job index follows them.
    const pruning = setInterval(() => void queue.pruneIndex().catch(onError), INDEX_PRUNE_INTERVAL_MS);
    pruning.unref();
    stops.push(async () => clearInterval(pruning));

    if (roles.worker) {
      const { waiting } = foundation;
      const workerCatalog = catalogOn(waiting.redis);
      // Redis lost its data (or is new) while this node's folders hold checkpoints: list them again before any job runs.
      const rebuilt = await workerCatalog.rebuildIfEmpty();
      if (rebuilt && (rebuilt.added.length || rebuilt.skipped.length)) {
        log.info({ root: store.root, added: rebuilt.added, skipped: rebuilt.skipped }, `catalog rebuilt from ${rebuilt.added.length} checkpoint folder(s)`);
      }
      const worker = new CkptWorker({
        config,
        eventLog: waiting.eventLog,
        criuSocket: foundation.criuSocket,
        catalog: workerCatalog,
        store,
        ...(remote && { remote }),
        policy,
        signer,
        log,
        onError,
      });
      await worker.start();
      stops.push(() => worker.close());
      log.info({ node: config.node, concurrency: config.worker.concurrency, storage: config.storage.root }, 'worker running');
    }

    if (!roles.api && !roles.scheduler) return { close };
    // Validates and seeds the config's schedules; the tick loop runs only with the scheduler role, but trigger-now
    // works wherever the API is.
    const { store: scheduleStore, scheduler, stop: stopScheduler } = await startSchedulerService({
      config: { ...config, scheduler: { ...config.scheduler, enabled: roles.scheduler } },
      configFile,
      redis,
      eventLog,
      enqueuer: queue,
      catalog,
      checkTarget,
      liveNodes: () => queue.liveNodes(),
      logger: log,
    });
    stops.push(stopScheduler);

    if (!roles.api) return { close };

    const app = createApiServer({ logger: log, auth, bodyLimitBytes: config.api.bodyLimitBytes });
    const feed = new FeedServer({
      server: app.server,
      eventLog,
      redis,
      auth,
      options: config.feed,
      onError,
      snapshot: async (who) => ({
        jobs: (await queue.listJobs({ limit: 100 })).map((job) => (who.role === 'operate' ? job : withoutCommandLine(job))),
        checkpoints: await catalog.list({ limit: 100 }),
        schedules: (await scheduleStore.list()).map((r) => r.schedule),
      }),
    });
    const probes = healthProbes(config, foundation);
    const metrics = createMetrics({
      collectJobCounts: () => queue.countsByTypeAndState(),
      countFeedClients: () => feed.stats().clients,
      collectInventory: async () => {
        const [checkpoints, schedules] = await Promise.all([catalog.list({ limit: Infinity }), listScheduleViews(scheduleStore)]);
        return summarize(
          checkpoints,
          schedules.map((v) => ({ ...v, healthy: v.state.healthy, consecutiveFailures: v.state.consecutiveFailures, intervalMs: scheduleIntervalMs(v) })),
        );
      },
      checkHealth: () => runHealthChecks(probes),
      onError,
    });
    metrics.follow(feed.tailer);

    await app.register(operationsRoutes, { probes, metricsText: () => metrics.metricsText(), version, auth });
    await app.register(jobRoutes, {
      jobs: {
        ...bind(queue, 'enqueueRestore', 'enqueueBatchRestore', 'enqueueVerify', 'getJob', 'listJobs', 'getJobLog', 'cancelJob', 'retryJob'),
        enqueueDump: async (job) => {
          if (!job.node || job.node === config.node) await checkTarget(job.target);
          return queue.enqueueDump(job);
        },
        enqueueMigration: async (m) => {
          // Checked here only when the process is on this node (a workload's record may put it elsewhere).
          const fromNode = await queue.migrationSource(m);
          if (fromNode === config.node) await checkTarget(m.target ?? { workload: m.workload! });
          return queue.enqueueMigration({ ...m, fromNode });
        },
      },
    });
    await app.register(checkpointRoutes, { catalog, readLog: (id) => readDumpLog({ catalog, store, node: config.node }, id) });
    await app.register(workloadRoutes, {
      workloads: {
        ...bind(workloads, 'run', 'list', 'get', 'stop', 'readOutput'),
        newestCheckpoint: (name) => catalog.latest(workloadTargetKey(name)),
      },
    });
    await app.register(scheduleRoutes, { store: scheduleStore, scheduler });
    await app.register(consoleRoutes, { overview: () => queue.overview(), recentEvents: (n) => eventLog.readLast(n) });
    await app.register(registerDashboard);
    await feed.start();
    stops.push(() => app.close());
    // Runs before app.close(): open WebSockets would keep the HTTP server from closing.
    stops.push(() => feed.close());
    await app.listen({ host: config.api.host, port: config.api.port });
    const address = app.server.address() as AddressInfo;
    const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    return { url: `http://${host}:${address.port}`, close };
  } catch (err) {
    await close();
    throw err;
  }
}

/** Picks methods of `obj`, bound to it. */
function bind<T extends object, K extends keyof T>(obj: T, ...names: K[]): Pick<T, K> {
  return Object.fromEntries(names.map((n) => [n, (obj[n] as (...a: unknown[]) => unknown).bind(obj)])) as Pick<T, K>;
}
