import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, stat, symlink, truncate, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  CatalogError,
  CheckpointStore,
  MANIFEST_FILE,
  manifestSchema,
  type AttemptOwner,
} from '../../src/catalog/index.js';
import { isCheckpointId, newCheckpointId } from '../../src/common/checkpoint-id.js';
import { throwawaySigner } from '../helpers/signer.js';
import { makeCheckpoint, manifestFor } from './fixtures.js';

const mode = async (p: string) => (await stat(p)).mode & 0o777;

function throwsCode(fn: () => unknown, code: string): void {
  assert.throws(fn, (e: unknown) => e instanceof CatalogError && e.code === code);
}

async function rejectsCode(promise: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(promise, (e: unknown) => e instanceof CatalogError && e.code === code);
}

describe('newCheckpointId', () => {
  it('is time-sortable and safe', () => {
    const id = newCheckpointId(new Date('2026-11-27T13:45:01.999Z'));
    assert.match(id, /^20261127T134501Z-[0-9a-f]{8}$/);
    assert.ok(isCheckpointId(id));
    assert.ok(newCheckpointId(new Date('2026-11-27T13:45:02Z')) > id);
    assert.notEqual(newCheckpointId(), newCheckpointId());
    for (const bad of ['..', '../20261127T134501Z-00000000', '20261127T134501Z-0000000g', '', 7]) assert.equal(isCheckpointId(bad), false);
  });
});

