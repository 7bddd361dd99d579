// Dump and restore real processes through a real `criu service`.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { closeSync, copyFileSync, existsSync, openSync, readdirSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { repoRoot } from '../../src/common/paths.js';
import {
  CriuError,
  CriuStatsError,
  isRetryableCriuError,
  missingFromDump,
  readDumpStats,
  readRestoreStats,
  type NotifyScript,
  type StageEvent,
} from '../../src/criu/index.js';
import { requireCriu } from '../helpers/criu.js';
import { isAlive, killAndReap, waitGone } from '../helpers/targets.js';
import { counterFor, tempDir, useCriuService, waitUntil } from './support.js';

const criuService = useCriuService();

/** Samples the counter a few times over ~300 ms. */
async function samples(read: () => number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < 6; i++) {
    out.push(read());
    await sleep(60);
  }
  return out;
}

/** The CRIU service, a counter and a folder holding a leaveRunning dump of it; null when CRIU is missing (skipped). */
async function dumpedCounter(t: TestContext) {
  const criu = await requireCriu(t);
  if (!criu) return null;
  const { client } = await criuService(criu);
  const counter = await counterFor(t);
  const dir = await tempDir(t);
  await client.dump({ pid: counter.pid, imagesDir: dir, leaveRunning: true });
  return { client, counter, dir };
}

test('a counter dumped without leaveRunning is gone; restored, the same pid counts on from the dumped value', async (t) => {
  const criu = await requireCriu(t);
  if (!criu) return;
  const { client } = await criuService(criu);
  const counter = await counterFor(t);
  const dir = await tempDir(t);
  await waitUntil(() => counter.read() >= 10, 'the counter reached 10');

  const dumpedAtLeast = counter.read();
  const dump = await client.dump({ pid: counter.pid, imagesDir: dir, logFile: 'dump.log', logLevel: 4 });
  assert.equal(dump.restored, false);
  assert.equal(counter.alive(), false, 'a dump without leaveRunning kills the tree');
  // The killed task lingers as a zombie for a moment: a restore before it is reaped fails with EEXIST.
  await waitGone(counter.pid);

  const restored = await client.restore({ imagesDir: dir, logFile: 'restore.log', logLevel: 4 });
  assert.equal(restored.pid, counter.pid);
  assert.equal(counter.alive(), true);
  const after = await samples(counter.read);
  assert.ok(
    after.every((n) => n >= dumpedAtLeast),
    `counter went on from ${dumpedAtLeast}, not from 0: ${after.join(', ')}`,
  );
  await waitUntil(() => counter.read() > Math.max(...after), 'the restored counter kept counting');

  const dumpStats = await readDumpStats(dir);
  assert.ok(dumpStats.pagesWritten > 0, `pagesWritten ${dumpStats.pagesWritten}`);
  assert.ok(dumpStats.frozenTimeUs > 0);
  const restoreStats = await readRestoreStats(dir);
  assert.ok(restoreStats.restoreTimeUs > 0);
  assert.equal(restoreStats.pagesRestored, dumpStats.pagesWritten);
});

test('leaveRunning keeps the process running and counting', async (t) => {
  const dumped = await dumpedCounter(t);
  if (!dumped) return;
  const { counter, dir } = dumped;
  assert.equal(counter.alive(), true);
  const n = counter.read();
  await waitUntil(() => counter.read() > n, 'the counter counted on after the dump');
  assert.ok((await readDumpStats(dir)).pagesWritten > 0);
});

/** tree.py: a parent and its child, each counting into its own file. */
async function startTree(t: import('node:test').TestContext) {
  const dir = await tempDir(t, 'ckpt-criu-tree-');
  const base = path.join(dir, 'tree');
  const out = openSync(path.join(dir, 'out.log'), 'a');
  const child = spawn('python3', [path.join(repoRoot(), 'test/fixtures/tree.py'), base], {
    detached: true,
    stdio: ['ignore', out, out],
  });
  closeSync(out);
  child.unref();
  await waitUntil(() => existsSync(base) && existsSync(base + '.child'), 'the tree started');
  const [parent, kid] = readFileSync(base, 'utf8').split(' ').map(Number) as [number, number];
  t.after(async () => {
    await killAndReap(kid);
    await killAndReap(parent);
  });
  const read = (who: 'parent' | 'child') => () => Number(readFileSync(`${base}.${who}`, 'utf8'));
  return { parent, child: kid, readParent: read('parent'), readChild: read('child') };
}

function parentOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
}

test('a two-process tree dumps and restores as a tree', async (t) => {
  const criu = await requireCriu(t);
  if (!criu) return;
  const { client } = await criuService(criu);
  const tree = await startTree(t);
  const dir = await tempDir(t);
  await waitUntil(() => tree.readChild() >= 5 && tree.readParent() >= 5, 'both processes counted');

  await client.dump({ pid: tree.parent, imagesDir: dir, logFile: 'dump.log' });
  await waitGone(tree.child);
  await waitGone(tree.parent);
  const restored = await client.restore({ imagesDir: dir, logFile: 'restore.log' });

  assert.equal(restored.pid, tree.parent);
  assert.ok(isAlive(tree.parent) && isAlive(tree.child), 'both pids are alive');
  assert.equal(parentOf(tree.child), tree.parent, 'the child is still the child of the parent');
  const [p, c] = [tree.readParent(), tree.readChild()];
  await waitUntil(() => tree.readParent() > p && tree.readChild() > c, 'both restored processes count on');
});

/**
 * Stages CRIU reports, in its order, as seen with CRIU 4.1 and 4.2 here. The namespace stages come only when CRIU
 * sets up namespaces; network-lock / network-unlock (tcpEstablished) are not used by these tests.
 */
