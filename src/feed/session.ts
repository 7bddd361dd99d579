import type { WebSocket } from 'ws';
import type { Principal } from '../api/auth.js';
import type { Socket } from 'node:net';
import type { EventLog } from '../events/event-log.js';
import type { FeedEvent } from '../events/types.js';
import {
  CLOSE,
  encodeEvent,
  encodeMessage,
  eventOrder,
  isAfter,
  matches,
  parseClientMessage,
  PROTOCOL_VERSION,
  type EncodedEvent,
  type EventOrder,
  type ServerMessage,
  type SubscribeMessage,
  type Subscription,
} from './protocol.js';

export interface SessionLimits {
  /** Above this much unsent data, progress is coalesced and other messages wait in order in the session's queue. */
  coalesceAboveBytes: number;
  /** Unsent data (socket + queue) past which the client is closed with 1008 'too slow'. */
  maxBufferedBytes: number;
  /** Events read per replay batch. */
  replayBatch: number;
  /** Live events held while a replay runs; past this they are dropped and read again from the stream. */
  maxPendingEvents: number;
}

export interface SessionContext {
  eventLog: EventLog;
  /** Newest event id the process's tailer has handed out. */
  head(): string;
  /** Reason to reset when the stream no longer holds every event after `afterId`, else null. */
  historyGapAfter(afterId: string): Promise<string | null>;
  snapshot(principal: Principal): Promise<unknown>;
  onError(err: Error): void;
}

type Mode = 'idle' | 'catching-up' | 'live';

/** Corked data is handed to the kernel once it reaches this much (the socket's default high-water mark). */
const CORK_FLUSH_BYTES = 16 * 1024;

interface Queued {
  frame: Buffer;
}

/**
 * One feed client: its subscription, replay, ordered delivery with progress coalescing, and liveness.
 * Everything the client receives goes through `enqueue`/`write`, so messages arrive in the order they were accepted and
 * event ids only grow: `lastDelivered` drops anything at or below the newest id already accepted (replay/live overlap).
 */
export class FeedSession {
  /** Answered the last heartbeat ping. */
  alive = true;
  closed = false;
  /** Why the server ended it, when it did. */
  endedBy: 'too-slow' | 'heartbeat' | 'shutdown' | 'error' | null = null;
  /** Most unsent bytes (socket + queue) ever seen, for tests and stats. */
  peakBufferedBytes = 0;

  private mode: Mode = 'idle';
  private subscription: Subscription | null = null;
  private lastDelivered = '0-0';
  private lastOrder: EventOrder = { ms: 0, seq: 0 };
  /** Bumped by every subscribe/unsubscribe so an older replay that is still awaiting stops. */
  private generation = 0;
  private pending: EncodedEvent[] = [];
  private pendingOverflowed = false;
  /** The tailer's head when `pending` started buffering: every live event after it is in `pending` (unless overflowed). */
  private bufferedFrom = '0-0';
  /** Messages waiting for the socket to drain: ordered; progress keyed by job so a newer one replaces an older one. */
  private readonly queue = new Map<string, Queued>();
  private queuedBytes = 0;
  private queueSeq = 0;
  private drainWaiters: (() => void)[] = [];
  /** Set while a batch is being written corked (see `corked`). */
  private corkedSocket: Socket | null = null;

  constructor(
    readonly ws: WebSocket,
    readonly principal: Principal,
    private readonly context: SessionContext,
    private readonly limits: SessionLimits,
  ) {
    ws.on('message', (data) => this.onMessage(String(data)));
    ws.on('pong', () => (this.alive = true));
    ws.on('close', () => this.markClosed());
    this.sendMessage({ type: 'hello', version: PROTOCOL_VERSION, lastEventId: context.head() });
  }

  /** Live events from the tailer, already encoded. */
  offerLive(batch: readonly EncodedEvent[]): void {
    if (this.closed || this.mode === 'idle') return;
    if (this.mode === 'catching-up') {
      if (this.pending.length + batch.length > this.limits.maxPendingEvents) {
        this.pending = [];
        this.pendingOverflowed = true;
      } else {
        this.pending.push(...batch);
      }
      return;
    }
    this.corked(() => {
      for (const e of batch) this.offer(e);
    });
  }

