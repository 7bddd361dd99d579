import type http from 'node:http';
import type { Duplex } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import { WebSocketServer, type WebSocket } from 'ws';
import { authErrorBody, isAuthFailure, type Authenticator, type Principal } from '../security/auth.js';
import type { Config } from '../config/schema.js';
import type { EventLog } from '../events/event-log.js';
import { waitingDuplicate } from '../queue/redis.js';
import { historyGapAfter } from './history.js';
import { CLOSE, encodeBatch, FEED_PATH } from './protocol.js';
import { FeedSession, type SessionContext, type SessionLimits } from './session.js';
import { EventTailer } from './tailer.js';

/** config.feed, plus tuning knobs that are not in the config file (defaults below). */
export type FeedOptions = Config['feed'] & {
  /** Unsent bytes above which progress is coalesced and messages queue. Default: min(256 KiB, maxBufferedBytes / 4). */
  coalesceAboveBytes?: number;
  /** Events per replay read. Default 500. */
  replayBatch?: number;
  /** Live events held per client during its replay. Default 10,000. */
  maxPendingEvents?: number;
  /** One XREAD BLOCK of the tailer. Default 5000 ms. */
  blockMs?: number;
};

export interface FeedServerOptions {
  /** The API's HTTP server; the feed answers its 'upgrade' requests for `path`. */
  server: http.Server;
  eventLog: EventLog;
  /** A connection for replay reads; the tailer blocks on a duplicate of it. */
  redis: Redis;
  auth: Authenticator;
  options: FeedOptions;
  /**
   * The current state, sent after a `reset` (jobs, schedules, checkpoints: whatever the API's snapshot is), as the
   * connected principal may see it (read tokens get no command lines).
   */
  snapshot: (principal: Principal) => Promise<unknown>;
  /** Where unexpected errors go (Redis read failures, snapshot bugs). Default: ignored. */
  onError?: (err: Error) => void;
  /** Default /api/v1/feed. */
  path?: string;
}

export interface FeedStats {
  clients: number;
  /** Clients closed with 1008 'too slow' since start. */
  closedTooSlow: number;
  /** Clients terminated for not answering a heartbeat since start. */
  terminatedByHeartbeat: number;
}

/** Stop waiting for clients to acknowledge the close after this long and cut them off. */
const SHUTDOWN_GRACE_MS = 1000;

/**
 * The live feed on the API's HTTP server (protocol: src/feed/protocol.ts). Authenticates upgrades before the handshake,
 * reads the event stream once through an EventTailer and fans each read out to every session: each event serialized
 * once, and once more batched (`events` frames) for the clients that take batches.
 */
export class FeedServer {
  /** The process's single reader of the event stream; other consumers (metrics) may listen to it too. */
  readonly tailer: EventTailer;
  private readonly wss: WebSocketServer;
  private readonly clients = new Set<FeedSession>();
  private readonly limits: SessionLimits;
  private readonly context: SessionContext;
  private readonly path: string;
  private heartbeat?: NodeJS.Timeout;
  private stopTail?: () => void;
  private accepting = false;
  private counts = { closedTooSlow: 0, terminatedByHeartbeat: 0 };

  constructor(private readonly o: FeedServerOptions) {
    const { options } = o;
    this.path = o.path ?? FEED_PATH;
    this.wss = new WebSocketServer({ noServer: true, maxPayload: options.maxPayloadBytes, clientTracking: false });
    this.tailer = new EventTailer({
      eventLog: o.eventLog,
      blockingRedis: waitingDuplicate(o.redis),
      blockMs: options.blockMs,
      onError: (err) => this.reportError(err),
    });
    this.limits = {
      coalesceAboveBytes: options.coalesceAboveBytes ?? Math.min(256 * 1024, Math.floor(options.maxBufferedBytes / 4)),
      maxBufferedBytes: options.maxBufferedBytes,
      replayBatch: options.replayBatch ?? 500,
      maxPendingEvents: options.maxPendingEvents ?? 10_000,
    };
    this.context = {
      eventLog: o.eventLog,
      head: () => this.tailer.head,
      historyGapAfter: (afterId) => historyGapAfter(o.redis, o.eventLog.key, afterId),
      snapshot: o.snapshot,
      onError: (err) => this.reportError(err),
    };
  }

