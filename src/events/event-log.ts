import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { RedisScript } from '../common/redis-script.js';
import type { EventInput, EventName, FeedEvent } from './types.js';

/**
 * How long a published event's token is kept: ioredis sends a command again after a reconnect when its reply was
 * lost (autoResendUnfulfilledCommands), as happens when the master dies between running an XADD and answering it.
 * A resent publish within this time finds its token and adds nothing.
 */
const PUBLISHED_TOKEN_TTL_MS = 5 * 60 * 1000;

// One script, so each event and its token are written (and replicated) together, or neither. KEYS: the stream, then
// one token per event; ARGV: maxLen, then a token TTL and a body per event. An event whose token exists is not added
// again (its token's TTL is set anew). Returns each event's id (for one not added: the id it was added under).
const PUBLISH_ONCE = new RedisScript('ckptEventPublishOnce', `
local ids = {}
for i = 2, #KEYS do
  local ttl, body = ARGV[2 * i - 2], ARGV[2 * i - 1]
  local id = redis.call('GET', KEYS[i])
  if id then
    redis.call('PEXPIRE', KEYS[i], ttl)
  else
    id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'e', body)
    redis.call('SET', KEYS[i], id, 'PX', ttl)
  end
  ids[#ids + 1] = id
end
return ids
`);

/**
 * An event that more than one process may publish (the enqueuer and the worker, whichever comes first): the first
 * publish under `key` adds it, any other within `ttlMs` adds nothing.
 */
export interface PublishOnce {
  key: string;
  ttlMs: number;
}

export interface EventLogOptions {
  /** Redis key of the stream (required: no default here; ckpt's processes pass `<redis.prefix>:events`). */
  key: string;
  /** Approximate number of events kept (XADD MAXLEN ~). Default 100,000. */
  maxLen?: number;
}

/**
 * The ordered, bounded history of everything that happened, in one Redis stream, shared by every process:
 * workers and schedulers append, feed servers read. Stream ids order events across processes.
 */
export class EventLog {
  private readonly maxLen: number;

  constructor(
    private readonly redis: Redis,
    private readonly options: EventLogOptions,
  ) {
    this.maxLen = options.maxLen ?? 100_000;
    PUBLISH_ONCE.defineOn(redis);
  }

  get key(): string {
    return this.options.key;
  }

  /**
   * Appends one event (its data must be its name's EventData), exactly once even when the command is sent again after
   * a failover (see PUBLISHED_TOKEN_TTL_MS).
   */
  async publish<E extends EventName>(input: EventInput<E>): Promise<FeedEvent> {
    return (await this.publishAll([input as EventInput]))[0]!;
  }

  /**
   * Appends several events in this order, in one round trip, each exactly once like publish(). `once[i]`, when given,
   * makes event i one that several processes may publish (PublishOnce): then the returned id is that of the event as
   * first published, whose data may differ from `inputs[i]`'s.
   */
  async publishAll(inputs: EventInput[], once: readonly (PublishOnce | undefined)[] = []): Promise<FeedEvent[]> {
    if (!inputs.length) return [];
    const ts = Date.now();
    const tokens = inputs.map((_, i) => `${this.options.key}:published:${once[i]?.key ?? randomUUID()}`);
    const args = inputs.flatMap((input, i) => [once[i]?.ttlMs ?? PUBLISHED_TOKEN_TTL_MS, JSON.stringify({ ...input, ts })]);
    const ids = (await PUBLISH_ONCE.run(this.redis, [this.options.key, ...tokens], [this.maxLen, ...args])) as string[];
    return inputs.map((input, i) => ({ ...input, ts, id: ids[i]! }) as FeedEvent);
  }

  /** Forgets that the event published under `key` (PublishOnce) was published: the next publish under it adds it. */
  async forgetOnce(key: string): Promise<void> {
    await this.redis.del(`${this.options.key}:published:${key}`);
  }

  /** Events strictly after `afterId` ('0' for all), oldest first, at most `count`. */
  async readAfter(afterId: string, count = 1000): Promise<FeedEvent[]> {
    const rows = await this.redis.xrange(this.options.key, `(${afterId}`, '+', 'COUNT', count);
    return rows.map(([id, fields]) => decode(id, fields));
  }

  /** The newest `count` events, oldest first (a page's history on load). */
  async readLast(count: number): Promise<FeedEvent[]> {
    const rows = await this.redis.xrevrange(this.options.key, '+', '-', 'COUNT', count);
    return rows.reverse().map(([id, fields]) => decode(id, fields));
  }

  /** The id of the oldest event still kept, or null when the stream is empty. */
  async oldestId(): Promise<string | null> {
    const rows = await this.redis.xrange(this.options.key, '-', '+', 'COUNT', 1);
    return rows[0]?.[0] ?? null;
  }

  /** The id of the newest event, or '0-0' when there is none. */
  async lastId(): Promise<string> {
    const rows = await this.redis.xrevrange(this.options.key, '+', '-', 'COUNT', 1);
    return rows[0]?.[0] ?? '0-0';
  }

  /**
   * Blocks (on `blockingRedis`, a connection of its own) until events after `afterId` arrive, or `blockMs` passes.
   * Returns them oldest first, possibly none.
   */
  async waitAfter(blockingRedis: Redis, afterId: string, blockMs: number, count = 1000): Promise<FeedEvent[]> {
    const res = (await blockingRedis.xread('COUNT', count, 'BLOCK', blockMs, 'STREAMS', this.options.key, afterId)) as
      | [string, [string, string[]][]][]
      | null;
    if (!res) return [];
    return res[0]![1].map(([id, fields]) => decode(id, fields));
  }
}

function decode(id: string, fields: string[]): FeedEvent {
  const body = JSON.parse(fields[1] ?? '{}') as Omit<FeedEvent, 'id'>;
  return { ...body, id };
}
