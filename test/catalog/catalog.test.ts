import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { Catalog, CatalogError, CheckpointStore, type Manifest } from '../../src/catalog/index.js';
import { newCheckpointId } from '../../src/common/checkpoint-id.js';
import { TestRedis } from '../helpers/redis.js';
import { throwawaySigner } from '../helpers/signer.js';
import { makeCheckpoint, manifestFor } from './fixtures.js';

async function rejectsCode(promise: Promise<unknown>, code: string, message?: RegExp): Promise<void> {
  await assert.rejects(promise, (e: unknown) => {
    assert.ok(e instanceof CatalogError, String(e));
    assert.equal(e.code, code, e.message);
    if (message) assert.match(e.message, message);
    return true;
  });
}

/** A store whose next remove() fails, like a disk error half-way through a delete. */
class FlakyStore extends CheckpointStore {
  failNext = false;
  override async remove(manifest: Pick<Manifest, 'id' | 'target'>): Promise<void> {
    if (this.failNext) {
      this.failNext = false;
      throw Object.assign(new Error('EIO: i/o error, rmdir'), { code: 'EIO' });
    }
    return super.remove(manifest);
  }
}

describe('Catalog', () => {
  let server: TestRedis;
  let redis: Redis;
  let tmp: string;
  let store: FlakyStore;
  let catalog: Catalog;
  const at = (minutes: number) => new Date(Date.UTC(2026, 10, 27, 12, minutes, 0));

  before(async () => {
    server = await TestRedis.start();
    redis = new Redis(server.url, { maxRetriesPerRequest: 1 });
    tmp = await mkdtemp(path.join(os.tmpdir(), 'ckpt-catalog-'));
  });
  after(async () => {
    redis?.disconnect();
    await server?.stop();
    await rm(tmp, { recursive: true, force: true });
  });
  beforeEach(async () => {
    await redis.flushall();
    await rm(path.join(tmp, 'root'), { recursive: true, force: true });
    store = new FlakyStore({ root: path.join(tmp, 'root'), signer: throwawaySigner() });
    catalog = new Catalog(redis, { prefix: 'test', store, node: 'node-a' });
  });

  it('add then get returns the manifest, unpinned; unknown and malformed ids are ECHECKPOINT_NOT_FOUND', async () => {
    const m = await makeCheckpoint(store);
    const added = await catalog.add(m);
    assert.deepEqual(added, { ...m, pinned: false, location: 'local' });
    assert.deepEqual(await catalog.get(m.id), { ...m, pinned: false, location: 'local' });
    await rejectsCode(catalog.get(newCheckpointId()), 'ECHECKPOINT_NOT_FOUND');
    await rejectsCode(catalog.get('../../etc/passwd'), 'ECHECKPOINT_NOT_FOUND');
    await assert.rejects(catalog.add({ ...m, bytes: -5 }), /invalid checkpoint manifest: bytes:/);
  });

  it('lists newest first, by target, by schedule, by node, combined, paged; latest per target', async () => {
    const made: Manifest[] = [];
    const specs = [
      { key: 'python3-10', created: at(1), scheduleId: 'hourly' },
      { key: 'python3-11', created: at(2), scheduleId: 'hourly' },
      { key: 'python3-10', created: at(3) },
      { key: 'python3-10', created: at(4), scheduleId: 'hourly', node: 'node-b' },
      { key: 'python3-11', created: at(5), scheduleId: 'nightly' },
    ];
    // Added out of order: the order comes from `created`.
    for (const spec of [...specs].reverse()) made.unshift(await catalog.add(await makeCheckpoint(store, spec)));
    const ids = (list: { id: string }[]) => list.map((c) => c.id);
    const [c1, c2, c3, c4, c5] = made.map((m) => m.id);

    assert.deepEqual(ids(await catalog.list()), [c5, c4, c3, c2, c1]);
    assert.deepEqual(ids(await catalog.list({ targetKey: 'python3-10' })), [c4, c3, c1]);
    assert.deepEqual(ids(await catalog.list({ scheduleId: 'hourly' })), [c4, c2, c1]);
    assert.deepEqual(ids(await catalog.list({ node: 'node-b' })), [c4]);
    assert.deepEqual(ids(await catalog.list({ targetKey: 'python3-10', scheduleId: 'hourly' })), [c4, c1]);
    assert.deepEqual(ids(await catalog.list({ targetKey: 'python3-10', scheduleId: 'hourly', node: 'node-a' })), [c1]);
    assert.deepEqual(ids(await catalog.list({ limit: 2 })), [c5, c4]);
    assert.deepEqual(ids(await catalog.list({ limit: 2, offset: 2 })), [c3, c2]);
    assert.deepEqual(ids(await catalog.list({ targetKey: 'python3-10', scheduleId: 'hourly', limit: 1, offset: 1 })), [c1]);
    assert.deepEqual(await catalog.list({ targetKey: 'nobody-1' }), []);
    assert.equal((await catalog.latest('python3-11'))?.id, c5);
    assert.equal((await catalog.latest('python3-10'))?.id, c4);
    assert.equal(await catalog.latest('nobody-1'), null);

    const bytes = made.map((m) => m.bytes);
    assert.equal(await catalog.totalBytes(), bytes.reduce((a, b) => a + b));
    assert.equal(await catalog.totalBytes({ scheduleId: 'hourly' }), bytes[0]! + bytes[1]! + bytes[3]!);
  });

  it('delete removes the entry from every list and the folder from disk', async () => {
    const m = await catalog.add(await makeCheckpoint(store, { scheduleId: 'hourly' }));
    const dir = store.pathOf(m);
    assert.ok(existsSync(dir));
    assert.deepEqual(await catalog.delete(m.id), { id: m.id, filesRemoved: true });
    assert.equal(existsSync(dir), false);
    await rejectsCode(catalog.get(m.id), 'ECHECKPOINT_NOT_FOUND');
    for (const filter of [{}, { target: m.target.key }, { schedule: 'hourly' }, { node: 'node-a' }]) {
      assert.deepEqual(await catalog.list(filter), []);
    }
    assert.deepEqual(await redis.keys('test:catalog:*'), [], 'no keys left behind');
    await rejectsCode(catalog.delete(m.id), 'ECHECKPOINT_NOT_FOUND');
    await rejectsCode(catalog.delete('nonsense'), 'ECHECKPOINT_NOT_FOUND');
  });

  it('a pinned checkpoint is refused (EPINNED) until unpinned or forced; adding it again keeps the pin', async () => {
    const m = await catalog.add(await makeCheckpoint(store));
    assert.equal((await catalog.pin(m.id)).pinned, true);
    assert.equal((await catalog.add(m)).pinned, true);
    await rejectsCode(catalog.delete(m.id), 'EPINNED', /pinned/);
    assert.ok(existsSync(store.pathOf(m)));
    assert.equal((await catalog.get(m.id)).pinned, true);
    assert.equal((await catalog.list())[0]?.id, m.id);
    assert.equal((await catalog.unpin(m.id)).pinned, false);
    await catalog.delete(m.id);
    assert.equal(existsSync(store.pathOf(m)), false);

    const forced = await catalog.add(await makeCheckpoint(store));
    await catalog.pin(forced.id);
    await catalog.delete(forced.id, { force: true });
    assert.equal(existsSync(store.pathOf(forced)), false);
    await rejectsCode(catalog.pin(forced.id), 'ECHECKPOINT_NOT_FOUND');
    await rejectsCode(catalog.unpin(newCheckpointId()), 'ECHECKPOINT_NOT_FOUND');
  });

  it('a checkpoint a restore holds a ref on is refused (EINUSE, naming the job), even with force', async () => {
    const m = await catalog.add(await makeCheckpoint(store));
    assert.equal(await catalog.isInUse(m.id), false);
    await catalog.acquireRef(m.id, 'restore-1');
    await catalog.acquireRef(m.id, 'restore-1');
    assert.equal(await catalog.isInUse(m.id), true);
    assert.deepEqual(await catalog.refs(m.id), ['restore-1']);
    await rejectsCode(catalog.delete(m.id), 'EINUSE', /restore-1/);
    await rejectsCode(catalog.delete(m.id, { force: true }), 'EINUSE');
    assert.ok(existsSync(store.pathOf(m)));
    await catalog.releaseRef(m.id, 'restore-1');
    assert.equal(await catalog.isInUse(m.id), false);
    await catalog.delete(m.id);
    await rejectsCode(catalog.acquireRef(m.id, 'restore-2'), 'ECHECKPOINT_NOT_FOUND');
    await catalog.releaseRef(m.id, 'restore-2');
  });

  it('refs of jobs that are no longer live are dropped when isRefLive is given', async () => {
    const live = new Set(['restore-live']);
    const withJobs = new Catalog(redis, { prefix: 'test', store, node: 'node-a', isRefLive: async (id) => live.has(id) });
    const m = await withJobs.add(await makeCheckpoint(store));
    await withJobs.acquireRef(m.id, 'restore-live');
    await withJobs.acquireRef(m.id, 'restore-crashed');
    assert.deepEqual(await withJobs.refs(m.id), ['restore-live']);
    live.clear();
    assert.equal(await withJobs.isInUse(m.id), false);
    await withJobs.delete(m.id);
  });

  it('a failing file removal leaves the checkpoint unlisted and pending, never listed without files; finishing it later removes it', async () => {
    const m = await catalog.add(await makeCheckpoint(store, { scheduleId: 'hourly' }));
    store.failNext = true;
    await assert.rejects(catalog.delete(m.id), /EIO/);
    assert.ok(existsSync(store.pathOf(m)), 'the files are still there');
    await rejectsCode(catalog.get(m.id), 'ECHECKPOINT_NOT_FOUND');
    assert.deepEqual(await catalog.list(), []);
    assert.deepEqual(await catalog.list({ scheduleId: 'hourly' }), []);
    assert.equal(await catalog.latest(m.target.key), null);
    await rejectsCode(catalog.acquireRef(m.id, 'restore-1'), 'ECHECKPOINT_NOT_FOUND', undefined);
    await rejectsCode(catalog.pin(m.id), 'ECHECKPOINT_NOT_FOUND');

    const done = await catalog.finishPendingDeletes();
    assert.deepEqual(done, { removed: [m.id], failed: [] });
    assert.equal(existsSync(store.pathOf(m)), false);
    assert.deepEqual(await redis.keys('test:catalog:*'), []);
  });

  it('deleting another node\'s checkpoint unlists it; that node removes the files', async () => {
    const m = await catalog.add(await makeCheckpoint(store, { node: 'node-b' }));
    assert.deepEqual(await catalog.delete(m.id), { id: m.id, filesRemoved: false });
    assert.deepEqual(await catalog.list(), []);
    assert.ok(existsSync(store.pathOf(m)), 'not this node\'s disk: left alone');
    assert.deepEqual(await catalog.finishPendingDeletes(), { removed: [], failed: [] });
    const nodeB = new Catalog(redis, { prefix: 'test', store, node: 'node-b' });
    assert.deepEqual(await nodeB.finishPendingDeletes(), { removed: [m.id], failed: [] });
    assert.equal(existsSync(store.pathOf(m)), false);
  });

  it('keeps catalogs with different prefixes apart', async () => {
    const m = await catalog.add(await makeCheckpoint(store));
    const other = new Catalog(redis, { prefix: 'other', store, node: 'node-a' });
    assert.deepEqual(await other.list(), []);
    await rejectsCode(other.get(m.id), 'ECHECKPOINT_NOT_FOUND');
  });

  it('validates manifests: ids and target keys must be safe', async () => {
    const id = newCheckpointId();
    await assert.rejects(catalog.add({ ...manifestFor(id), id: '../x' }), /manifest: id: not a checkpoint id/);
    await assert.rejects(catalog.add(manifestFor(id, { key: '../etc-1' })), /manifest: target\.key: not a target key/);
  });
});
