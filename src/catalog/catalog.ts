import type { Redis } from 'ioredis';
import { RedisScript } from '../common/redis-script.js';
import { parseOrThrow } from '../common/validation.js';
import type { RemoteStore } from '../storage/remote-store.js';
import type { CheckpointStore } from './checkpoint-store.js';
import { CatalogError } from './errors.js';
import { isCheckpointId } from '../common/checkpoint-id.js';
import { isSafeTargetKey } from '../targets/key.js';
import { manifestSchema, type Manifest } from './manifest.js';

export interface CatalogOptions {
  /** Redis key prefix (config `redis.prefix`); the catalog's keys are `<prefix>:catalog:*`. */
  prefix: string;
  /** This node's checkpoint folders: delete() removes files through it. */
  store: CheckpointStore;
  /**
   * This node's name (config `node`). Files live on the node that made the checkpoint: delete() removes them at once
   * when that is this node, else tells that node (dropChannel), whose worker removes them (finishPendingDeletes).
   */
  node: string;
  /**
   * config.storage.shared: the storage root is the same filesystem on every node, so any node removes any
   * checkpoint's files at once and a rebuild lists every node's checkpoints. Default false.
   */
  sharedStorage?: boolean;
  /**
   * Optional: whether the job holding a ref is still waiting / active / delayed. When given, refs of finished or
   * vanished jobs (a worker that died before releaseRef) are dropped before in-use checks. Default: every ref counts.
   */
  isRefLive?: (jobId: string) => Promise<boolean>;
  /**
   * The bucket (config `storage.remote`), when there is one: delete() removes a checkpoint's objects too, and rebuild()
   * lists the checkpoints the bucket holds. Default: none.
   */
  remote?: RemoteStore;
}

/**
 * Where a checkpoint's files are: on its node's disk only, being uploaded (still on the disk), in the bucket only
 * (the local copy was dropped), or both.
 */
export type CheckpointLocation = 'local' | 'uploading' | 'remote' | 'local+remote';

/** A catalogued checkpoint: its manifest plus catalog state. */
export type Checkpoint = Manifest & {
  /** Pinned checkpoints are kept by retention and refused by delete() without force. */
  pinned: boolean;
  location: CheckpointLocation;
  /** The latest restore drill of it (workers/drill-processor.ts), if any. */
  verified?: Verification;
};

/** The outcome of a restore drill: when it ended (ISO 8601), whether the tree came up whole, and why not. */
export interface Verification {
  at: string;
  ok: boolean;
  reason?: string;
}

export interface CheckpointFilter {
  /** e.g. `python3-4242`. */
  targetKey?: string;
  scheduleId?: string;
  node?: string;
}

export interface ListOptions extends CheckpointFilter {
  /** Default 100; Infinity for all. */
  limit?: number;
  /** Default 0. */
  offset?: number;
}

export interface DeleteResult {
  id: string;
  /** False when the files are on another node: that node is told (dropChannel) and its worker removes them. */
  filesRemoved: boolean;
}

export interface PendingDeletesResult {
  removed: string[];
  failed: { id: string; error: Error }[];
}

const DEFAULT_LIMIT = 100;

export interface RebuildResult {
  /** Checkpoints listed again. */
  added: string[];
  /** Checkpoints that were listed already. */
  present: string[];
  /** Folders that do not count, with the reason (no complete manifest, damaged files, another node's, being deleted). */
  skipped: { dir: string; reason: string }[];
}

