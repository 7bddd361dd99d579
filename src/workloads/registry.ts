import type { Redis } from 'ioredis';
import { RedisScript } from '../common/redis-script.js';
import { z } from 'zod';
import { workloadNameSchema } from '../targets/spec.js';

/** Where a workload's process came from: `ckpt run`, or a restore of one of the workload's checkpoints. */
export const workloadOriginSchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('run') }),
  z.strictObject({
    kind: z.literal('restore'),
    checkpointId: z.string(),
    jobId: z.string(),
    /** The workload the checkpoint was taken of (differs from the name for a copy). */
    of: workloadNameSchema,
  }),
]);

/** How a workload's process ended, as its node's worker saw it (see WorkloadWatcher). */
export const workloadEndSchema = z.strictObject({
  at: z.iso.datetime(),
  /** Exit code, when the process exited by itself (or by a signal it handled: 128 + signal, like a shell). */
  code: z.number().int().optional(),
  /** Set when the code says a signal ended it (code > 128), or when it was killed outright (no code recorded). */
  signal: z.string().optional(),
});

/** A workload as kept in Redis. Everything a root process later trusts from it is validated when read. */
export const workloadRecordSchema = z.strictObject({
  name: workloadNameSchema,
  node: z.string().min(1),
  command: z.array(z.string()).min(1),
  cwd: z.string(),
  /** Names of the environment variables given at start (their values are not kept: they may be secrets). */
  envNames: z.array(z.string()),
  /** <workloads.root>/<name>: stdout.log, stderr.log, status. */
  dir: z.string(),
  /** The workload's process (the init of its pid namespace) as the host sees it. */
  hostPid: z.number().int().positive(),
  /** /proc start time (clock ticks) of hostPid, which tells it from a later process given the same pid. */
  startTime: z.number().int().nonnegative(),
  startedAt: z.iso.datetime(),
  origin: workloadOriginSchema,
  ended: workloadEndSchema.optional(),
});

export type WorkloadRecord = z.infer<typeof workloadRecordSchema>;
export type WorkloadEnd = z.infer<typeof workloadEndSchema>;

/** Raised for a name that is taken (EWORKLOAD_EXISTS) or unknown (EWORKLOAD_UNKNOWN). */
export class WorkloadError extends Error {
  constructor(
    readonly code: 'EWORKLOAD_EXISTS' | 'EWORKLOAD_UNKNOWN' | 'EWORKLOAD_NODE' | 'EWORKLOAD_START',
    message: string,
  ) {
    super(message);
    this.name = 'WorkloadError';
  }
}

// Replaces a record only while it is still the text the caller read. KEYS: the record; ARGV: that text, the new one.
const REPLACE_IF_UNCHANGED = new RedisScript(
  'ckptWorkloadReplaceIfUnchanged',
  `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
return 1
`,
);

/**
 * The workloads of every node, in Redis: one JSON record per name (`<prefix>:workloads:<name>`) and the set of names.
 * A name is unique across nodes; copies restored from one checkpoint get `<name>-<n>` from a per-name counter.
 */
export class WorkloadRegistry {
  private readonly setKey: string;

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {
    this.setKey = `${prefix}:workloads`;
    REPLACE_IF_UNCHANGED.defineOn(redis);
  }

  /**
   * Reserves a name: fails when it is taken. Used before the process starts, so two requests for one name cannot
   * both start one; put() then stores the real record.
   */
  async reserve(name: string): Promise<boolean> {
    return (await this.redis.set(this.key(name), '{}', 'NX')) === 'OK';
  }

  /** Stores (replaces) a record. */
  async put(record: WorkloadRecord): Promise<void> {
    await this.redis
      .multi()
      .set(this.key(record.name), JSON.stringify(workloadRecordSchema.parse(record)))
      .sadd(this.setKey, record.name)
      .exec();
  }

  /**
   * Replaces `current` (a record as get() or list() gave it) by `next` of the same name, unless the record changed
   * since it was read (another node restored the workload meanwhile): then nothing is written and it returns false.
   */
  async replaceIfUnchanged(current: WorkloadRecord, next: WorkloadRecord): Promise<boolean> {
    const [expected, replacement] = [current, next].map((r) => JSON.stringify(workloadRecordSchema.parse(r)));
    return (await REPLACE_IF_UNCHANGED.run(this.redis, [this.key(current.name)], [expected!, replacement!])) === 1;
  }

  /** The record, or null for an unknown name (or one only reserved). A record that fails validation is an error. */
  async get(name: string): Promise<WorkloadRecord | null> {
    const text = await this.redis.get(this.key(workloadNameSchema.parse(name)));
    if (!text || text === '{}') return null;
    return workloadRecordSchema.parse(JSON.parse(text));
  }

  /** Every workload, by name. Records that fail validation are left out (and named in `invalid`). */
  async list(): Promise<{ items: WorkloadRecord[]; invalid: string[] }> {
    const names = (await this.redis.smembers(this.setKey)).sort();
    if (!names.length) return { items: [], invalid: [] };
    const texts = await this.redis.mget(names.map((n) => this.key(n)));
    const items: WorkloadRecord[] = [];
    const invalid: string[] = [];
    texts.forEach((text, i) => {
      if (!text || text === '{}') return;
      const parsed = workloadRecordSchema.safeParse(JSON.parse(text));
      if (parsed.success) items.push(parsed.data);
      else invalid.push(names[i]!);
    });
    return { items, invalid };
  }

  async remove(name: string): Promise<void> {
    await this.redis.multi().del(this.key(name)).srem(this.setKey, name).exec();
  }

  /**
   * Claims the right to bring `name`'s process back in place (a restore of its checkpoint while it is not running),
   * for `ttlMs` at most: of two restores at once, one gets the name and the other starts a copy.
   */
  async claimRestore(name: string, owner: string, ttlMs: number): Promise<boolean> {
    return (await this.redis.set(`${this.key(name)}:restoring`, owner, 'PX', ttlMs, 'NX')) === 'OK';
  }

  async releaseRestore(name: string, owner: string): Promise<void> {
    if ((await this.redis.get(`${this.key(name)}:restoring`)) === owner) await this.redis.del(`${this.key(name)}:restoring`);
  }

  /** Releases a name reserved for a start that failed. */
  async release(name: string): Promise<void> {
    const text = await this.redis.get(this.key(name));
    if (text === '{}') await this.redis.del(this.key(name));
  }

  /**
   * Reserves the next free copy name of `name`: `<name>-1`, `<name>-2`, ... (a counter per name, so concurrent
   * restores of one checkpoint never pick the same name; names taken by other workloads are passed over).
   */
  async reserveCopyName(name: string): Promise<string> {
    for (;;) {
      const n = await this.redis.incr(`${this.prefix}:workloads-copies:${name}`);
      const candidate = workloadNameSchema.safeParse(`${name.slice(0, 40)}-${n}`);
      if (!candidate.success) throw new WorkloadError('EWORKLOAD_EXISTS', `no copy name left for ${name}`);
      if (await this.reserve(candidate.data)) return candidate.data;
    }
  }

  private key(name: string): string {
    return `${this.prefix}:workloads:${name}`;
  }
}
