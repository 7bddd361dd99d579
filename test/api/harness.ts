import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import WebSocket from 'ws';
import pino, { type Logger } from 'pino';
import { startService, type RunningService } from '../../src/app/start-service.js';
import { configSchema, type Config, type ConfigInput } from '../../src/config/schema.js';
import { requireCriu } from '../helpers/criu.js';
import { TestRedis, type TestRedisOptions } from '../helpers/redis.js';
import { startTcpPair, type Counter } from '../helpers/targets.js';
import { waitUntil } from '../helpers/wait.js';
import { checkAnswer } from './openapi-check.js';

/** A real ckpt service (API, feed, worker, scheduler, its own CRIU service) in this process, on a private Redis. */
export interface ServiceUnderTest {
  url: string;
  config: Config;
  redis: TestRedis;
  /** Another API-only process view on the same Redis and storage (for multi-process tests). */
  startAnother(overrides?: ConfigInput): Promise<{ url: string; close(): Promise<void> }>;
  /**
   * A worker only (another node, say), on the same Redis and, unless `overrides` says otherwise, the same storage
   * root (a shared filesystem, as far as these two are concerned). Give it its own criu.runtimeDir.
   */
  startWorker(overrides: ConfigInput): Promise<{ close(): Promise<void> }>;
}

export interface ServerOptions {
  /** How the test's redis-server runs (password, ACL users, TLS). */
  redis?: TestRedisOptions;
  /** config.redis for that server (credentials, TLS files). Default: `{url: server.url}`. */
  redisConfig?: (server: TestRedis) => ConfigInput['redis'];
  /** Where the service logs. Default: silent (CKPT_TEST_LOG sets a level). */
  log?: pino.Logger;
}

export async function startServiceUnderTest(
  t: TestContext,
  overrides: ConfigInput = {},
  server: ServerOptions = {},
): Promise<ServiceUnderTest | undefined> {
  if (!(await requireCriu(t))) return undefined;
  const cleanups: (() => Promise<unknown>)[] = [];
  t.after(async () => {
    for (const fn of cleanups.reverse()) await fn();
  });
  const redis = await TestRedis.start(server.redis);
  cleanups.push(() => redis.stop());
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ckpt-api-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const make = (extra: ConfigInput): Config =>
    configSchema.parse({
      node: 'test-node',
      redis: server.redisConfig?.(redis) ?? { url: redis.url },
      worker: { backoff: { baseDelayMs: 200, maxDelayMs: 1000 }, attempts: 3 },
      ...overrides,
      ...extra,
      api: { host: '127.0.0.1', port: 0, ...overrides.api, ...extra.api },
      storage: { root: path.join(dir, 'checkpoints'), minFreeBytes: 0, ...overrides.storage, ...extra.storage },
      criu: { runtimeDir: path.join(dir, 'run'), ...overrides.criu, ...extra.criu },
      workloads: { root: path.join(dir, 'workloads'), ...overrides.workloads, ...extra.workloads },
    });
  const log = server.log ?? pino({ level: process.env.CKPT_TEST_LOG ?? 'silent' });
  const start = async (config: Config, roles = { api: true, worker: true, scheduler: true }): Promise<RunningService> => {
    const svc = await startService({ config, roles, log, version: 'test' });
    cleanups.push(() => svc.close());
    return svc;
  };
  const config = make({});
  const main = await start(config);
  return {
    url: main.url!,
    config,
    redis,
    async startAnother(extra: ConfigInput = {}) {
      const other = await start(make(extra), { api: true, worker: false, scheduler: false });
      return { url: other.url!, close: () => other.close() };
    },
    async startWorker(extra: ConfigInput) {
      const worker = await start(make(extra), { api: false, worker: true, scheduler: false });
      return { close: () => worker.close() };
    },
  };
}

/** A feed client that records every message it gets. */
export class FeedRecorder {
  readonly messages: any[] = [];
  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => this.messages.push(JSON.parse(data.toString())));
  }

  static async open(url: string, headers: Record<string, string> = {}): Promise<FeedRecorder> {
    const ws = new WebSocket(url.replace(/^http/, 'ws') + '/api/v1/feed', { headers });
    const rec = new FeedRecorder(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    await rec.waitFor((m) => m.type === 'hello');
    return rec;
  }

  /** open(), then subscribed to `channels` (once the feed acknowledged it). */
  static async subscribed(url: string, channels: string[]): Promise<FeedRecorder> {
    const rec = await FeedRecorder.open(url);
    rec.send({ op: 'subscribe', channels });
    await rec.waitFor((m) => m.type === 'subscribed');
    return rec;
  }

  send(msg: unknown): void {
    this.ws.send(JSON.stringify(msg));
  }

  events(jobId?: string): any[] {
    return this.messages.filter((m) => m.type === 'event' && (!jobId || m.jobId === jobId));
  }

  async waitFor(pred: (m: any) => boolean, timeoutMs = 60_000): Promise<any> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.messages.find(pred);
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`feed: no matching message within ${timeoutMs} ms; got ${JSON.stringify(this.messages.slice(-5))}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async close(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return;
    const closed = new Promise((r) => this.ws.once('close', r));
    this.ws.close();
    await closed;
  }
}

export async function api(
  url: string,
  method: string,
  pathname: string,
  body?: unknown,
  headers: Record<string, string> = {},
  signal?: AbortSignal,
) {
  const res = await fetch(url + pathname, {
    method,
    signal,
    headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  // Every answer is what the OpenAPI document says (status documented, body matching its schema).
  await checkAnswer(url, method, pathname, res.status, res.headers.get('content-type') ?? '', json);
  return { status: res.status, json, text };
}

/**
 * Polls GET /api/v1/jobs/<id> until the job is in one of `states` (default: finished, completed or failed) and returns
 * it; fails at once when it finished in a state not asked for (with its reason), or after `timeoutMs`.
 */
export async function jobIn(url: string, jobId: string, states = ['completed', 'failed'], timeoutMs = 60_000): Promise<any> {
  return waitUntil(
    `job ${jobId} to be ${states.join(' or ')}`,
    async () => {
      const job = (await api(url, 'GET', `/api/v1/jobs/${jobId}`)).json;
      if (states.includes(job?.state)) return job;
      if (['completed', 'failed'].includes(job?.state)) throw new Error(`job ${jobId} is ${job.state}, not ${states.join(' or ')}: ${job.failedReason ?? ''}`);
      return undefined;
    },
    { timeoutMs, pollMs: 50 },
  );
}

/**
 * A service, a process tree holding an established TCP connection (which CRIU refuses without tcpEstablished) and a
 * feed recorder on the job channel; all stopped after the test. Undefined when CRIU is missing (the test is skipped).
 */
export async function serviceWithTcpPair(t: TestContext): Promise<{ svc: ServiceUnderTest; pair: Counter; feed: FeedRecorder } | undefined> {
  const svc = await startServiceUnderTest(t);
  if (!svc) return undefined;
  const pair = await startTcpPair();
  t.after(() => pair.kill());
  const feed = await FeedRecorder.subscribed(svc.url, ['job']);
  t.after(() => feed.close());
  return { svc, pair, feed };
}