// Every script treats a checkpoint hash with a `deleting` field as gone: it is unlisted and its files are going.
// ARGV[4] 'if-missing' (rebuild): a checkpoint the catalog has already is left as it is. ARGV[5]: its location.
// Returns {'OK', pinned, verified} once listed, else the reason as a string.
const ADD = new RedisScript('ckptCatalogAdd', `
if redis.call('HEXISTS', KEYS[1], 'deleting') == 1 then return 'EDELETING' end
if ARGV[4] == 'if-missing' and redis.call('EXISTS', KEYS[1]) == 1 then return 'PRESENT' end
redis.call('HSET', KEYS[1], 'manifest', ARGV[3], 'location', ARGV[5])
redis.call('HSETNX', KEYS[1], 'pinned', '0')
for i = 2, #KEYS do redis.call('ZADD', KEYS[i], ARGV[2], ARGV[1]) end
return {'OK', redis.call('HGET', KEYS[1], 'pinned'), redis.call('HGET', KEYS[1], 'verified')}`);

// A field of a listed checkpoint (pinned, verified); ARGV: field, value.
const SET_FIELD = new RedisScript('ckptCatalogSetField', `
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('HEXISTS', KEYS[1], 'deleting') == 1 then return 'ECHECKPOINT_NOT_FOUND' end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 'OK'`);

const ACQUIRE_REF = new RedisScript('ckptCatalogAcquireRef', `
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('HEXISTS', KEYS[1], 'deleting') == 1 then return 'ECHECKPOINT_NOT_FOUND' end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
return 'OK'`);

// KEYS: hash, refs, pending-deletes of the checkpoint's node, then every index holding it. ARGV: id, force, now.
const UNLIST = new RedisScript('ckptCatalogUnlist', `
if redis.call('EXISTS', KEYS[1]) == 0 then return {'ECHECKPOINT_NOT_FOUND'} end
if redis.call('HEXISTS', KEYS[1], 'deleting') == 1 then return {'OK'} end
if redis.call('HGET', KEYS[1], 'pinned') == '1' and ARGV[2] ~= '1' then return {'EPINNED'} end
local refs = redis.call('ZRANGE', KEYS[2], 0, -1)
if #refs > 0 then return {'EINUSE', unpack(refs)} end
for i = 4, #KEYS do redis.call('ZREM', KEYS[i], ARGV[1]) end
redis.call('HSET', KEYS[1], 'deleting', ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
return {'OK'}`);

/**
 * The shared list of checkpoints (all nodes), in Redis. Layout under `<prefix>:catalog:`:
 * `cp:<id>` hash {manifest (JSON), pinned '0'|'1', verified (JSON), deleting (ms, while its files are being removed)};
 * `cp:<id>:refs` sorted set of restore job ids using it (score: when acquired);
 * sorted sets by created time (ms): `all`, `target:<key>`, `schedule:<id>`, `node:<node>`;
 * `deleting:<node>` sorted set of unlisted checkpoints whose files that node still has to remove.
 *
 * Deleting: first unlist atomically (refusing pinned / in-use ones), then remove files, then forget the hash.
 * A failure or crash after the first step leaves an unlisted entry in `deleting:<node>`, never a listed checkpoint
 * pointing nowhere; finishPendingDeletes() completes it.
 */
export class Catalog {
  private readonly prefix: string;

  constructor(
    private readonly redis: Redis,
    private readonly options: CatalogOptions,
  ) {
    this.prefix = `${options.prefix}:catalog`;
    for (const script of [ADD, SET_FIELD, ACQUIRE_REF, UNLIST]) script.defineOn(redis);
  }

  /** Adds (or, same id again, replaces the manifest of) a checkpoint. Keeps its pin. A bad manifest: ValidationError. */
  async add(manifest: Manifest): Promise<Checkpoint> {
    const m = parseOrThrow(manifestSchema, manifest, 'checkpoint manifest');
    const keys = [this.hashKey(m.id), ...this.indexKeys(m)];
    const stored = JSON.stringify(m);
    const res = await ADD.run(this.redis, keys, [m.id, Date.parse(m.created), stored, '', 'local']);
    if (!Array.isArray(res)) throw new CatalogError('ECHECKPOINT_NOT_FOUND', `checkpoint ${m.id} is being deleted`, m.id);
    // The entry as stored, from the script's reply: reading it back would be another round trip on a dump's way to completed.
    const [, pinned, verified] = res as [string, string | null, string | null];
    return checkpointOf(stored, pinned, verified, 'local');
  }

