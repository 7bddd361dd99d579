import assert from 'node:assert/strict';
import { appendFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { CriuLogTailer, LogLines, splitLines } from '../../workers/criu-log-tailer.js';

async function tempFile(t: { after(fn: () => unknown): void }): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ckpt-tail-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return path.join(dir, 'dump.log');
}

test('follows a log that appears later and grows in pieces: every line once, in order, split characters intact', async (t) => {
  const file = await tempFile(t);
  const batches: string[][] = [];
  const tailer = new CriuLogTailer({ file, intervalMs: 10, onLines: (lines) => void batches.push(lines.all()) });
  tailer.start();
  await sleep(30);
  await writeFile(file, '(00.000001) Version: 4.2.1\n(00.000002) half');
  await sleep(40);
  await appendFile(file, ' a line\n');
  const euro = Buffer.from('(00.000003) caf\u00e9 \u20ac\n');
  await appendFile(file, euro.subarray(0, 17)); // cuts the € in two
  await sleep(40);
  await appendFile(file, euro.subarray(17));
  await appendFile(file, '(00.000004) Dumping finished successfully');
  await sleep(40);
  await tailer.stop();
  assert.ok(batches.length >= 2, 'delivered while the file grew, not only at the end');
  assert.deepEqual(batches.flat(), [
    '(00.000001) Version: 4.2.1',
    '(00.000002) half a line',
    '(00.000003) caf\u00e9 \u20ac',
    '(00.000004) Dumping finished successfully',
  ]);
});

test('a flood is read in bounded slices; stop() delivers everything left', async (t) => {
  const file = await tempFile(t);
  const lines = Array.from({ length: 20_000 }, (_, i) => `(00.${String(i).padStart(6, '0')}) page ${i}`);
  await writeFile(file, lines.join('\n') + '\n');
  const got: string[] = [];
  let biggest = 0;
  const tailer = new CriuLogTailer({
    file,
    intervalMs: 5,
    maxBytesPerTick: 16 * 1024,
    onLines: (batch) => {
      biggest = Math.max(biggest, batch.count);
      got.push(...batch.all());
    },
  });
  tailer.start();
  await sleep(20);
  await tailer.stop();
  assert.deepEqual(got, lines);
  assert.ok(biggest < 1000, `at most one slice per batch (${biggest} lines)`);
});

test('a missing file is not an error: nothing is delivered', async (t) => {
  const file = await tempFile(t);
  const got: string[] = [];
  const tailer = new CriuLogTailer({ file, intervalMs: 5, onLines: (l) => void got.push(...l.all()) });
  tailer.start();
  await sleep(30);
  await tailer.stop();
  assert.deepEqual(got, []);
});

test('a batch finds its warning and error lines by their bytes, and numbers its lines from the start of the log', async (t) => {
  const file = await tempFile(t);
  const batches: LogLines[] = [];
  const tailer = new CriuLogTailer({ file, intervalMs: 5, maxBytesPerTick: 64, onLines: (b) => void batches.push(b) });
  const lines = [
    '(00.000001) Version: 4.2.1',
    '(00.000002) Warn  (criu/kerndat.c:1): Hardware breakpoints don\u2019t seem to work',
    '(00.000003) page \u20ac 1',
    '(00.000004) Error (criu/cr-dump.c:2): boom \u00e9',
    '',
    '(00.000005) Error (criu/cr-dump.c:3): Warn  (twice on one line)',
    '(00.000006) the end',
  ];
  await writeFile(file, lines.join('\n'));
  tailer.start();
  await tailer.stop();
  assert.ok(batches.length > 1, 'several 64-byte reads');
  const notable = batches.flatMap((b) => b.notable().map((i) => [b.firstLine + i, b.line(i)]));
  const kept = lines.filter((l) => l !== '');
  assert.deepEqual(notable, [
    [1, kept[1]],
    [3, kept[3]],
    [4, kept[4]],
  ]);
  assert.deepEqual(batches.flatMap((b) => b.all()), kept, 'a blank line is not a line; every other one whole');
  assert.deepEqual(batches.map((b) => b.firstLine), batches.map((_, i) => batches.slice(0, i).reduce((n, b) => n + b.count, 0)));
});

test('splitLines: only lines ended by a newline; the rest is handed back; errors only inside lines', () => {
  const { lines, rest } = splitLines(Buffer.from('a Error (x\n\nb\nc Error ('), 10);
  assert.deepEqual(lines.all(), ['a Error (x', 'b']);
  assert.equal(lines.firstLine, 10);
  assert.deepEqual(lines.linesWith(Buffer.from('Error (')), [0], 'the match in the unfinished rest is not a line');
  assert.equal(rest.toString(), 'c Error (');
  assert.equal(splitLines(Buffer.alloc(0)).lines.count, 0);
  assert.deepEqual(splitLines(Buffer.alloc(0)).lines.notable(), []);
});
