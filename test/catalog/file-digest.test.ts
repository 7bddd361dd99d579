// sha256Of against node's crypto over real files: small ones are hashed on the event loop, big ones in the hash
// thread; both must give the same digest and byte count whatever size the caller believed the file had.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { sha256Of } from '../../src/catalog/file-digest.js';

const KiB = 1024;
const SIZES = [0, 1, 64 * KiB, 64 * KiB + 1, 256 * KiB, 256 * KiB + 1, 1024 * KiB, 3 * 1024 * KiB + 7];

test('sha256Of: the digest and byte count of crypto for every size, with the size hint right, too small or too big', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ckpt-digest-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  for (const size of SIZES) {
    const bytes = randomBytes(size);
    const file = path.join(dir, `f${size}`);
    await writeFile(file, bytes);
    const expected = createHash('sha256').update(bytes).digest('hex');
    for (const hint of [size, 1, 8 * 1024 * KiB, undefined]) {
      const handle = await open(file, 'r');
      try {
        assert.deepEqual(await sha256Of(handle, hint), { sha256: expected, bytes: size }, `size ${size}, hint ${hint}`);
      } finally {
        await handle.close();
      }
    }
  }
});

test('sha256Of: several big files at once each get their own digest; a closed descriptor is an error, and the next file is hashed', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ckpt-digest-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const files = await Promise.all(
    [1, 2, 3, 4].map(async (n) => {
      const bytes = randomBytes(512 * KiB * n);
      const file = path.join(dir, `big${n}`);
      await writeFile(file, bytes);
      return { file, size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') };
    }),
  );
  const handles = await Promise.all(files.map((f) => open(f.file, 'r')));
  try {
    const digests = await Promise.all(handles.map((h, i) => sha256Of(h, files[i]!.size)));
    assert.deepEqual(digests, files.map((f) => ({ sha256: f.sha256, bytes: f.size })));
  } finally {
    await Promise.all(handles.map((h) => h.close()));
  }
  const closed = await open(files[0]!.file, 'r');
  const fd = closed.fd;
  await closed.close();
  await assert.rejects(sha256Of({ fd } as Parameters<typeof sha256Of>[0], files[0]!.size), { code: 'EBADF' });
  const again = await open(files[1]!.file, 'r');
  try {
    assert.deepEqual(await sha256Of(again, files[1]!.size), { sha256: files[1]!.sha256, bytes: files[1]!.size });
  } finally {
    await again.close();
  }
});