  /** The checkpoint, or CatalogError ECHECKPOINT_NOT_FOUND (also for malformed ids). */
  async get(id: string): Promise<Checkpoint> {
    const found = isCheckpointId(id) ? await this.read(id) : null;
    if (!found || found.deleting) throw notFound(id);
    return found.checkpoint;
  }

  /** Checkpoints matching every given filter, newest first. */
  async list(options: ListOptions = {}): Promise<Checkpoint[]> {
    const limit = options.limit ?? DEFAULT_LIMIT;
    const offset = options.offset ?? 0;
    if (limit <= 0) return [];
    const ids = await this.listIds(options, offset, limit);
    const found = await Promise.all(ids.map((id) => this.read(id)));
    // An entry deleted between the index read and the hash read is simply left out.
    return found.flatMap((f) => (f && !f.deleting ? [f.checkpoint] : []));
  }

  /** The newest checkpoint of a target, or null when it has none. */
  async latest(targetKey: string): Promise<Checkpoint | null> {
    return (await this.list({ targetKey, limit: 1 }))[0] ?? null;
  }

  /**
   * Unlists the checkpoint and removes its files (at once when they are on this node). Refuses with EPINNED a pinned
   * checkpoint unless `force`, and always with EINUSE one that a restore holds a ref on. ECHECKPOINT_NOT_FOUND for unknown ids;
   * EUNSAFE_PATH (nothing changed) when its folder on this node leads out of the storage root.
   * If file removal fails the error is thrown, and the checkpoint stays unlisted and pending (finishPendingDeletes).
   */
  async delete(id: string, options: { force?: boolean } = {}): Promise<DeleteResult> {
    const found = isCheckpointId(id) ? await this.read(id) : null;
    if (!found) throw notFound(id);
    const m = found.checkpoint;
    // A folder that leads out of the storage root is refused before the checkpoint is unlisted: it stays as it was.
    if (m.node === this.options.node) await this.options.store.assertContained(m.target.key, m.id);
    await this.pruneRefs(id);
    const keys = [this.hashKey(id), this.refsKey(id), this.pendingKey(m.node), ...this.indexKeys(m)];
    const [verdict, ...refs] = (await UNLIST.run(this.redis, keys, [id, options.force ? '1' : '0', Date.now()])) as string[];
    if (verdict === 'ECHECKPOINT_NOT_FOUND') throw notFound(id);
    if (verdict === 'EPINNED') {
      throw new CatalogError('EPINNED', `checkpoint ${id} is pinned: unpin it first, or delete with force`, id);
    }
    if (verdict === 'EINUSE') {
      throw new CatalogError('EINUSE', `checkpoint ${id} is in use by restore job(s) ${refs.join(', ')}`, id);
    }
    const removesHere = this.holdsFilesOf(m);
    await this.tellNodesToDrop(m, removesHere);
    if (!removesHere) return { id, filesRemoved: false };
    await this.removeFiles(m);
    return { id, filesRemoved: true };
  }

  /**
   * Records that this node holds a copy of a checkpoint made on another node (downloaded from the bucket for a
   * restore): when the checkpoint is deleted, from whichever node, this node is told to drop it (dropChannel).
   */
  async noteCopy(id: string): Promise<void> {
    await this.redis.sadd(this.copiesKey(id), this.options.node);
  }

  /**
   * Pub/sub channel: the name of a node that has files of deleted checkpoints to remove, its own (finishPendingDeletes)
   * or downloaded copies (dropDeletedCopies). Its worker listens and runs both; at its start too, for what it missed.
   */
  get dropChannel(): string {
    return `${this.prefix}:drops`;
  }