describe('CheckpointStore', () => {
  let tmp: string;
  let store: CheckpointStore;
  before(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'ckpt-store-'));
    store = new CheckpointStore({ root: path.join(tmp, 'root'), signer: throwawaySigner() });
  });
  after(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  it('attempt then commit: 0700 folders, 0600 files, manifest.json, no temp folder left', async () => {
    const id = newCheckpointId();
    const key = 'python3-4242';
    const attempt = await store.beginAttempt(key, id, { jobId: '17' });
    assert.equal(attempt.dir, path.join(store.root, key, `.tmp-${id}`));
    assert.equal(await mode(store.root), 0o700);
    assert.equal(await mode(path.join(store.root, key)), 0o700);
    assert.equal(await mode(attempt.dir), 0o700);
    // What CRIU leaves: world-readable images (and a sub-folder for good measure).
    await writeFile(path.join(attempt.dir, 'pages-1.img'), Buffer.alloc(10_000, 7), { mode: 0o644 });
    await writeFile(path.join(attempt.dir, 'dump.log'), 'log\n', { mode: 0o644 });
    await mkdir(path.join(attempt.dir, 'extra'), { mode: 0o755 });
    await writeFile(path.join(attempt.dir, 'extra', 'x.img'), 'xx', { mode: 0o666 });

    const manifest = await store.commit(attempt.dir, manifestFor(id, { key }));
    assert.deepEqual(manifest.files, { 'pages-1.img': 10_000, 'dump.log': 4, 'extra/x.img': 2 });
    assert.equal(manifest.bytes, 10_006);
    const finalDir = store.pathOf(manifest);
    assert.equal(finalDir, path.join(store.root, key, id));
    const sha256sum = spawnSync('sha256sum', ['pages-1.img', 'dump.log', 'extra/x.img'], { cwd: finalDir, encoding: 'utf8' });
    assert.equal(sha256sum.status, 0, sha256sum.stderr);
    const expected = Object.fromEntries(sha256sum.stdout.trim().split('\n').map((line) => line.split(/\s+/).reverse()));
    assert.deepEqual(manifest.sha256, expected, 'each file hashed, as sha256sum does');
    assert.equal(existsSync(attempt.dir), false);
    assert.deepEqual((await readdir(path.join(store.root, key))).sort(), [id]);
    assert.deepEqual((await readdir(finalDir)).sort(), ['dump.log', 'extra', MANIFEST_FILE, 'pages-1.img']);
    assert.equal(await mode(finalDir), 0o700);
    assert.equal(await mode(path.join(finalDir, 'extra')), 0o700);
    for (const f of ['pages-1.img', 'dump.log', 'extra/x.img', MANIFEST_FILE]) assert.equal(await mode(path.join(finalDir, f)), 0o600, f);
    const written = manifestSchema.parse(JSON.parse(await readFile(path.join(finalDir, MANIFEST_FILE), 'utf8')));
    assert.deepEqual(written, manifest);
    assert.deepEqual(await store.readManifest(key, id), manifest);

    await rejectsCode(store.commit(attempt.dir, manifest), 'ECOMMITTED');
    await store.remove(manifest);
    assert.equal(existsSync(finalDir), false);
    assert.equal(existsSync(path.join(store.root, key)), false, 'an emptied target folder goes too');
    assert.equal(await store.readManifest(key, id), null);
  });

  it('a draft still in the making (a dump\'s statistics being read): sealed meanwhile; a draft that fails leaves the attempt uncommitted', async () => {
    const key = 'python3-4343';
    const failing = await store.beginAttempt(key, newCheckpointId(), { jobId: '18' });
    await writeFile(path.join(failing.dir, 'pages-1.img'), 'pages', { mode: 0o644 });
    await assert.rejects(store.commit(failing.dir, Promise.reject(new Error('stats-dump unreadable'))), /stats-dump unreadable/);
    assert.deepEqual((await readdir(failing.dir)).sort(), ['.owner.json', 'pages-1.img'], 'no manifest, the owner kept');
    assert.equal(existsSync(store.pathOf({ id: path.basename(failing.dir).slice(5), target: { key } })), false);
    await store.discard(failing.dir);

    const id = newCheckpointId();
    const attempt = await store.beginAttempt(key, id, { jobId: '19' });
    await writeFile(path.join(attempt.dir, 'pages-1.img'), 'pages', { mode: 0o644 });
    const later = new Promise<ReturnType<typeof manifestFor>>((resolve) => setTimeout(() => resolve(manifestFor(id, { key })), 50));
    const manifest = await store.commit(attempt.dir, later);
    assert.deepEqual(manifest.files, { 'pages-1.img': 5 }, 'the owner file is not part of the checkpoint');
    assert.deepEqual(await store.readManifest(key, id), manifest);
    await store.remove(manifest);
  });

  it('verify() names each file that is missing or whose size differs from the manifest', async () => {
    const manifest = await makeCheckpoint(store, { key: 'python3-77' });
    assert.deepEqual(await store.verify(manifest), []);
    const dir = store.pathOf(manifest);
    await truncate(path.join(dir, 'pages-1.img'), 100);
    await rm(path.join(dir, 'dump.log'));
    assert.deepEqual((await store.verify(manifest)).sort(), [
      'dump.log is missing',
      'pages-1.img is 100 bytes, the manifest says 8192',
    ]);
    await store.remove(manifest);
  });

  it('verify() names a file whose content changed at the same size; a manifest without hashes is checked by size', async () => {
    const manifest = await makeCheckpoint(store, { key: 'python3-78' });
    const dir = store.pathOf(manifest);
    const pages = path.join(dir, 'pages-1.img');
    const bytes = await readFile(pages);
    bytes[4321] = bytes[4321]! ^ 0x80;
    await writeFile(pages, bytes);
    assert.deepEqual(await store.verify(manifest), ['pages-1.img does not match its SHA-256 in the manifest']);
    const { sha256: _, ...unhashed } = manifest;
    assert.deepEqual(await store.verify(unhashed), [], 'committed before files were hashed: sizes only');
    // Something else in a file's place: not a file (a FIFO would block a plain open).
    await rm(pages);
    assert.equal(spawnSync('mkfifo', [pages]).status, 0);
    assert.deepEqual(await store.verify(manifest), ['pages-1.img is missing']);
    await store.remove(manifest);
  });

  it('a manifest with a malformed SHA-256 is invalid', () => {
    const result = manifestSchema.safeParse({ ...manifestFor(newCheckpointId()), sha256: { 'pages-1.img': 'abc' } });
    assert.equal(result.success, false);
    assert.match(String(result.error), /not a SHA-256 in hex/);
  });

  it('a manifest naming a file outside its folder is invalid', () => {
    for (const name of ['../x', '/etc/passwd', 'a/../../b', 'a//b']) {
      const result = manifestSchema.safeParse({ ...manifestFor(newCheckpointId()), files: { [name]: 1 } });
      assert.equal(result.success, false, name);
      assert.match(String(result.error), /not a relative path inside the checkpoint/);
    }
  });

  it('refuses unsafe target keys, ids and folders (no path traversal)', async () => {
    const id = newCheckpointId();
    for (const key of ['..', '../etc-1', 'a/b-1', '.tmp-1', '', '/etc-1']) {
      await rejectsCode(store.beginAttempt(key, id), 'EBADNAME');
      await rejectsCode(store.findAttempt(key, id), 'EBADNAME');
      throwsCode(() => store.pathOf({ id, target: { ...manifestFor(id).target, key } }), 'EBADNAME');
    }
    for (const badId of ['..', '../../etc', `${id}/..`, 'x', '']) {
      await rejectsCode(store.beginAttempt('python3-1', badId), 'EBADNAME');
      throwsCode(() => store.pathOf({ id: badId, target: manifestFor(id).target }), 'EBADNAME');
      await rejectsCode(store.readManifest('python3-1', badId), 'EBADNAME');
    }
    const attempt = await store.beginAttempt('python3-1', id);
    const manifest = manifestFor(id, { key: 'python3-1' });
    for (const dir of ['/etc', tmp, store.root, path.join(store.root, 'python3-1'), `${attempt.dir}/..`, path.join(tmp, 'python3-1', `.tmp-${id}`)]) {
      await rejectsCode(store.commit(dir, manifest), 'EBADNAME');
      await rejectsCode(store.discard(dir), 'EBADNAME');
    }
    // A manifest must name the attempt it is committed from.
    await rejectsCode(store.commit(attempt.dir, manifestFor(newCheckpointId(), { key: 'python3-1' })), 'EBADNAME');
    await rejectsCode(store.commit(attempt.dir, manifestFor(id, { key: 'python3-2' })), 'EBADNAME');
    await assert.rejects(store.commit(attempt.dir, { ...manifest, durationMs: -1 }), /durationMs/);
    assert.ok(existsSync(attempt.dir), 'refused commits leave the attempt alone');
    await store.discard(attempt.dir);
    assert.equal(existsSync(attempt.dir), false);
  });

  it('refuses a symlink planted as a target folder', async () => {
    const outside = path.join(tmp, 'outside');
    await mkdir(outside);
    await mkdir(store.root, { recursive: true });
    await symlink(outside, path.join(store.root, 'evil-1'));
    await rejectsCode(store.beginAttempt('evil-1', newCheckpointId()), 'EUNSAFE_PATH');
    assert.deepEqual(await readdir(outside), []);
  });

  it('follows no symlink out of the root: a target folder or a checkpoint folder swapped for one is refused by every operation, and nothing outside is touched', async () => {
    // <root>/<key> moved elsewhere and replaced by a symlink to it: the paths still "work" through the link.
    const viaKey = await makeCheckpoint(store, { key: 'python3-31' });
    const elsewhere = path.join(tmp, 'elsewhere-31');
    await rename(path.join(store.root, 'python3-31'), elsewhere);
    await symlink(elsewhere, path.join(store.root, 'python3-31'));
    await writeFile(path.join(elsewhere, 'precious.txt'), 'not ckpt\'s');
    // <root>/<key>/<id> replaced by a symlink to a copy of itself elsewhere.
    const viaId = await makeCheckpoint(store, { key: 'python3-32' });
    const copy = path.join(tmp, 'elsewhere-32');
    await rename(store.pathOf(viaId), copy);
    await symlink(copy, store.pathOf(viaId));
    for (const m of [viaKey, viaId]) {
      await rejectsCode(store.remove(m), 'EUNSAFE_PATH');
      await rejectsCode(store.verify(m), 'EUNSAFE_PATH');
      await rejectsCode(store.readSigned(m.target.key, m.id), 'EUNSAFE_PATH');
      await rejectsCode(store.readManifest(m.target.key, m.id), 'EUNSAFE_PATH');
    }
    await rejectsCode(store.beginAttempt('python3-31', newCheckpointId()), 'EUNSAFE_PATH');
    await rejectsCode(store.findAttempt('python3-31', newCheckpointId()), 'EUNSAFE_PATH');
    await rejectsCode(store.discard(path.join(store.root, 'python3-31', `.tmp-${newCheckpointId()}`)), 'EUNSAFE_PATH');
    assert.deepEqual((await readdir(elsewhere)).sort(), [viaKey.id, 'precious.txt'].sort());
    assert.ok((await readdir(path.join(elsewhere, viaKey.id))).includes('pages-1.img'));
    assert.ok((await readdir(copy)).includes('pages-1.img'));
    // Rebuild lists neither (symlinks are not folders of the store).
    const listed = (await store.listCommitted()).manifests.map((m) => m.id);
    assert.ok(!listed.includes(viaKey.id) && !listed.includes(viaId.id), listed.join(', '));
    // A manifest.json that is a symlink is not read through.
    const linked = await makeCheckpoint(store, { key: 'python3-33' });
    const manifestPath = path.join(store.pathOf(linked), MANIFEST_FILE);
    await rename(manifestPath, path.join(tmp, 'manifest-33.json'));
    await symlink(path.join(tmp, 'manifest-33.json'), manifestPath);
    await rejectsCode(store.readSigned(linked.target.key, linked.id), 'EUNSAFE_PATH');
    for (const key of ['python3-31', 'python3-32', 'python3-33']) await rm(path.join(store.root, key), { recursive: true });
  });

  it('a discarded attempt leaves no empty target folder behind', async () => {
    const attempt = await store.beginAttempt('python3-34', newCheckpointId());
    await store.discard(attempt.dir);
    assert.equal(existsSync(path.join(store.root, 'python3-34')), false);
  });

  it('a retry finds the previous attempt and takes it over; beginning it again is refused', async () => {
    const id = newCheckpointId();
    assert.equal(await store.findAttempt('python3-5', id), null);
    const first = await store.beginAttempt('python3-5', id, { jobId: '9' });
    await rejectsCode(store.beginAttempt('python3-5', id), 'EATTEMPT_EXISTS');
    const found = await store.findAttempt('python3-5', id, { jobId: '9' });
    assert.ok(found);
    assert.equal(found.dir, first.dir);
    assert.equal(found.previousOwner?.pid, process.pid);
    assert.equal(found.previousOwner?.jobId, '9');
    await store.discard(found.dir);
  });

  it('sweepStale removes attempts of dead owners, never those of live ones', async () => {
    const dead = spawnSync('true').pid!;
    const deadOwner: AttemptOwner = { pid: dead, startTime: 1, since: new Date(Date.now() - 60_000).toISOString() };
    const orphan = await store.beginAttempt('python3-6', newCheckpointId());
    await writeFile(path.join(orphan.dir, '.owner.json'), JSON.stringify(deadOwner));
    // A crash between mkdir and writing the owner: no owner file; judged by the folder's age.
    const ownerless = await store.beginAttempt('python3-6', newCheckpointId());
    await rm(path.join(ownerless.dir, '.owner.json'));
    const old = new Date(Date.now() - 60_000);
    await utimes(ownerless.dir, old, old);
    const mine = await store.beginAttempt('python3-6', newCheckpointId());
    const young = await store.beginAttempt('python3-7', newCheckpointId());
    await writeFile(path.join(young.dir, '.owner.json'), JSON.stringify({ ...deadOwner, since: new Date().toISOString() }));

    assert.deepEqual(await store.sweepStale(10 * 60_000), [], 'nothing is old enough');
    const removed = await store.sweepStale(30_000);
    assert.deepEqual(removed.sort(), [orphan.dir, ownerless.dir].sort());
    assert.ok(existsSync(mine.dir));
    assert.ok(existsSync(young.dir));
    assert.deepEqual((await store.sweepStale(0)).sort(), [young.dir]);
    assert.ok(existsSync(mine.dir), 'a live owner keeps its attempt whatever its age');
    await store.discard(mine.dir);
  });

  it('sweepStale on a root that does not exist yet finds nothing', async () => {
    assert.deepEqual(await new CheckpointStore({ root: path.join(tmp, 'nope'), signer: throwawaySigner() }).sweepStale(0), []);
  });
});
