import { z } from 'zod';
import { issuesOf } from '../common/validation.js';
import { JOB_TYPES } from '../common/job-kinds.js';
import { EventId } from '../events/event-id.js';
import { CHANNELS, type Channel, type FeedEvent } from '../events/types.js';

/**
 * The live feed protocol, version 1. WebSocket at `/api/v1/feed`, JSON text messages both ways.
 *
 * Auth: a `read` token (or none on an open loopback bind) in `Authorization: Bearer <token>` or `?token=<token>`.
 * A refused upgrade gets a plain HTTP 401 or 403 before the handshake.
 *
 * Server -> client:
 *   {type: 'hello', version: 1, lastEventId}           on connect; lastEventId is the newest event id the server knows
 *   {type: 'subscribed', channels, filter, since?, batch}  acknowledges a subscribe (replay, if any, follows)
 *   {type: 'event', id, event, ts, jobId?, jobType?, scheduleId?, target?, data}
 *   {type: 'events', events: [<event message>, ...]}   only to a subscribe with batch: true: several events, in order
 *   {type: 'live', lastEventId}                         after a subscribe with `since`: replay done, live from here
 *   {type: 'reset', reason}                             `since` is older than the retained history (or unknown):
 *   {type: 'snapshot', data}                              drop local state, here is the current state, live follows
 *   {type: 'unsubscribed'}
 *   {type: 'pong'}
 *   {type: 'error', code, message, field?}              the connection stays open (except replay_failed: closed
 *                                                        with 1011, reconnect with the same since); a since that
 *                                                        Redis cannot hold is invalid_message (field since)
 *
 * Client -> server:
 *   {op: 'subscribe', channels: ('job'|'schedule'|'checkpoint')[], filter?: {jobId?, scheduleId?, target?, type?}, since?,
 *    batch?: boolean}  batch (default false): the client also reads `events` frames, which the server sends when
 *                      several events are ready at once (fewer frames for the same events: cheaper on both ends)
 *   {op: 'unsubscribe'}
 *   {op: 'ping'}
 *
 * Ordering: event ids are Redis stream ids ("<ms>-<seq>"); they order all events. A client keeps the id of the last
 * event it received and passes it as `since` when it reconnects: it gets exactly the events after it, in order, once,
 * then live ones, with no gap and no duplicate. A new subscribe replaces the previous one. After a reset, the events
 * that follow the snapshot may include a few already reflected in it (never a gap); every event that happens after
 * the subscribe is among them (unless more than the server holds per replay arrive meanwhile), and `live` carries the
 * id to resume from.
 *
 * Filters: every given field must equal the event's; `type` is the job type (dump, restore, restore-batch).
 *
 * Slow clients: while a client's unsent data is above a threshold, job.progress events are coalesced (only the latest
 * per job is kept, in order with everything else); past feed.maxBufferedBytes the client is closed with 1008 'too slow'.
 * Heartbeat: a WebSocket ping every feed.heartbeatMs; no pong by the next one and the connection is terminated.
 * Messages larger than feed.maxPayloadBytes close the connection with 1009.
 */
export const PROTOCOL_VERSION = 1;
export const FEED_PATH = '/api/v1/feed';

/** Close codes the server uses. */
export const CLOSE = {
  goingAway: 1001,
  tooSlow: 1008,
  internalError: 1011,
} as const;

const MAX_U64 = 2n ** 64n - 1n;
/** A Redis stream id both of whose parts fit in 64 bits, and not the very last id (nothing can come after it). */
const eventId = z
  .string()
  .regex(/^\d+(-\d+)?$/, 'must be an event id like 1700000000000-0')
  .refine((id) => {
    // zod runs this after a failed regex too: only digits reach BigInt.
    const [ms, seq] = /^(\d+)(?:-(\d+))?$/.exec(id)?.slice(1).map((part) => BigInt(part ?? 0)) ?? [0n, 0n];
    return ms! <= MAX_U64 && seq! <= MAX_U64 && !(ms === MAX_U64 && seq === MAX_U64);
  }, 'not an event id Redis can hold (each part at most 18446744073709551615)');

export const filterSchema = z.strictObject({
  jobId: z.string().min(1).optional(),
  scheduleId: z.string().min(1).optional(),
  target: z.string().min(1).optional(),
  type: z.enum(JOB_TYPES).optional(),
});
export type FeedFilter = z.infer<typeof filterSchema>;

export const clientMessageSchema = z.discriminatedUnion('op', [
  z.strictObject({
    op: z.literal('subscribe'),
    channels: z.array(z.enum(CHANNELS)).min(1, 'pick at least one channel'),
    filter: filterSchema.default({}),
    since: eventId.optional(),
    batch: z.boolean().default(false),
  }),
  z.strictObject({ op: z.literal('unsubscribe') }),
  z.strictObject({ op: z.literal('ping') }),
]);
export type ClientMessage = z.infer<typeof clientMessageSchema>;
export type SubscribeMessage = Extract<ClientMessage, { op: 'subscribe' }>;

const OPS: ReadonlySet<string> = new Set(clientMessageSchema.options.map((o) => o.shape.op.value));