  /** Removes this node's copies of checkpoints made elsewhere that have been deleted since. Returns their ids. */
  async dropDeletedCopies(): Promise<string[]> {
    const key = this.copyDropsKey(this.options.node);
    const dropped: string[] = [];
    for (const entry of await this.redis.smembers(key)) {
      const [targetKey, id] = entry.split('/');
      // Only a folder name of ckpt's own shape is looked for under the root.
      if (isSafeTargetKey(targetKey) && id !== undefined && isCheckpointId(id)) {
        await this.options.store.remove({ id, target: { key: targetKey } });
        dropped.push(id);
      }
      await this.redis.srem(key, entry);
    }
    return dropped;
  }

  /**
   * Removes the files of this node's unlisted-but-not-yet-removed checkpoints (deleted from another node, or a
   * delete that failed or crashed half-way). Call at worker start and on each message on dropChannel naming this node.
   */
  async finishPendingDeletes(): Promise<PendingDeletesResult> {
    const result: PendingDeletesResult = { removed: [], failed: [] };
    const pendingKey = this.pendingKey(this.options.node);
    for (const id of await this.redis.zrange(pendingKey, 0, -1)) {
      const found = await this.read(id);
      if (!found) {
        await this.redis.zrem(pendingKey, id);
        continue;
      }
      try {
        await this.removeFiles(found.checkpoint);
        result.removed.push(id);
      } catch (error) {
        result.failed.push({ id, error: error as Error });
      }
    }
    return result;
  }

  /**
   * Lists again every checkpoint of this node whose folder holds a complete manifest and intact files (after Redis
   * lost its data): the manifest from the folder, unpinned (pins live only in Redis). Checkpoints listed already,
   * or being deleted, are left alone; attempt folders never count.
   */
  async rebuild(): Promise<RebuildResult> {
    const { store, node, remote } = this.options;
    const { manifests, skipped } = await store.listCommitted();
    const result: RebuildResult = { added: [], present: [], skipped };
    const bucket = remote ? await remote.list() : { manifests: [], skipped: [] };
    const inBucket = new Set(bucket.manifests.map((m) => m.id));
    const local = new Set<string>();
    const relist = async (m: Manifest, where: string, location: CheckpointLocation) => {
      const keys = [this.hashKey(m.id), ...this.indexKeys(m)];
      const res = await ADD.run(this.redis, keys, [m.id, Date.parse(m.created), JSON.stringify(m), 'if-missing', location]);
      if (Array.isArray(res)) result.added.push(m.id);
      else if (res === 'PRESENT') result.present.push(m.id);
      else skipped.push({ dir: where, reason: 'being deleted' });
    };
    for (const m of manifests) {
      if (m.node !== node && !this.options.sharedStorage) {
        skipped.push({ dir: store.pathOf(m), reason: `made on node ${m.node}, not ${node}` });
        continue;
      }
      local.add(m.id);
      await relist(m, store.pathOf(m), inBucket.has(m.id) ? 'local+remote' : 'local');
    }
    for (const m of bucket.manifests) {
      if (!local.has(m.id)) await relist(m, `bucket ${remote!.where}: ${m.target.key}/${m.id}`, 'remote');
    }
    for (const s of bucket.skipped) skipped.push({ dir: `bucket ${remote!.where}: ${s.key}`, reason: s.reason });
    return result;
  }

  /** rebuild() when the catalog lists no checkpoint of this node (Redis lost its data, or is new); else null. */
  async rebuildIfEmpty(): Promise<RebuildResult | null> {
    if ((await this.redis.zcard(this.indexKey('node', this.options.node))) > 0) return null;
    return this.rebuild();
  }

  async pin(id: string): Promise<Checkpoint> {
    return this.setPinned(id, true);
  }

  async unpin(id: string): Promise<Checkpoint> {
    return this.setPinned(id, false);
  }

  /** Records where the checkpoint's files are now (the upload stage). ECHECKPOINT_NOT_FOUND when it is unknown or being deleted. */
  async setLocation(id: string, location: CheckpointLocation): Promise<Checkpoint> {
    return this.setField(id, 'location', location);
  }

