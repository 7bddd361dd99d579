// The bucket's side of checkpoints, against a real s3rver process: packing (zstd / lz4 programs, AES-256-GCM per
// chunk), damage found and named, credentials and key files checked.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { test } from 'node:test';
import { CheckpointStore } from '../../src/catalog/checkpoint-store.js';
import { newCheckpointId } from '../../src/common/checkpoint-id.js';
import type { Manifest } from '../../src/catalog/manifest.js';
import { remoteStorageSchema } from '../../src/config/schema.js';
import { loadSigner } from '../../src/security/key-file.js';
import { ChunkCipher, CHUNK_BYTES } from '../../src/storage/chunk-cipher.js';
import { loadBucketCredentials } from '../../src/storage/credentials.js';
import { RemoteStore } from '../../src/storage/remote-store.js';
import { TestS3 } from '../helpers/s3.js';

async function tempDir(t: { after(fn: () => unknown): void }, name: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `ckpt-${name}-`));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function keyFile(dir: string): Promise<string> {
  const file = path.join(dir, 'storage.key');
  await writeFile(file, randomBytes(32).toString('hex') + '\n', { mode: 0o600 });
  return file;
}

/** A committed checkpoint folder with a few files (one big, compressible, one random), made by the real store. */
async function committedCheckpoint(store: CheckpointStore, marker: string): Promise<Manifest> {
  const id = newCheckpointId();
  const attempt = await store.beginAttempt('python3-4242', id);
  const text = Buffer.from(`${marker} counter=12345 `.repeat(40_000));
  await writeFile(path.join(attempt.dir, 'pages-1.img'), Buffer.concat([text, Buffer.alloc(1 << 20), randomBytes(300_000)]));
  await writeFile(path.join(attempt.dir, 'core-4242.img'), randomBytes(5000));
  await mkdir(path.join(attempt.dir, 'sub'));
  await writeFile(path.join(attempt.dir, 'sub', 'empty.img'), '');
  return store.commit(attempt.dir, {
    id,
    created: new Date().toISOString(),
    node: 'node-a',
    target: { key: 'python3-4242', pid: 4242, cmdline: 'python3 x.py', exe: '/usr/bin/python3', uid: 0, startTime: 1 },
    criuVersion: '4.2.1',
    options: {},
    leaveRunning: true,
    stats: {},
    durationMs: 1,
    jobId: 'job-1',
  });
}

test('the chunk cipher: a round trip of any size, and every kind of damage refused (altered, cut, reordered, wrong key)', async (t) => {
  const dir = await tempDir(t, 'cipher');
  const cipher = ChunkCipher.fromKeyFile(await keyFile(dir));
  const other = ChunkCipher.fromKeyFile(await keyFile(await tempDir(t, 'cipher2')));
  const seal = (data: Buffer) => buffer(Readable.from([data]).pipe(cipher.encryptor()));
  const open = (data: Buffer, c = cipher) => buffer(Readable.from([data]).pipe(c.decryptor('x.img')));
  for (const size of [0, 1, CHUNK_BYTES - 1, CHUNK_BYTES, CHUNK_BYTES + 1, 3 * CHUNK_BYTES + 17]) {
    const plain = randomBytes(size);
    const sealed = await seal(plain);
    if (size >= 16) assert.ok(!sealed.includes(plain.subarray(0, 16)), 'the plaintext is not in the sealed bytes');
    assert.deepEqual(await open(sealed), plain, `size ${size}`);
  }
  const plain = randomBytes(3 * CHUNK_BYTES);
  const sealed = await seal(plain);
  const flipped = Buffer.from(sealed);
  flipped[CHUNK_BYTES + 100]! ^= 1;
  await assert.rejects(open(flipped), { code: 'EDAMAGED', message: /^x\.img: chunk 1 fails authentication/ });
  await assert.rejects(open(sealed.subarray(0, sealed.length - 10)), { code: 'EDAMAGED', message: /x\.img: cut short/ });
  // Whole records cut off at the end: the final flag is missing.
  const record = 5 + CHUNK_BYTES + 16;
  await assert.rejects(open(sealed.subarray(0, 16 + record)), { code: 'EDAMAGED', message: /cut short/ });
  // The first two chunks swapped.
  const swapped = Buffer.concat([sealed.subarray(0, 16), sealed.subarray(16 + record, 16 + 2 * record), sealed.subarray(16, 16 + record), sealed.subarray(16 + 2 * record)]);
  await assert.rejects(open(swapped), { code: 'EDAMAGED', message: /chunk 0 fails authentication/ });
  await assert.rejects(open(sealed, other), { code: 'EDAMAGED', message: /another key/ });
});

