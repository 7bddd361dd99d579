import WebSocket from 'ws';
import type { Channel, EventName } from '../events/types.js';
import type { JobType } from '../common/job-kinds.js';
import type { FeedFilter } from '../feed/protocol.js';
import { CHANNELS } from '../events/types.js';
import { EventId } from '../events/event-id.js';

/** What the feed sends for each event (see the feed protocol in the README). */
export interface FeedEventMessage {
  type: 'event';
  id: string;
  event: EventName;
  ts: number;
  jobId?: string;
  jobType?: JobType;
  scheduleId?: string;
  target?: string;
  data: Record<string, any>;
}

export type FeedStatus =
  | { state: 'connected'; lastEventId: string | undefined }
  | { state: 'reconnecting'; code?: number; reason: string; delayMs: number };

/** The feed refused us, or the connection failed before the first subscription. Not retried. */
export class FeedError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'FeedError';
  }
}

export interface FeedClientOptions {
  /** API base URL (http[s]://host:port); the feed is at /api/v1/feed on the same server. */
  url: string;
  /** Sent as `Authorization: Bearer <token>` on the upgrade. */
  token?: string;
  /** Default: every channel. */
  channels?: readonly Channel[];
  filter?: FeedFilter;
  /**
   * Replay events after this id first. Default: the newest id the server reports in `hello`, so the client gets
   * every event from the moment it connected (nothing between connecting and subscribing is lost).
   */
  since?: string;
  onEvent(message: FeedEventMessage): void;
  /** History older than `since` is gone: a snapshot of the current state follows. */
  onReset?(): void;
  onSnapshot?(data: unknown): void;
  onStatus?(status: FeedStatus): void;
  /** An `error` message from the server after subscribing (the connection stays). */
  onServerError?(error: FeedError): void;
  /** The connection ended for good after having worked (refused on reconnect, a fatal close code): no more events. */
  onGiveUp?(error: FeedError): void;
  /** Reconnect delays grow from min to max (x2 each try). Defaults 200 ms, 5 s. */
  minReconnectDelayMs?: number;
  maxReconnectDelayMs?: number;
  /** A protocol-level ping every this many ms; no pong before the next one means the connection is dead. Default 15 s. */
  heartbeatMs?: number;
  /** Gives up on a connection attempt after this long. Default 10 s. */
  connectTimeoutMs?: number;
}

/** Close codes after which reconnecting cannot help. */
const FATAL_CLOSE_CODES = new Set([1002, 1003, 1007, 4000, 4001, 4003, 4400, 4401, 4403]);

/**
 * A feed subscriber that never misses an event: it remembers the id of the last event it delivered and, when the
 * connection drops, reconnects and subscribes with `since` = that id, so the server replays exactly what was missed.
 * Events at or before the cursor are dropped, so a replay overlap can never deliver an event twice.
 */
export class FeedClient {
  private ws?: WebSocket;
  private cursor?: string;
  private closed = false;
  private subscribedOnce = false;
  private reconnectDelayMs: number;
  private reconnectTimer?: NodeJS.Timeout;
  private heartbeatTimer?: NodeJS.Timeout;

  constructor(private readonly options: FeedClientOptions) {
    this.cursor = options.since;
    this.reconnectDelayMs = options.minReconnectDelayMs ?? 200;
  }

  /** Id of the last event delivered (or the starting point), for resuming elsewhere. */
  get lastEventId(): string | undefined {
    return this.cursor;
  }

  get feedUrl(): string {
    const u = new URL(this.options.url.replace(/\/+$/, '') + '/api/v1/feed');
    u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
    return u.toString();
  }

