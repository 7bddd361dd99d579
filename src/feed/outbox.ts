import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import { batchFrames, type EncodedEvent } from './protocol.js';

export interface OutboxLimits {
  /** Above this much unsent data, progress is coalesced and other messages wait in order in the queue. */
  coalesceAboveBytes: number;
  /** Unsent data (socket + queue) past which the client is closed with 1008 'too slow'. */
  maxBufferedBytes: number;
}

/** What waits for the socket: a frame, and whether it is one event (which a batching flush may join with others). */
interface Queued {
  frame: Buffer;
  event: boolean;
}

/**
 * Everything one feed client is sent, in the order it was accepted. Frames go straight to the socket while the client
 * keeps up; once its unsent data passes `coalesceAboveBytes` they wait in an ordered queue where a newer job.progress of
 * the same job replaces the older one; past `maxBufferedBytes` the client is too slow and `onTooSlow` closes it. For a
 * batching client several events leave in one `events` frame. Whatever leaves at once (a tailer read, a refill from the
 * queue) is written with the socket corked: one write system call per client instead of one per frame, which at 1,000
 * clients is most of the server's CPU (bench/feed).
 */
export class Outbox {
  /** The client reads `events` frames (it asked for them at subscribe). Default false. */
  batching = false;
  /** Most unsent bytes (socket + queue) ever seen, for tests and stats. */
  peakBufferedBytes = 0;

  /** Ordered; progress keyed by job so a newer one replaces an older one, everything else under a unique key. */
  private readonly queue = new Map<string, Queued>();
  private queuedBytes = 0;
  private queueSeq = 0;
  private drainWaiters: (() => void)[] = [];
  private closed = false;
  /** Bytes handed to ws since the socket was corked; null while it is not. */
  private corkedBytes: number | null = null;
  /** Well under the coalescing threshold, so what waits corked never makes a client look behind. */
  private readonly corkedBytesMax: number;

  constructor(
    private readonly ws: WebSocket,
    /** The connection under `ws` (the one its upgrade came on): corked while several frames are handed to ws. */
    private readonly socket: Pick<Duplex, 'cork' | 'uncork'>,
    private readonly limits: OutboxLimits,
    private readonly onTooSlow: () => void,
  ) {
    this.corkedBytesMax = Math.max(1, Math.min(64 * 1024, Math.floor(limits.coalesceAboveBytes / 4)));
  }

  /** A message that is never coalesced nor batched (hello, subscribed, live, errors...). */
  sendMessage(frame: Buffer): void {
    this.send(frame, null, false);
  }

  /**
   * Events, oldest first. `sharedFrames`, when given, are these very events already batched for every client that
   * gets all of them (built once per tailer read instead of once per client).
   */
  sendEvents(events: readonly EncodedEvent[], sharedFrames?: () => readonly Buffer[]): void {
    if (events.length === 0) return;
    this.corked(() => {
      if (this.batching && events.length > 1 && this.keepsUp()) {
        // A batch frame that finds the client behind (after an earlier one) waits whole in the queue.
        for (const frame of sharedFrames ? sharedFrames() : batchFrames(events.map((e) => e.frame))) this.send(frame, null, false);
        return;
      }
      for (const e of events) this.send(e.frame, coalesceKey(e), true);
    });
  }

  /** Resolves once the client has taken what was queued (or the outbox is closed): replay reads on only then. */
  drained(): Promise<void> {
    if (this.closed || this.keepsUp()) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  /** Whether the client takes frames as fast as they come: nothing queued and unsent data under the threshold. */
  keepsUp(): boolean {
    return this.queue.size === 0 && !this.overThreshold();
  }

  /** Writes what the socket has room for; also called by the heartbeat, in case a write callback never came. */
  pump(): void {
    if (this.closed) return;
    this.corked(() => {
      const events: Buffer[] = [];
      for (const [key, item] of this.queue) {
        if (this.overThreshold()) break;
        this.queue.delete(key);
        this.queuedBytes -= item.frame.length;
        if (this.batching && item.event) {
          events.push(item.frame);
          continue;
        }
        this.writeBatched(events);
        this.write(item.frame);
      }
      this.writeBatched(events);
    });
    if (this.keepsUp()) this.wakeDrainWaiters();
  }

  /** Drops what is queued and wakes whoever waits: the connection is gone. */
  close(): void {
    this.closed = true;
    this.queue.clear();
    this.queuedBytes = 0;
    this.wakeDrainWaiters();
  }

  /** Writes now when the client keeps up; otherwise queues in order (coalescing progress by job) or closes if too slow. */
  private send(frame: Buffer, key: string | null, event: boolean): void {
    if (this.closed) return;
    if (this.keepsUp()) return this.write(frame);
    const queueKey = key ?? `#${this.queueSeq++}`;
    const previous = this.queue.get(queueKey);
    if (previous) {
      // Delete then set: the newer progress takes the newer position, so the order of ids stays increasing.
      this.queue.delete(queueKey);
      this.queuedBytes -= previous.frame.length;
    }
    this.queue.set(queueKey, { frame, event });
    this.queuedBytes += frame.length;
    this.notePeak();
    if (this.ws.bufferedAmount + this.queuedBytes > this.limits.maxBufferedBytes) this.onTooSlow();
  }

  /**
   * Runs `writes` with the socket corked, so what they hand to ws leaves in one write when they are done, or every
   * `corkedBytesMax` (let out to the kernel, so that `bufferedAmount` shows again how far behind the client really is).
   */
  private corked(writes: () => void): void {
    this.socket.cork();
    this.corkedBytes = 0;
    try {
      writes();
    } finally {
      this.corkedBytes = null;
      this.socket.uncork();
    }
  }

  private writeBatched(events: Buffer[]): void {
    for (const frame of batchFrames(events)) this.write(frame);
    events.length = 0;
  }

  /**
   * Hands a frame to ws. Only a write that leaves the client behind asks to be told when the kernel took it (the moment
   * to refill from the queue): a callback per frame to 1,000 clients is measurable, and a client that keeps up needs none.
   */
  private write(frame: Buffer): void {
    const behind = this.queue.size > 0 || this.ws.bufferedAmount + frame.length > this.limits.coalesceAboveBytes;
    this.ws.send(frame, { binary: false }, behind ? this.afterWrite : undefined);
    this.notePeak();
    if (this.corkedBytes !== null && (this.corkedBytes += frame.length) >= this.corkedBytesMax) {
      this.socket.uncork();
      this.socket.cork();
      this.corkedBytes = 0;
    }
  }

  private readonly afterWrite = (): void => this.pump();

  private overThreshold(): boolean {
    return this.ws.bufferedAmount > this.limits.coalesceAboveBytes;
  }

  private notePeak(): void {
    const unsent = this.ws.bufferedAmount + this.queuedBytes;
    if (unsent > this.peakBufferedBytes) this.peakBufferedBytes = unsent;
  }

  private wakeDrainWaiters(): void {
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of waiters) w();
  }
}

/** job.progress of one job may be replaced by a newer one while the client is behind; nothing else is dropped. */
function coalesceKey(e: EncodedEvent): string | null {
  return e.event.event === 'job.progress' && e.event.jobId ? `progress:${e.event.jobId}` : null;
}