test('key and credentials files must be 0600 and well-formed; the message names the file, never the secret', async (t) => {
  const dir = await tempDir(t, 'files');
  const key = await keyFile(dir);
  await chmod(key, 0o644);
  assert.throws(() => ChunkCipher.fromKeyFile(key), { code: 'EKEY', message: new RegExp(`encryptionKeyFile ${key}: mode 0644`) });
  const short = path.join(dir, 'short.key');
  await writeFile(short, 'abcd', { mode: 0o600 });
  assert.throws(() => ChunkCipher.fromKeyFile(short), { code: 'EKEY', message: /not a key \(expected 64 hex digits/ });

  const creds = path.join(dir, 'creds.json');
  await writeFile(creds, JSON.stringify({ accessKeyId: 'AKID', secretAccessKey: 'very-secret-value' }), { mode: 0o640 });
  assert.throws(() => loadBucketCredentials(creds), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'ECREDENTIALS');
    assert.match(err.message, /credentialsFile .*creds\.json: mode 0640: a secret must be readable by its owner only/);
    assert.ok(!err.message.includes('very-secret-value'));
    return true;
  });
  await chmod(creds, 0o600);
  assert.deepEqual(loadBucketCredentials(creds), { accessKeyId: 'AKID', secretAccessKey: 'very-secret-value' });
  await writeFile(creds, JSON.stringify({ accessKeyId: 'AKID' }));
  assert.throws(() => loadBucketCredentials(creds), { code: 'ECREDENTIALS', message: /creds\.json: secretAccessKey: / });
  assert.throws(() => loadBucketCredentials('', {}), { code: 'ECREDENTIALS', message: /AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY/ });
  assert.deepEqual(loadBucketCredentials('', { AWS_ACCESS_KEY_ID: 'a', AWS_SECRET_ACCESS_KEY: 'b' }), { accessKeyId: 'a', secretAccessKey: 'b' });
  // The config section is strict and says which field is wrong.
  const bad = remoteStorageSchema.safeParse({ endpoint: 'ftp://x', bucket: 'B', compresion: 'zstd' });
  assert.ok(!bad.success);
  const issues = bad.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('\n');
  assert.match(issues, /endpoint: must be an http\(s\):\/\/ URL/);
  assert.match(issues, /bucket: not a bucket name/);
  assert.match(issues, /compresion/);
});

test('a checkpoint goes to a real S3 server and comes back the same, for none / lz4 / zstd, encrypted or not; damage is refused naming the file', async (t) => {
  const s3 = await TestS3.start();
  t.after(() => s3.stop());
  const dir = await tempDir(t, 'remote');
  const signer = loadSigner(path.join(dir, 'job.key'));
  const store = new CheckpointStore({ root: path.join(dir, 'a'), signer, sync: false });
  const copies = new CheckpointStore({ root: path.join(dir, 'b'), signer, sync: false });
  const marker = `marker-${randomBytes(6).toString('hex')}`;
  const encryptionKeyFile = await keyFile(dir);
  for (const [compression, encrypted] of [['none', false], ['lz4', false], ['zstd', false], ['zstd', true], ['none', true]] as const) {
    const prefix = `t-${compression}-${encrypted}`;
    const remote = new RemoteStore({
      config: remoteStorageSchema.parse(await s3.remoteConfig({ prefix, compression, ...(encrypted && { encryptionKeyFile }) })),
      signer,
    });
    t.after(() => remote.close());
    const manifest = await committedCheckpoint(store, marker);
    const seen: number[] = [];
    await remote.upload(manifest, store.pathOf(manifest), { onProgress: (done) => seen.push(done) });
    assert.equal(seen.at(-1), manifest.bytes, 'progress reaches every byte');
    const keys = await s3.keys(`${prefix}/`);
    assert.deepEqual(keys, [
      `${prefix}/python3-4242/${manifest.id}/files/core-4242.img`,
      `${prefix}/python3-4242/${manifest.id}/files/pages-1.img`,
      `${prefix}/python3-4242/${manifest.id}/files/sub/empty.img`,
      `${prefix}/python3-4242/${manifest.id}/manifest.json`,
    ]);
    const pages = await s3.get(keys[1]!);
    // What anyone with the bucket's credentials reads: the marker in plain objects, none in encrypted ones.
    // (Compression alone hides nothing: lz4 and zstd keep a string's first occurrence as it is.)
    if (encrypted) assert.ok(!pages.bytes.includes(marker), `${compression} encrypted: no marker`);
    if (compression === 'none' && !encrypted) assert.ok(pages.bytes.includes(marker), 'the marker is there to be found');
    if (compression !== 'none') assert.ok(pages.bytes.length < manifest.files['pages-1.img']! * 0.5, 'compressed');
    const rawManifest = (await s3.get(keys[3]!)).bytes.toString();
    assert.equal(rawManifest.includes(manifest.target.cmdline), !encrypted);

    assert.deepEqual((await remote.list()).manifests.map((m) => m.id), [manifest.id]);
    const attempt = await copies.beginAttempt('python3-4242', manifest.id);
    await remote.download(manifest, attempt.dir);
    const copy = await copies.adoptCopy(attempt.dir, manifest);
    assert.deepEqual(copy, manifest);
    assert.deepEqual(await copies.verify(copy), []);
    assert.deepEqual(await readFile(path.join(copies.pathOf(copy), 'pages-1.img')), await readFile(path.join(store.pathOf(manifest), 'pages-1.img')));

    // One byte flipped in the bucket: refused, naming the file (by the decoder, or by the SHA-256 check after it).
    await copies.remove(copy);
    await s3.flipByte(keys[1]!);
    const retry = await copies.beginAttempt('python3-4242', manifest.id);
    await assert.rejects(
      async () => {
        try {
          await remote.download(manifest, retry.dir);
        } catch (err) {
          await copies.discard(retry.dir);
          throw err;
        }
        await copies.adoptCopy(retry.dir, manifest);
      },
      (err: Error & { code?: string }) => {
        assert.match(err.message, /pages-1\.img/, `${compression} encrypted=${encrypted}: ${err.message}`);
        assert.equal(err.code, 'EDAMAGED');
        return true;
      },
    );
    assert.equal(await copies.readManifest('python3-4242', manifest.id), null, 'no damaged copy is left in place');
  }
});