  /** Connects and subscribes; resolves once subscribed. A first connection that fails rejects (no retry). */
  start(): Promise<void> {
    return this.connect();
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.reconnectTimer);
    clearInterval(this.heartbeatTimer);
    this.ws?.removeAllListeners();
    this.ws?.on('error', () => undefined);
    this.ws?.terminate();
    this.ws = undefined;
  }

  private connect(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let subscribed = false;
      // Between a `reset` and the `live` that ends it, the old cursor means nothing (it may even be from another
      // history, newer than every id here): events are taken as the server sends them, and `live` sets the cursor.
      let resetting = false;
      const headers: Record<string, string> = {};
      if (this.options.token) headers.authorization = `Bearer ${this.options.token}`;
      const ws = new WebSocket(this.feedUrl, { headers, handshakeTimeout: this.options.connectTimeoutMs ?? 10_000 });
      this.ws = ws;
      let failure: FeedError | undefined;

      const fail = (err: FeedError) => {
        failure ??= err;
        ws.terminate();
      };

      ws.on('unexpected-response', (_req, res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c.slice(0, 2000)));
        res.on('end', () => {
          let message = body;
          try {
            message = JSON.parse(body).message ?? body;
          } catch {
            // plain text or empty
          }
          fail(new FeedError(`http_${res.statusCode}`, `the feed refused the connection: ${res.statusCode} ${message}`.trim()));
        });
      });
      ws.on('error', (err: NodeJS.ErrnoException) => {
        failure ??= new FeedError(err.code ?? 'ECONNECT', `cannot connect to the feed at ${this.feedUrl}: ${err.code ?? err.message}`);
      });
      ws.on('pong', () => {
        (ws as WebSocket & { alive?: boolean }).alive = true;
      });
      const deliver = (e: FeedEventMessage) => {
        if (!resetting && this.cursor && EventId.compare(e.id, this.cursor) <= 0) return;
        this.cursor = e.id;
        this.options.onEvent(e);
      };
      ws.on('message', (raw) => {
        let msg: Record<string, any>;
        try {
          msg = JSON.parse(raw.toString());
        } catch {
          return fail(new FeedError('bad_message', 'the feed sent something that is not JSON'));
        }
        switch (msg.type) {
          case 'hello':
            this.cursor ??= typeof msg.lastEventId === 'string' ? msg.lastEventId : undefined;
            ws.send(
              JSON.stringify({
                op: 'subscribe',
                channels: this.options.channels ?? CHANNELS,
                ...(this.options.filter ? { filter: this.options.filter } : {}),
                ...(this.cursor ? { since: this.cursor } : {}),
                batch: true,
              }),
            );
            break;
          case 'subscribed':
            subscribed = true;
            this.subscribedOnce = true;
            this.reconnectDelayMs = this.options.minReconnectDelayMs ?? 200;
            this.startHeartbeat(ws);
            this.options.onStatus?.({ state: 'connected', lastEventId: this.cursor });
            resolve();
            break;
          case 'event':
            deliver(msg as FeedEventMessage);
            break;
          case 'events':
            // Several events in one frame (we subscribe with batch: true), oldest first.
            for (const e of msg.events as FeedEventMessage[]) deliver(e);
            break;
          case 'live':
            // After a reset the snapshot stands for everything up to lastEventId: resume after it.
            if (resetting && typeof msg.lastEventId === 'string') this.cursor = msg.lastEventId;
            resetting = false;
            break;
          case 'reset':
            resetting = true;
            this.options.onReset?.();
            break;
          case 'snapshot':
            this.options.onSnapshot?.(msg.data);
            break;
          case 'error': {
            const err = new FeedError(String(msg.code ?? 'error'), String(msg.message ?? 'feed error'));
            if (!subscribed) return fail(err);
            this.options.onServerError?.(err);
            break;
          }
          default:
            // pong and anything newer than this client: nothing to do.
            break;
        }
      });
      ws.on('close', (code, reasonBuf) => {
        clearInterval(this.heartbeatTimer);
        if (this.closed) return;
        const reason = reasonBuf.toString() || failure?.message || `closed (${code})`;
        if (!subscribed && !this.subscribedOnce) {
          this.closed = true;
          return reject(failure ?? new FeedError(`close_${code}`, `the feed closed the connection: ${reason}`));
        }
        if (!subscribed) reject(failure ?? new FeedError(`close_${code}`, reason));
        if (FATAL_CLOSE_CODES.has(code) || failure?.code.startsWith('http_4')) {
          this.closed = true;
          this.options.onGiveUp?.(failure ?? new FeedError(`close_${code}`, `the feed closed the connection: ${reason}`));
          return;
        }
        this.scheduleReconnect(code, reason);
      });
    });
  }

  private scheduleReconnect(code: number | undefined, reason: string): void {
    const delayMs = this.reconnectDelayMs;
    this.reconnectDelayMs = Math.min(delayMs * 2, this.options.maxReconnectDelayMs ?? 5000);
    this.options.onStatus?.({ state: 'reconnecting', code, reason, delayMs });
    this.reconnectTimer = setTimeout(() => {
      // A failed attempt ends in 'close', which schedules the next one.
      this.connect().catch(() => undefined);
    }, delayMs);
  }

  private startHeartbeat(ws: WebSocket & { alive?: boolean }): void {
    clearInterval(this.heartbeatTimer);
    ws.alive = true;
    this.heartbeatTimer = setInterval(() => {
      if (!ws.alive) return ws.terminate();
      ws.alive = false;
      ws.ping();
    }, this.options.heartbeatMs ?? 15_000);
    this.heartbeatTimer.unref();
  }
}