  get clientCount(): number {
    return this.clients.size;
  }

  /** The connected sessions (read-only view, for stats and tests). */
  get sessions(): ReadonlySet<FeedSession> {
    return this.clients;
  }

  stats(): FeedStats {
    return { clients: this.clients.size, ...this.counts };
  }

  async start(): Promise<void> {
    await this.tailer.start();
    this.stopTail = this.tailer.onEvents((events) => {
      if (this.clients.size === 0) return;
      const batch = encodeBatch(events);
      for (const client of this.clients) client.offerLive(batch);
    });
    this.o.server.on('upgrade', this.onUpgrade);
    this.heartbeat = setInterval(() => {
      for (const client of this.clients) client.beat();
    }, this.o.options.heartbeatMs);
    this.heartbeat.unref();
    this.accepting = true;
  }

  /** Stops accepting, closes every client with 1001 (cut off after a grace period) and stops the tailer. */
  async close(): Promise<void> {
    this.accepting = false;
    this.o.server.off('upgrade', this.onUpgrade);
    clearInterval(this.heartbeat);
    this.stopTail?.();
    const closed = [...this.clients].map((c) => new Promise((resolve) => c.ws.once('close', resolve)));
    for (const client of this.clients) client.close(CLOSE.goingAway, 'server shutting down', 'shutdown');
    await Promise.race([Promise.all(closed), sleep(SHUTDOWN_GRACE_MS)]);
    for (const client of this.clients) client.ws.terminate();
    await this.tailer.stop();
    this.wss.close();
  }

  private readonly onUpgrade = (req: http.IncomingMessage, socket: Duplex, head: Buffer): void => {
    socket.on('error', () => socket.destroy());
    const { pathname } = new URL(req.url ?? '/', 'http://localhost');
    if (pathname !== this.path) {
      // Another upgrade handler may own that path; answer only when there is none.
      if (this.o.server.listenerCount('upgrade') === 1) refuse(socket, 404, { error: 'not_found', message: `no WebSocket at ${pathname}` });
      return;
    }
    if (!this.accepting) return refuse(socket, 503, { error: 'unavailable', message: 'the feed is shutting down' });
    const who = this.o.auth.check(req.headers, req.url, 'read');
    if (isAuthFailure(who)) {
      return refuse(socket, who.status, authErrorBody(who), who.status === 401 ? { 'WWW-Authenticate': 'Bearer' } : {});
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws, socket, who));
  };

  private accept(ws: WebSocket, socket: Duplex, principal: Principal): void {
    // Protocol errors (oversized or malformed frames) close the socket with the right code; nothing else to do.
    ws.on('error', () => undefined);
    const session = new FeedSession(ws, socket, principal, this.context, this.limits);
    this.clients.add(session);
    ws.once('close', () => {
      this.clients.delete(session);
      if (session.endedBy === 'too-slow') this.counts.closedTooSlow++;
      if (session.endedBy === 'heartbeat') this.counts.terminatedByHeartbeat++;
    });
  }

  private reportError(err: Error): void {
    this.o.onError?.(err);
  }
}

const STATUS_TEXT: Record<number, string> = { 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 503: 'Service Unavailable' };

/** Answers an upgrade request with a plain HTTP error, before any WebSocket handshake. */
function refuse(socket: Duplex, status: number, body: object, headers: Record<string, string> = {}): void {
  const json = JSON.stringify(body);
  const lines = [
    `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Error'}`,
    'Connection: close',
    'Content-Type: application/json; charset=utf-8',
    `Content-Length: ${Buffer.byteLength(json)}`,
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
  ];
  socket.once('finish', () => socket.destroy());
  socket.end(`${lines.join('\r\n')}\r\n\r\n${json}`);
}