  /** Heartbeat tick: false (and terminated) when the client did not answer the previous ping. */
  beat(): boolean {
    if (!this.alive) {
      this.endedBy ??= 'heartbeat';
      this.markClosed();
      this.ws.terminate();
      return false;
    }
    this.alive = false;
    this.ws.ping();
    this.flush();
    return true;
  }

  close(code: number, reason: string, endedBy: 'too-slow' | 'shutdown' | 'error'): void {
    this.endedBy ??= endedBy;
    this.markClosed();
    this.ws.close(code, reason);
  }

  private onMessage(text: string): void {
    const msg = parseClientMessage(text);
    if ('type' in msg) return this.sendMessage(msg);
    switch (msg.op) {
      case 'ping':
        return this.sendMessage({ type: 'pong' });
      case 'unsubscribe':
        this.generation++;
        this.subscription = null;
        this.mode = 'idle';
        this.pending = [];
        return this.sendMessage({ type: 'unsubscribed' });
      case 'subscribe':
        return void this.subscribe(msg).catch((err: Error) => this.failReplay(err));
    }
  }

  private async subscribe(msg: SubscribeMessage): Promise<void> {
    const generation = ++this.generation;
    this.subscription = { channels: new Set(msg.channels), filter: msg.filter };
    this.sendMessage({ type: 'subscribed', channels: msg.channels, filter: msg.filter, ...(msg.since ? { since: msg.since } : {}) });
    if (msg.since === undefined) {
      const head = this.context.head();
      this.goLive(isAfter(eventOrder(head), this.lastOrder) ? head : this.lastDelivered);
      return;
    }
    this.mode = 'catching-up';
    this.pending = [];
    this.pendingOverflowed = false;
    this.bufferedFrom = this.context.head();
    this.setLastDelivered(msg.since);
    await this.replay(generation, msg.since);
  }

  /**
   * Sends the stored events after `since`, then the live ones held meanwhile. Live events published after a replay read
   * are in `pending` (buffering started before the first read), so nothing falls between; overlap is dropped by id.
   */
  private async replay(generation: number, since: string): Promise<void> {
    let cursor = since;
    for (;;) {
      const batch = await this.context.eventLog.readAfter(cursor, this.limits.replayBatch);
      if (this.stale(generation)) return;
      // Checked after the read: if nothing after the cursor had been trimmed by now, the batch read before was whole.
      const gap = await this.context.historyGapAfter(cursor);
      if (this.stale(generation)) return;
      if (gap) return this.reset(generation, gap, cursor !== since);
      for (const e of batch) {
        if (this.overThreshold()) {
          await this.drained();
          if (this.stale(generation)) return;
        }
        this.offer(encodeEvent(e));
        cursor = e.id;
      }
      if (batch.length === this.limits.replayBatch) continue;
      if (!this.pendingOverflowed) break;
      this.pendingOverflowed = false;
    }
    this.goLive(this.lastDelivered);
  }

  /** The history could not be read (Redis down): say so and close; the client reconnects with the same `since`. */
  private failReplay(err: Error): void {
    this.context.onError(err);
    if (this.closed) return;
    this.sendMessage({ type: 'error', code: 'replay_failed', message: `could not read the event history: ${err.message}` });
    this.close(CLOSE.internalError, 'replay failed', 'error');
  }

  /**
   * History is gone: tell the client, send the current state, then the live events held since the subscribe, then live.
   * The held events follow the snapshot even though some may be reflected in it: an event that happens after the client's
   * subscribe was acknowledged must reach it as an event, not only as state (a client that acts once subscribed waits
   * for it). Only when `pending` overflowed are the events up to the tailer's head left to the snapshot.
   */
  private async reset(generation: number, reason: string, replayedSome: boolean): Promise<void> {
    const from = this.pendingOverflowed ? this.context.head() : this.bufferedFrom;
    this.pendingOverflowed = false;
    // The `since` itself may be from another history (newer than anything here): only events replayed on this
    // connection keep the floor above `from`.
    if (!replayedSome || isAfter(eventOrder(from), this.lastOrder)) this.setLastDelivered(from);
    this.sendMessage({ type: 'reset', reason });
    try {
      const data = await this.context.snapshot(this.principal);
      if (this.stale(generation)) return;
      this.sendMessage({ type: 'snapshot', data });
    } catch (err) {
      if (this.stale(generation)) return;
      this.sendMessage({ type: 'error', code: 'snapshot_failed', message: `snapshot failed: ${(err as Error).message}` });
    }
    this.goLive(this.lastDelivered);
  }