export type ErrorCode = 'invalid_json' | 'invalid_message' | 'unknown_op' | 'snapshot_failed' | 'replay_failed';

export interface ErrorMessage {
  type: 'error';
  code: ErrorCode;
  message: string;
  field?: string;
}

export type ServerMessage =
  | { type: 'hello'; version: typeof PROTOCOL_VERSION; lastEventId: string }
  | { type: 'subscribed'; channels: Channel[]; filter: FeedFilter; since?: string; batch: boolean }
  | { type: 'live'; lastEventId: string }
  | { type: 'reset'; reason: string }
  | { type: 'snapshot'; data: unknown }
  | { type: 'unsubscribed' }
  | { type: 'pong' }
  | ErrorMessage;

/** Decodes one client message, or says precisely what is wrong with it. */
export function parseClientMessage(text: string): ClientMessage | ErrorMessage {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    return { type: 'error', code: 'invalid_json', message: `not JSON: ${(err as Error).message}` };
  }
  const op = (raw as { op?: unknown } | null)?.op;
  if (typeof op === 'string' && !OPS.has(op)) {
    return { type: 'error', code: 'unknown_op', message: `unknown op '${op}'; expected one of ${[...OPS].join(', ')}`, field: 'op' };
  }
  const parsed = clientMessageSchema.safeParse(raw);
  if (parsed.success) return parsed.data;
  const [issue] = issuesOf(parsed.error);
  return { type: 'error', code: 'invalid_message', message: issue!.field ? `${issue!.field}: ${issue!.reason}` : issue!.reason, field: issue!.field };
}

/** What a subscriber asked for. */
export interface Subscription {
  channels: ReadonlySet<Channel>;
  filter: FeedFilter;
}

export function matches(sub: Subscription, { channel, event: e }: EncodedEvent): boolean {
  if (!sub.channels.has(channel)) return false;
  const f = sub.filter;
  return (
    (f.jobId === undefined || f.jobId === e.jobId) &&
    (f.scheduleId === undefined || f.scheduleId === e.scheduleId) &&
    (f.target === undefined || f.target === e.target) &&
    (f.type === undefined || f.type === e.jobType)
  );
}

/** An event together with its wire form, serialized once and shared by every client that gets it. */
export interface EncodedEvent {
  event: FeedEvent;
  id: EventId;
  /** Worked out once here, not once per client in `matches`. */
  channel: Channel;
  frame: Buffer;
}

export function encodeEvent(e: FeedEvent): EncodedEvent {
  const message = {
    type: 'event',
    id: e.id,
    event: e.event,
    ts: e.ts,
    jobId: e.jobId,
    jobType: e.jobType,
    scheduleId: e.scheduleId,
    target: e.target,
    data: e.data,
  };
  const channel = e.event.slice(0, e.event.indexOf('.')) as Channel;
  return { event: e, id: EventId.parse(e.id), channel, frame: Buffer.from(JSON.stringify(message)) };
}

export function encodeMessage(m: ServerMessage): Buffer {
  return Buffer.from(JSON.stringify(m));
}

/** An `events` frame is cut here, so one frame stays far below any client's payload limit and the socket's buffer. */
export const MAX_BATCH_FRAME_BYTES = 64 * 1024;

const BATCH_HEAD = Buffer.from('{"type":"events","events":[');
const BATCH_SEPARATOR = Buffer.from(',');
const BATCH_TAIL = Buffer.from(']}');

/**
 * The frames that carry these event frames, in order, to a client that reads `events`: consecutive events share an
 * `events` frame up to MAX_BATCH_FRAME_BYTES; an event alone stays a plain `event` frame. Built by concatenating the
 * already serialized events, never by serializing again.
 */
export function batchFrames(eventFrames: readonly Buffer[]): Buffer[] {
  const frames: Buffer[] = [];
  let start = 0;
  while (start < eventFrames.length) {
    let end = start + 1;
    let bytes = BATCH_HEAD.length + eventFrames[start]!.length + BATCH_TAIL.length;
    while (end < eventFrames.length && bytes + 1 + eventFrames[end]!.length <= MAX_BATCH_FRAME_BYTES) bytes += 1 + eventFrames[end++]!.length;
    if (end - start === 1) frames.push(eventFrames[start]!);
    else {
      const parts: Buffer[] = [BATCH_HEAD];
      for (let i = start; i < end; i++) {
        if (i > start) parts.push(BATCH_SEPARATOR);
        parts.push(eventFrames[i]!);
      }
      parts.push(BATCH_TAIL);
      frames.push(Buffer.concat(parts, bytes));
    }
    start = end;
  }
  return frames;
}

/** One read of the tailer, encoded once for every client: the events, and their batched frames built on first use. */
export interface EncodedBatch {
  events: readonly EncodedEvent[];
  /** batchFrames of all the events, computed once and shared by every batching client that gets all of them. */
  frames(): readonly Buffer[];
}

export function encodeBatch(events: readonly FeedEvent[]): EncodedBatch {
  const encoded = events.map(encodeEvent);
  let frames: Buffer[] | undefined;
  return { events: encoded, frames: () => (frames ??= batchFrames(encoded.map((e) => e.frame))) };
}
