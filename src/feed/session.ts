import type { Duplex } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { WebSocket } from 'ws';
import type { Principal } from '../security/auth.js';
import { EventId } from '../events/event-id.js';
import type { EventLog } from '../events/event-log.js';
import { Outbox, type OutboxLimits } from './outbox.js';
import {
  CLOSE,
  encodeEvent,
  encodeMessage,
  matches,
  parseClientMessage,
  PROTOCOL_VERSION,
  type EncodedBatch,
  type EncodedEvent,
  type ServerMessage,
  type SubscribeMessage,
  type Subscription,
} from './protocol.js';

/** How long a new session waits for Redis to tell the stream's newest id before it goes by the tailer's head. */
const HELLO_WAIT_MS = 1000;

export interface SessionLimits extends OutboxLimits {
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

/** Held live events while a replay reads the history: every live event after `bufferedFrom`, unless it overflowed. */
interface CatchingUp {
  phase: 'catching-up';
  held: EncodedEvent[];
  overflowed: boolean;
  /** The tailer's head when holding started. */
  bufferedFrom: EventId;
}

/**
 * Where the subscription stands. Every subscribe and unsubscribe replaces the object, so a replay still awaiting Redis
 * knows it is stale when `session.replay !== its state`.
 */
type ReplayState = { phase: 'idle' } | CatchingUp | { phase: 'live' };

export type SessionEnd = 'too-slow' | 'heartbeat' | 'shutdown' | 'error';

/**
 * One feed client: its subscription, replay and liveness; what it is sent goes through its Outbox, in the order it was
 * accepted. Event ids only grow: `lastDelivered` drops anything at or below the newest id already accepted
 * (replay/live overlap).
 */
export class FeedSession {
  /** Answered the last heartbeat ping. */
  alive = true;
  closed = false;
  /** Why the server ended it, when it did. */
  endedBy: SessionEnd | null = null;
  readonly outbox: Outbox;

  private replay: ReplayState = { phase: 'idle' };
  private subscription: Subscription | null = null;
  private lastDelivered = EventId.ZERO;

  constructor(
    readonly ws: WebSocket,
    /** The connection under `ws`. */
    socket: Duplex,
    readonly principal: Principal,
    private readonly context: SessionContext,
    private readonly limits: SessionLimits,
  ) {
    this.outbox = new Outbox(ws, socket, limits, () => this.close(CLOSE.tooSlow, 'too slow', 'too-slow'));
    const greeted = this.greet();
    // Messages wait for the hello, in the order they came.
    ws.on('message', (data) => void greeted.then(() => this.onMessage(String(data))).catch((err: Error) => context.onError(err)));
    ws.on('pong', () => (this.alive = true));
    ws.on('close', () => this.markClosed());
  }

  /**
   * `hello` tells the client where "now" is: the stream's newest event, which this process's tailer may not have read
   * yet (a client that took the tailer's head as its `since` got an event from before it connected). Redis down or
   * not answering within HELLO_WAIT_MS: the tailer's head, as far as anyone here knows.
   */
  private async greet(): Promise<void> {
    const head = EventId.parse(this.context.head());
    const newest = await this.newestOr(head);
    this.sendMessage({ type: 'hello', version: PROTOCOL_VERSION, lastEventId: (newest.isAfter(head) ? newest : head).text });
  }

  /** The stream's newest event id; `fallback` when Redis fails or has not answered within HELLO_WAIT_MS. */
  private newestOr(fallback: EventId): Promise<EventId> {
    return Promise.race([
      this.context.eventLog.lastId().then((id) => EventId.parse(id), () => fallback),
      sleep(HELLO_WAIT_MS, fallback, { ref: false }),
    ]);
  }

  /** Most unsent bytes (socket + queue) ever seen, for tests and stats. */
  get peakBufferedBytes(): number {
    return this.outbox.peakBufferedBytes;
  }

  /** Live events from the tailer, already encoded. */
  offerLive(batch: EncodedBatch): void {
    if (this.closed) return;
    const state = this.replay;
    switch (state.phase) {
      case 'idle':
        return;
      case 'catching-up':
        if (state.held.length + batch.events.length > this.limits.maxPendingEvents) {
          state.held = [];
          state.overflowed = true;
        } else {
          state.held.push(...batch.events);
        }
        return;
      case 'live':
        return this.deliver(batch.events, batch.frames);
    }
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
    this.outbox.pump();
    return true;
  }

  close(code: number, reason: string, endedBy: Exclude<SessionEnd, 'heartbeat'>): void {
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
        this.subscription = null;
        this.replay = { phase: 'idle' };
        return this.sendMessage({ type: 'unsubscribed' });
      case 'subscribe':
        return void this.subscribe(msg).catch((err: Error) => this.failReplay(err));
    }
  }