  private goLive(lastDelivered: string): void {
    const held = this.pending;
    const replayed = this.mode === 'catching-up';
    this.pending = [];
    this.setLastDelivered(lastDelivered);
    this.mode = 'live';
    this.corked(() => {
      for (const e of held) this.offer(e);
    });
    if (replayed) this.sendMessage({ type: 'live', lastEventId: this.lastDelivered });
  }

  private offer(e: EncodedEvent): void {
    if (!this.subscription || !isAfter(e.order, this.lastOrder)) return;
    this.lastDelivered = e.event.id;
    this.lastOrder = e.order;
    if (matches(this.subscription, e.event)) this.send(e.frame, coalesceKey(e.event));
  }

  private sendMessage(m: ServerMessage): void {
    this.send(encodeMessage(m), null);
  }

  /** Writes now when the socket keeps up; otherwise queues in order (coalescing progress by job) or closes if too slow. */
  private send(frame: Buffer, coalesceKey: string | null): void {
    if (this.closed) return;
    if (this.queue.size === 0 && !this.overThreshold()) return this.write(frame);
    const key = coalesceKey ?? `#${this.queueSeq++}`;
    const previous = this.queue.get(key);
    if (previous) {
      // Delete then set: the newer progress takes the newer position, so the order of ids stays increasing.
      this.queue.delete(key);
      this.queuedBytes -= previous.frame.length;
    }
    this.queue.set(key, { frame });
    this.queuedBytes += frame.length;
    this.notePeak();
    if (this.ws.bufferedAmount + this.queuedBytes > this.limits.maxBufferedBytes) this.close(CLOSE.tooSlow, 'too slow', 'too-slow');
  }

  private write(frame: Buffer): void {
    this.ws.send(frame, { binary: false }, this.afterWrite);
    this.notePeak();
    const socket = this.corkedSocket;
    if (socket && socket.writableLength >= CORK_FLUSH_BYTES) {
      socket.uncork();
      socket.cork();
    }
  }

  /** Runs when a frame has been handed to the kernel: the moment to refill from the queue. */
  private readonly afterWrite = (): void => {
    if (this.closed) return;
    this.flush();
    if (!this.overThreshold() && this.queue.size === 0) {
      const waiters = this.drainWaiters;
      this.drainWaiters = [];
      for (const w of waiters) w();
    }
  };

  private flush(): void {
    if (this.closed) return;
    for (const [key, item] of this.queue) {
      if (this.overThreshold()) return;
      this.queue.delete(key);
      this.queuedBytes -= item.frame.length;
      this.write(item.frame);
    }
  }

  private overThreshold(): boolean {
    return this.ws.bufferedAmount > this.limits.coalesceAboveBytes;
  }

  private drained(): Promise<void> {
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  private notePeak(): void {
    const unsent = this.ws.bufferedAmount + this.queuedBytes;
    if (unsent > this.peakBufferedBytes) this.peakBufferedBytes = unsent;
  }

  private stale(generation: number): boolean {
    return this.closed || generation !== this.generation;
  }

  private setLastDelivered(id: string): void {
    this.lastDelivered = id;
    this.lastOrder = eventOrder(id);
  }

  /**
   * Runs `sends` with the socket corked, so a batch of events leaves in one writev instead of one syscall each: under
   * load the tailer's batches grow, and so does this saving. ws has no public cork; `_socket` is the net.Socket it
   * writes to (ws corks it itself around each frame; corks nest). `write` uncorks every CORK_FLUSH_BYTES, so what
   * bufferedAmount reports stays what the kernel did not take, not what we held back.
   */
  private corked(sends: () => void): void {
    const socket = (this.ws as unknown as { _socket?: Socket | null })._socket;
    if (!socket || socket.destroyed) return sends();
    socket.cork();
    this.corkedSocket = socket;
    try {
      sends();
    } finally {
      this.corkedSocket = null;
      socket.uncork();
    }
  }

  private markClosed(): void {
    if (this.closed) return;
    this.closed = true;
    this.generation++;
    this.pending = [];
    this.queue.clear();
    this.queuedBytes = 0;
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of waiters) w();
  }
}

/** job.progress of one job may be replaced by a newer one while the client is behind; nothing else is dropped. */
function coalesceKey(e: FeedEvent): string | null {
  return e.event === 'job.progress' && e.jobId ? `progress:${e.jobId}` : null;
}