const DUMP_ORDER: NotifyScript[] = ['pre-dump', 'query-ext-files', 'post-dump'];
const RESTORE_ORDER: NotifyScript[] = [
  'pre-restore',
  'setup-namespaces',
  'post-setup-namespaces',
  'post-restore',
  'pre-resume',
  'post-resume',
];

function assertStages(events: StageEvent[], order: NotifyScript[], required: NotifyScript[]) {
  const stages = events.map((e) => e.stage);
  const positions = stages.map((s) => order.indexOf(s));
  assert.ok(!positions.includes(-1), `unexpected stage in ${stages.join(', ')}`);
  assert.ok(
    positions.every((p, i) => i === 0 || p > positions[i - 1]!),
    `stages in CRIU's order, each once: ${stages.join(', ')}`,
  );
  for (const r of required) assert.ok(stages.includes(r), `${r} reported: ${stages.join(', ')}`);
  assert.ok(events.every((e, i) => i === 0 || e.at >= events[i - 1]!.at));
}

test("NOTIFY stages arrive in CRIU's order for dump and restore", async (t) => {
  const criu = await requireCriu(t);
  if (!criu) return;
  const { client } = await criuService(criu);
  const counter = await counterFor(t);
  const dir = await tempDir(t);

  const dumpStages: StageEvent[] = [];
  await client.dump({ pid: counter.pid, imagesDir: dir }, { notify: { onStage: (e) => void dumpStages.push(e) } });
  t.diagnostic(`dump stages: ${dumpStages.map((e) => e.stage).join(', ')}`);
  assertStages(dumpStages, DUMP_ORDER, ['pre-dump', 'post-dump']);

  await waitGone(counter.pid);
  const restoreStages: StageEvent[] = [];
  // An async handler: CRIU waits for it before going on.
  const restored = await client.restore(
    { imagesDir: dir },
    { notify: { onStage: async (e) => void restoreStages.push(e) } },
  );
  t.diagnostic(`restore stages: ${restoreStages.map((e) => `${e.stage}${e.pid ? `(${e.pid})` : ''}`).join(', ')}`);
  assertStages(restoreStages, RESTORE_ORDER, ['pre-restore', 'post-restore', 'pre-resume', 'post-resume']);
  assert.equal(restoreStages.find((e) => e.stage === 'post-restore')?.pid, restored.pid);
});

test('restore while the pid is taken: CriuError EEXIST, retryable, with the log line that says so', async (t) => {
  const dumped = await dumpedCounter(t);
  if (!dumped) return;
  const { client, counter, dir } = dumped;

  const err = await client.restore({ imagesDir: dir, logFile: 'restore.log' }).catch((e: unknown) => e);
  assert.ok(err instanceof CriuError, String(err));
  assert.equal(err.requestType, 'RESTORE');
  assert.equal(err.errno, 17);
  assert.equal(err.errnoName, 'EEXIST');
  assert.equal(isRetryableCriuError(err), true);
  assert.ok(err.logTail.some((l) => l.includes(`Can't fork for ${counter.pid}`)), err.logTail.join('\n'));
  assert.match(err.message, new RegExp(`EEXIST.*Can't fork for ${counter.pid}`));
  assert.equal(counter.alive(), true);
});

test('stats files: a truncated or foreign file is a clear CriuStatsError', async (t) => {
  const dumped = await dumpedCounter(t);
  if (!dumped) return;
  const { dir } = dumped;

  const broken = await tempDir(t, 'ckpt-criu-stats-');
  const file = path.join(broken, 'stats-dump');
  copyFileSync(path.join(dir, 'stats-dump'), file);
  truncateSync(file, readFileSync(file).length - 3);
  await assert.rejects(readDumpStats(broken), (e: unknown) => {
    assert.ok(e instanceof CriuStatsError);
    assert.match(e.message, /stats-dump: truncated: the entry says \d+ bytes, \d+ are there/);
    return true;
  });
  truncateSync(file, 6);
  await assert.rejects(readDumpStats(broken), /truncated: 6 bytes/);
  writeFileSync(file, Buffer.alloc(32, 7));
  await assert.rejects(readDumpStats(broken), /not a CRIU stats file/);
  await assert.rejects(readRestoreStats(broken), /stats-restore: does not exist/);
});

test("a finished dump's folder, as a restart could leave it: nothing missing when whole; an empty image, short page images or a torn stats-dump named", async (t) => {
  const dumped = await dumpedCounter(t);
  if (!dumped) return;
  const { counter, dir } = dumped;
  assert.equal(await missingFromDump(dir), null);

  const copyOf = async () => {
    const copy = await tempDir(t, 'ckpt-criu-torn-');
    for (const name of readdirSync(dir)) copyFileSync(path.join(dir, name), path.join(copy, name));
    return copy;
  };
  const pages = readdirSync(dir).find((n) => /^pages-\d+\.img$/.test(n))!;
  const { pagesWritten } = await readDumpStats(dir);
  assert.equal(statSync(path.join(dir, pages)).size, pagesWritten * 4096, 'page images hold what stats-dump counts');
  const short = await copyOf();
  truncateSync(path.join(short, pages), (pagesWritten - 1) * 4096);
  assert.equal(await missingFromDump(short), `page images hold ${(pagesWritten - 1) * 4096} bytes, CRIU wrote ${pagesWritten} pages of 4096`);
  const empty = await copyOf();
  truncateSync(path.join(empty, 'core-' + counter.pid + '.img'), 0);
  assert.equal(await missingFromDump(empty), `empty: core-${counter.pid}.img`);
  const torn = await copyOf();
  truncateSync(path.join(torn, 'stats-dump'), 0);
  assert.match((await missingFromDump(torn)) ?? '', /stats-dump: truncated: 0 bytes/);
});
