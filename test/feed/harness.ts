import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import WebSocket, { type ClientOptions } from 'ws';
import { Authenticator, type AuthenticatorOptions } from '../../src/security/auth.js';
import { EventId } from '../../src/events/event-id.js';
import { EventLog } from '../../src/events/event-log.js';
import type { EventInput } from '../../src/events/types.js';
import { FeedServer, type FeedOptions } from '../../src/feed/server.js';
import { TestRedis } from '../helpers/redis.js';

/** Any message the server sends, loosely typed for assertions. */
export type Msg = { type: string; [k: string]: unknown };
export type EventMsg = Msg & { type: 'event'; id: string; event: string; jobId?: string; data: Record<string, unknown> };

export const FEED_DEFAULTS: FeedOptions = {
  heartbeatMs: 30_000,
  maxPayloadBytes: 64 * 1024,
  maxBufferedBytes: 4 * 1024 * 1024,
};

/** One Redis for a test file; each feed gets a fresh stream key so tests do not see each other's events. */
export class FeedHarness {
  private readonly cleanups: (() => Promise<unknown> | unknown)[] = [];

  private constructor(
    readonly redisServer: TestRedis,
    readonly redis: Redis,
  ) {}

  static async start(): Promise<FeedHarness> {
    const server = await TestRedis.start();
    const redis = new Redis(server.url);
    redis.on('error', () => undefined); // tests that restart Redis see the failures where they matter
    return new FeedHarness(server, redis);
  }

  eventLog(maxLen?: number, key = `test:${randomUUID()}:events`): EventLog {
    return new EventLog(this.redis, { key, maxLen });
  }

  /** An HTTP server on 127.0.0.1 with a started FeedServer on it. */
  async feed(opts: {
    eventLog: EventLog;
    options?: Partial<FeedOptions>;
    auth?: AuthenticatorOptions;
    snapshot?: () => Promise<unknown>;
  }): Promise<{ feed: FeedServer; url: string; server: http.Server }> {
    const server = http.createServer((_req, res) => res.writeHead(404).end());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const feed = new FeedServer({
      server,
      eventLog: opts.eventLog,
      redis: this.redis,
      auth: new Authenticator(opts.auth ?? { host: '127.0.0.1', tokens: [] }),
      options: { ...FEED_DEFAULTS, ...opts.options },
      snapshot: opts.snapshot ?? (async () => ({ state: 'now' })),
    });
    await feed.start();
    this.cleanups.push(async () => {
      await feed.close();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    });
    const { port } = server.address() as AddressInfo;
    return { feed, url: `ws://127.0.0.1:${port}/api/v1/feed`, server };
  }

  /**
   * Appends the events in one MULTI, as EventLog.publish stores them: Redis serves a blocked XREAD only after the EXEC,
   * so a feed's tailer reads them in one go (several events ready at once, the case `events` frames are for).
   */
  async publishTogether(log: EventLog, inputs: EventInput[]): Promise<string[]> {
    const multi = this.redis.multi();
    for (const input of inputs) multi.xadd(log.key, '*', 'e', JSON.stringify({ ...input, ts: Date.now() }));
    return (await multi.exec())!.map(([err, id]) => {
      if (err) throw err;
      return String(id);
    });
  }

  async client(url: string, options?: ClientOptions): Promise<FeedClient> {
    const c = await FeedClient.connect(url, options);
    this.cleanups.push(() => c.ws.terminate());
    return c;
  }

  async stop(): Promise<void> {
    for (const cleanup of this.cleanups.reverse()) await cleanup();
    this.redis.disconnect();
    await this.redisServer.stop();
  }
}

/** A real ws client that records every message, with awaitable helpers. */
export class FeedClient {
  readonly received: Msg[] = [];
  private cursor = 0;
  private wake?: () => void;
  readonly closed: Promise<{ code: number; reason: string }>;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      this.received.push(JSON.parse(String(data)) as Msg);
      this.wake?.();
    });
    this.closed = new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: String(reason) })));
    this.closed.then(() => this.wake?.());
  }

  static connect(url: string, options?: ClientOptions): Promise<FeedClient> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, options);
      const client = new FeedClient(ws);
      ws.once('open', () => resolve(client));
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { statusCode: res.statusCode })));
    });
  }

  send(message: unknown): void {
    this.ws.send(typeof message === 'string' ? message : JSON.stringify(message));
  }

  /** The next message not yet taken (skipping none), waiting up to `timeoutMs`. */
  async next(timeoutMs = 10_000): Promise<Msg> {
    const deadline = Date.now() + timeoutMs;
    while (this.cursor >= this.received.length) {
      if (this.ws.readyState === WebSocket.CLOSED) throw new Error(`connection closed; received ${JSON.stringify(this.received.slice(-3))}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no message within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    return this.received[this.cursor++]!;
  }

  /** Takes the next message and checks its type. */
  async expect(type: string, timeoutMs?: number): Promise<Msg> {
    const m = await this.next(timeoutMs);
    if (m.type !== type) throw new Error(`expected ${type}, got ${JSON.stringify(m)}`);
    return m;
  }

  /**
   * Takes messages until an event with id `lastId` arrives; returns every event taken, those of `events` frames
   * (batch: true) one by one (other types are kept aside).
   */
  async eventsUntil(lastId: string, timeoutMs?: number): Promise<EventMsg[]> {
    const events: EventMsg[] = [];
    // Each message within timeoutMs, and all of them within a minute (a feed that keeps sending others is a failure too).
    for (const deadline = Date.now() + 60_000; ; ) {
      if (Date.now() > deadline) throw new Error(`event ${lastId} not received within 60 s; got ${JSON.stringify(events.slice(-3))}`);
      const m = await this.next(timeoutMs);
      if (m.type === 'event') events.push(m as EventMsg);
      else if (m.type === 'events') events.push(...(m.events as EventMsg[]));
      else continue;
      if (events.at(-1)!.id === lastId) return events;
    }
  }

  /** Subscribes and waits for the ack (and, with since, for the replay to end: 'live' or a reset). */
  async subscribe(sub: { channels: string[]; filter?: object; since?: string; batch?: boolean }): Promise<Msg> {
    this.send({ op: 'subscribe', ...sub });
    return this.expect('subscribed');
  }
}

/** An event of job `jobId` with any data: the feed passes data through unread, so tests send only what they check. */
/** The ids of events or event messages, in their order. */
export const ids = (events: readonly { id: string }[]): string[] => events.map((e) => e.id);

export function jobEvent(jobId: string, event: EventInput['event'], data: Record<string, unknown> = {}, jobType: EventInput['jobType'] = 'dump'): EventInput {
  return { event, jobId, jobType, target: `pid:${jobId}`, data } as EventInput;
}

/**
 * Waits until the feed's tailer has handed out event `id`. A client subscribing after that finds everything up to `id`
 * in the server's past: after a reset, only later events follow the snapshot (a lagging tailer may legitimately let a
 * few already reflected in it follow too, which a test expecting "only live events" must rule out first).
 */
export async function tailedTo(feed: FeedServer, id: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (EventId.compare(feed.tailer.head, id) < 0) {
    if (Date.now() > deadline) throw new Error(`the feed's tailer did not reach ${id} within ${timeoutMs} ms (at ${feed.tailer.head})`);
    await sleep(5);
  }
}