  private async subscribe(msg: SubscribeMessage): Promise<void> {
    this.subscription = { channels: new Set(msg.channels), filter: msg.filter };
    this.outbox.batching = msg.batch;
    this.sendMessage({ type: 'subscribed', channels: msg.channels, filter: msg.filter, ...(msg.since ? { since: msg.since } : {}), batch: msg.batch });
    const state: CatchingUp = { phase: 'catching-up', held: [], overflowed: false, bufferedFrom: EventId.parse(this.context.head()) };
    if (msg.since === undefined) return this.startFromNow(state);
    this.replay = state;
    this.lastDelivered = EventId.parse(msg.since);
    await this.replayAfter(state, msg.since);
  }

  /**
   * A subscribe without `since` starts after the stream's newest event, which this process's tailer may not have read
   * yet (it would then hand it out as new): live events are held while the newest id is asked for (Redis down: the
   * tailer's head, as far as anyone here knows).
   */
  private async startFromNow(state: CatchingUp): Promise<void> {
    this.replay = state;
    const newest = await this.newestOr(state.bufferedFrom);
    if (this.stale(state)) return;
    for (const from of [state.bufferedFrom, newest]) if (from.isAfter(this.lastDelivered)) this.lastDelivered = from;
    if (state.overflowed) return this.replayAfter(state, this.lastDelivered.text);
    this.replay = { phase: 'live' };
    this.deliver(state.held);
  }

  private stale(state: CatchingUp): boolean {
    return this.closed || this.replay !== state;
  }

  /**
   * Sends the stored events after `since`, then the live ones held meanwhile. Live events published after a replay read
   * are held (holding started before the first read), so nothing falls between; overlap is dropped by id.
   */
  private async replayAfter(state: CatchingUp, since: string): Promise<void> {
    let cursor = since;
    for (;;) {
      const batch = await this.context.eventLog.readAfter(cursor, this.limits.replayBatch);
      if (this.stale(state)) return;
      // Checked after the read: if nothing after the cursor had been trimmed by now, the batch read before was whole.
      const gap = await this.context.historyGapAfter(cursor);
      if (this.stale(state)) return;
      if (gap) return this.reset(state, gap, cursor !== since);
      for (const e of batch) {
        // Replayed events wait for the client instead of being coalesced: it asked for exactly these.
        if (!this.outbox.keepsUp()) {
          await this.outbox.drained();
          if (this.stale(state)) return;
        }
        this.deliver([encodeEvent(e)]);
        cursor = e.id;
      }
      if (batch.length === this.limits.replayBatch) continue;
      if (!state.overflowed) break;
      state.overflowed = false;
    }
    this.goLive(state);
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
   * for it). Only when holding overflowed are the events up to the tailer's head left to the snapshot.
   */
  private async reset(state: CatchingUp, reason: string, replayedSome: boolean): Promise<void> {
    const from = state.overflowed ? EventId.parse(this.context.head()) : state.bufferedFrom;
    state.overflowed = false;
    // The `since` itself may be from another history (newer than anything here): only events replayed on this
    // connection keep the floor above `from`.
    if (!replayedSome || from.isAfter(this.lastDelivered)) this.lastDelivered = from;
    this.sendMessage({ type: 'reset', reason });
    try {
      const data = await this.context.snapshot(this.principal);
      if (this.stale(state)) return;
      this.sendMessage({ type: 'snapshot', data });
    } catch (err) {
      if (this.stale(state)) return;
      this.sendMessage({ type: 'error', code: 'snapshot_failed', message: `snapshot failed: ${(err as Error).message}` });
    }
    this.goLive(state);
  }

  /** Replay done: the held live events (those not already sent), then `live`, then live events as they come. */
  private goLive(state: CatchingUp): void {
    this.replay = { phase: 'live' };
    this.deliver(state.held);
    this.sendMessage({ type: 'live', lastEventId: this.lastDelivered.text });
  }

  /**
   * Sends the events newer than the last delivered that the subscription matches. `sharedFrames` (the tailer read
   * batched once for all) is used when the client gets every one of `events`.
   */
  private deliver(events: readonly EncodedEvent[], sharedFrames?: () => readonly Buffer[]): void {
    const subscription = this.subscription;
    if (!subscription) return;
    const chosen: EncodedEvent[] = [];
    for (const e of events) {
      if (!e.id.isAfter(this.lastDelivered)) continue;
      this.lastDelivered = e.id;
      if (matches(subscription, e)) chosen.push(e);
    }
    this.outbox.sendEvents(chosen, chosen.length === events.length ? sharedFrames : undefined);
  }

  private sendMessage(m: ServerMessage): void {
    if (!this.closed) this.outbox.sendMessage(encodeMessage(m));
  }

  private markClosed(): void {
    if (this.closed) return;
    this.closed = true;
    this.replay = { phase: 'idle' };
    this.outbox.close();
  }
}
