import assert from 'node:assert/strict';
import { appendFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { dumpPercent, pageBytes, PageBytesSampler, treeDumpBytes } from '../../workers/progress-sampler.js';
import { startCounter } from '../helpers/targets.js';
import { waitUntil } from '../helpers/wait.js';

test('page bytes: only pages-*.img count; the sampler reports them growing while they are written', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ckpt-pages-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  assert.equal(await pageBytes(dir), 0);
  await writeFile(path.join(dir, 'core-1.img'), Buffer.alloc(1000));
  await writeFile(path.join(dir, 'pages-1.img'), Buffer.alloc(4096));
  assert.equal(await pageBytes(dir), 4096);

  const samples: number[] = [];
  const sampler = new PageBytesSampler({ imagesDir: dir, intervalMs: 10, onSample: (b) => samples.push(b) });
  sampler.start();
  // Each size the file grows to is reported before it grows again.
  for (let i = 2; i <= 6; i++) {
    await appendFile(path.join(dir, 'pages-1.img'), Buffer.alloc(4096));
    await waitUntil(`a sample of ${i} pages`, () => samples.at(-1) === i * 4096);
  }
  await writeFile(path.join(dir, 'pages-2.img'), Buffer.alloc(8192));
  await sampler.stop();
  const delivered = samples.length;
  assert.equal(await pageBytes(dir), 6 * 4096 + 8192);
  assert.ok(samples.length >= 5);
  // A second sampler on the same interval, started after stop(): once it has sampled twice, the stopped one would have too.
  const witness: number[] = [];
  const second = new PageBytesSampler({ imagesDir: dir, intervalMs: 10, onSample: (b) => witness.push(b) });
  second.start();
  await waitUntil('a second sampler to sample twice', () => witness.length >= 2);
  await second.stop();
  assert.equal(samples.length, delivered, 'no sample after stop()');
  assert.deepEqual(samples, [...samples].sort((a, b) => a - b), 'never decreasing');
  assert.ok(samples[0]! < samples.at(-1)!);
});

test('expected bytes: the memory CRIU will copy from the target tree; percent held below 100 until done', async (t) => {
  const target = await startCounter(32);
  t.after(() => target.kill());
  const expected = await treeDumpBytes(target.pid);
  assert.ok(expected > 32 * 1024 * 1024 && expected < 64 * 1024 * 1024, `${expected}`);
  assert.equal(await treeDumpBytes(2 ** 22 + 1), 0, 'unknown pid');
  assert.equal(dumpPercent(0, 0), 0);
  assert.equal(dumpPercent(50, 100), 50);
  assert.equal(dumpPercent(150, 100), 99);
});
