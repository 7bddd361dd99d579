import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CriuLogDigest } from '../../workers/bounded-criu-log.js';
import { LogLines, splitLines } from '../../workers/criu-log-tailer.js';

/** A CRIU-like log of `n` lines: a warning at line 2, errors at 5000 and at n - 3. */
function criuLog(n: number): string[] {
  return Array.from({ length: n }, (_, i) => {
    if (i === 2) return `(00.${i}) Warn  (criu/kerndat.c:1): Hardware breakpoints don't seem to work`;
    if (i === 5000 || i === n - 3) return `(00.${i}) Error (criu/cr-dump.c:2): boom ${i}`;
    return `(00.${i}) page ${i} \u20ac`;
  });
}

/** The lines in batches of `size`, numbered from the start as the tailer numbers them. */
function batches(lines: string[], size: number): LogLines[] {
  const out: LogLines[] = [];
  for (let i = 0; i < lines.length; i += size) out.push(splitLines(Buffer.from(lines.slice(i, i + size).join('\n') + '\n'), i).lines);
  return out;
}

test('the digest keeps the warning and error lines before the tail, the last N lines, and says how many are left out and where', () => {
  const lines = criuLog(20_000);
  const digest = new CriuLogDigest(200);
  for (const b of batches(lines, 3000)) digest.add(b);
  const kept = digest.summary('the whole log: over there');
  assert.deepEqual(kept.slice(0, 2), [lines[2], lines[5000]], 'warning and error lines first, in order');
  assert.deepEqual(kept.slice(2, -1), lines.slice(-200), 'then the last 200 lines, exactly');
  assert.ok(kept.slice(2, -1).includes(lines.at(-3)!), 'an error inside the tail is there once');
  assert.equal(kept.at(-1), "ckpt: 19798 of CRIU's 20000 log lines are left out here (kept: its warning and error lines, and its last 200); the whole log: over there");
});

test('the digest turns into strings only the lines it may keep (a flood costs newline counting, not decoding)', (t) => {
  const lines = criuLog(20_000);
  const input = batches(lines, 5000);
  const line = t.mock.method(LogLines.prototype, 'line');
  const digest = new CriuLogDigest(200);
  for (const b of input) digest.add(b);
  // Per batch: its last 200 lines and its warning/error lines.
  assert.ok(line.mock.callCount() <= 4 * 200 + 3, `${line.mock.callCount()} lines decoded of 20000`);
});

test('a short log is kept whole; a tail read from the file replaces the kept one and counts from the end', () => {
  const lines = criuLog(50);
  const digest = new CriuLogDigest(200);
  for (const b of batches(lines, 7)) digest.add(b);
  assert.deepEqual(digest.summary('here').slice(0, -1), lines);
  assert.match(digest.summary('here').at(-1)!, /^ckpt: 0 of CRIU's 50 log lines are left out here/);
  const fromFile = lines.slice(-10);
  const failed = digest.summary('gone', fromFile);
  assert.deepEqual(failed, [lines[2], ...fromFile, "ckpt: 39 of CRIU's 50 log lines are left out here (kept: its warning and error lines, and its last 10); gone"]);
});

test('with no tail lines configured, only the warning and error lines are kept', () => {
  const lines = criuLog(10);
  const digest = new CriuLogDigest(0);
  for (const b of batches(lines, 4)) digest.add(b);
  assert.deepEqual(digest.summary('x'), [lines[2], lines[7], "ckpt: 8 of CRIU's 10 log lines are left out here (kept: its warning and error lines, and its last 0); x"]);
});