  /** Records the outcome of a restore drill. ECHECKPOINT_NOT_FOUND when it is unknown or being deleted. */
  async setVerified(id: string, verified: Verification): Promise<Checkpoint> {
    return this.setField(id, 'verified', JSON.stringify(verified));
  }

  /** Marks the checkpoint in use by a restore job (idempotent). ECHECKPOINT_NOT_FOUND when it is unknown or being deleted. */
  async acquireRef(id: string, jobId: string): Promise<void> {
    if (!isCheckpointId(id)) throw notFound(id);
    const res = await ACQUIRE_REF.run(this.redis, [this.hashKey(id), this.refsKey(id)], [jobId, Date.now()]);
    if (res !== 'OK') throw notFound(id);
  }

  /** Drops a job's ref (idempotent; unknown ids are fine: the restore may outlive a forced cleanup). */
  async releaseRef(id: string, jobId: string): Promise<void> {
    if (!isCheckpointId(id)) return;
    await this.redis.zrem(this.refsKey(id), jobId);
  }

  /** Job ids holding a ref on the checkpoint (after dropping dead ones when isRefLive was given). */
  async refs(id: string): Promise<string[]> {
    if (!isCheckpointId(id)) return [];
    await this.pruneRefs(id);
    return this.redis.zrange(this.refsKey(id), 0, -1);
  }

  async isInUse(id: string): Promise<boolean> {
    return (await this.refs(id)).length > 0;
  }

  /** Sum of `bytes` over the checkpoints matching the filter. */
  async totalBytes(filter: CheckpointFilter = {}): Promise<number> {
    const all = await this.list({ ...filter, limit: Infinity });
    return all.reduce((sum, c) => sum + c.bytes, 0);
  }

  private async setPinned(id: string, pinned: boolean): Promise<Checkpoint> {
    return this.setField(id, 'pinned', pinned ? '1' : '0');
  }

  private async setField(id: string, field: 'pinned' | 'verified' | 'location', value: string): Promise<Checkpoint> {
    if (!isCheckpointId(id)) throw notFound(id);
    const res = await SET_FIELD.run(this.redis, [this.hashKey(id)], [field, value]);
    if (res !== 'OK') throw notFound(id);
    return this.get(id);
  }

  /**
   * Whether this node removes the checkpoint's files itself: those on its own disk, and those only in the bucket (any
   * node with the bucket can). The bucket's objects go first: a crash half-way leaves the checkpoint pending, not lost.
   */
  private holdsFilesOf(c: Checkpoint): boolean {
    return this.onOurDisk(c) || (c.location === 'remote' && this.options.remote !== undefined);
  }

  /** Its folder is on this node's disk: made here, or on the root every node shares (storage.shared). */
  private onOurDisk(c: Checkpoint): boolean {
    return c.node === this.options.node || this.options.sharedStorage === true;
  }

  /**
   * Tells the nodes with files of the (now unlisted) checkpoint to remove them: each that holds a downloaded copy, and
   * its own node unless this one removes its files (`removesHere`); that node's entry in `deleting:<node>` is there already.
   */
  private async tellNodesToDrop(c: Checkpoint, removesHere: boolean): Promise<void> {
    const holders = await this.redis.smembers(this.copiesKey(c.id));
    if (!holders.length && removesHere) return;
    const tell = this.redis.multi();
    for (const node of holders) tell.sadd(this.copyDropsKey(node), `${c.target.key}/${c.id}`).publish(this.dropChannel, node);
    if (!removesHere) tell.publish(this.dropChannel, c.node);
    await tell.del(this.copiesKey(c.id)).exec();
  }

  private async removeFiles(c: Checkpoint): Promise<void> {
    if (c.location !== 'local') await this.options.remote?.remove(c);
    if (this.onOurDisk(c)) await this.options.store.remove(c);
    await this.redis
      .multi()
      .del(this.hashKey(c.id), this.refsKey(c.id))
      .zrem(this.pendingKey(c.node), c.id)
      .exec();
  }

  private async pruneRefs(id: string): Promise<void> {
    const isRefLive = this.options.isRefLive;
    if (!isRefLive) return;
    for (const jobId of await this.redis.zrange(this.refsKey(id), 0, -1)) {
      if (!(await isRefLive(jobId))) await this.redis.zrem(this.refsKey(id), jobId);
    }
  }

  private async listIds(filter: CheckpointFilter, offset: number, limit: number): Promise<string[]> {
    const keys: string[] = [];
    if (filter.targetKey !== undefined) keys.push(this.indexKey('target', filter.targetKey));
    if (filter.scheduleId !== undefined) keys.push(this.indexKey('schedule', filter.scheduleId));
    if (filter.node !== undefined) keys.push(this.indexKey('node', filter.node));
    const stop = Number.isFinite(limit) ? offset + limit - 1 : -1;
    if (keys.length <= 1) return this.redis.zrevrange(keys[0] ?? this.indexKey('all'), offset, stop);
    // Several filters: intersect (scores are equal in every index), then newest first as ZREVRANGE orders ties.
    const flat = (await this.redis.call('ZINTER', keys.length, ...keys, 'AGGREGATE', 'MAX', 'WITHSCORES')) as string[];
    const rows: [string, number][] = [];
    for (let i = 0; i < flat.length; i += 2) rows.push([flat[i]!, Number(flat[i + 1])]);
    rows.sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? 1 : a[0] > b[0] ? -1 : 0));
    return rows.slice(offset, Number.isFinite(limit) ? offset + limit : undefined).map(([id]) => id);
  }

  private async read(id: string): Promise<{ checkpoint: Checkpoint; deleting: boolean } | null> {
    const [manifest, pinned, verified, deleting, location] = await this.redis.hmget(
      this.hashKey(id),
      'manifest',
      'pinned',
      'verified',
      'deleting',
      'location',
    );
    if (manifest == null) return null;
    return { checkpoint: checkpointOf(manifest, pinned, verified, (location as CheckpointLocation | null) ?? 'local'), deleting: deleting != null };
  }

  private indexKeys(m: Manifest): string[] {
    const keys = [this.indexKey('all'), this.indexKey('target', m.target.key), this.indexKey('node', m.node)];
    if (m.scheduleId !== undefined) keys.push(this.indexKey('schedule', m.scheduleId));
    return keys;
  }

  private indexKey(kind: 'all' | 'target' | 'schedule' | 'node', value?: string): string {
    return kind === 'all' ? `${this.prefix}:all` : `${this.prefix}:${kind}:${value}`;
  }

  private hashKey(id: string): string {
    return `${this.prefix}:cp:${id}`;
  }

  private refsKey(id: string): string {
    return `${this.prefix}:cp:${id}:refs`;
  }

  private pendingKey(node: string): string {
    return `${this.prefix}:deleting:${node}`;
  }

  /** The nodes holding a downloaded copy of the checkpoint. */
  private copiesKey(id: string): string {
    return `${this.prefix}:cp:${id}:copies`;
  }

  /** `<targetKey>/<id>` of deleted checkpoints whose copy on `node` is still to be dropped. */
  private copyDropsKey(node: string): string {
    return `${this.prefix}:copy-drops:${node}`;
  }
}

function notFound(id: string): CatalogError {
  return new CatalogError('ECHECKPOINT_NOT_FOUND', `checkpoint ${id} not found`, isCheckpointId(id) ? id : undefined);
}

/** A listed checkpoint from its hash's fields as Redis holds them. */
function checkpointOf(manifest: string, pinned: string | null | undefined, verified: string | null | undefined, location: CheckpointLocation): Checkpoint {
  const checkpoint: Checkpoint = { ...(JSON.parse(manifest) as Manifest), pinned: pinned === '1', location };
  if (verified != null) checkpoint.verified = JSON.parse(verified) as Verification;
  return checkpoint;
}
