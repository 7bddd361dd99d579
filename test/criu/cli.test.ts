// `ckpt criu ...` run in-process through commander, output captured.
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { Command } from 'commander';
import { registerCriuCommands } from '../../src/cli/commands/criu.js';
import { requireCriu } from '../helpers/criu.js';
import { waitGone } from '../helpers/targets.js';
import { counterFor, tempDir, useCriuService } from './support.js';

const criuService = useCriuService();

/** Runs `ckpt <args>`; returns what it printed and the exit code it set. */
async function ckpt(t: TestContext, ...args: string[]): Promise<{ out: string[]; err: string[]; exitCode: number }> {
  const out: string[] = [];
  const err: string[] = [];
  const log = t.mock.method(console, 'log', (line: string) => void out.push(line));
  const error = t.mock.method(console, 'error', (line: string) => void err.push(line));
  const program = new Command('ckpt').exitOverride();
  registerCriuCommands(program);
  try {
    await program.parseAsync(args, { from: 'user' });
  } finally {
    log.mock.restore();
    error.mock.restore();
  }
  const exitCode = Number(process.exitCode ?? 0);
  process.exitCode = undefined;
  return { out, err, exitCode };
}

test('ckpt criu version and check on a given socket', async (t) => {
  const criu = await requireCriu(t);
  if (!criu) return;
  const { socketPath } = await criuService(criu);
  const version = await ckpt(t, 'criu', 'version', '--socket', socketPath);
  assert.equal(version.exitCode, 0, version.err.join('\n'));
  assert.equal(version.out[0], `CRIU ${criu.version}`);
  const check = await ckpt(t, 'criu', 'check', '--socket', socketPath, '--json');
  assert.equal(check.exitCode, 0, check.err.join('\n'));
  const result = JSON.parse(check.out[0]!);
  assert.equal(result.ok, true);
  assert.equal(typeof result.features.memTrack, 'boolean');
});

test('ckpt criu dump --leave-running prints the stages as they come, then the result and the stats', async (t) => {
  const criu = await requireCriu(t);
  if (!criu) return;
  const { socketPath } = await criuService(criu);
  const counter = await counterFor(t);
  const dir = await tempDir(t);
  const { out, err, exitCode } = await ckpt(
    t,
    'criu', 'dump', '--pid', String(counter.pid), '--dir', dir, '--leave-running', '--log-level', '2', '--socket', socketPath,
  );
  assert.equal(exitCode, 0, err.join('\n'));
  assert.match(out[0]!, /^ {2}pre-dump +\+\d+ ms$/);
  assert.deepEqual(
    out.filter((l) => l.startsWith('  ')).map((l) => l.trim().split(/\s+/)[0]),
    ['pre-dump', 'query-ext-files', 'post-dump'],
  );
  assert.ok(out.includes(`dumped pid ${counter.pid} into ${dir} (left running)`), out.join('\n'));
  const stats = out.find((l) => l.startsWith('frozen '));
  const m = /^frozen [\d.]+ ms, pages written (\d+) \((\d+) bytes, [\d.]+ MiB\)$/.exec(stats ?? '');
  assert.ok(m, stats);
  assert.ok(Number(m[1]) > 0);
  assert.equal(Number(m[2]), Number(m[1]) * 4096);
  assert.equal(counter.alive(), true);
});

test('ckpt criu restore failure: one line on stderr, exit 1, --json error object', async (t) => {
  const criu = await requireCriu(t);
  if (!criu) return;
  const { socketPath } = await criuService(criu);
  const counter = await counterFor(t);
  const dir = await tempDir(t);
  const dump = await ckpt(t, 'criu', 'dump', '--pid', String(counter.pid), '--dir', dir, '--leave-running', '--socket', socketPath);
  assert.equal(dump.exitCode, 0, dump.err.join('\n'));

  // The pid is still taken by the running original.
  const { out, err, exitCode } = await ckpt(t, 'criu', 'restore', '--dir', dir, '--socket', socketPath, '--json');
  assert.equal(exitCode, 1);
  assert.equal(err.length, 1);
  assert.match(err[0]!, /^ckpt criu restore: CRIU RESTORE failed: EEXIST .*Can't fork for/);
  const result = JSON.parse(out.at(-1)!);
  assert.equal(result.ok, false);
  assert.equal(result.error.code, 'ECRIU');
  assert.equal(result.error.errnoName, 'EEXIST');
  assert.ok(result.error.logTail.length > 0);

  const bad = await ckpt(t, 'criu', 'dump', '--pid', '0', '--dir', dir, '--socket', socketPath);
  assert.equal(bad.exitCode, 1);
  assert.deepEqual(bad.err, ['ckpt criu dump: invalid flags: --pid: must be a positive integer, got "0"']);
});

test('without --socket: a private CRIU service for the command; dump kills, restore brings it back', async (t) => {
  const criu = await requireCriu(t);
  if (!criu) return;
  const counter = await counterFor(t);
  const dir = await tempDir(t);
  const saved = process.env.CKPT_CRIU_SOCKET;
  delete process.env.CKPT_CRIU_SOCKET;
  t.after(() => {
    if (saved !== undefined) process.env.CKPT_CRIU_SOCKET = saved;
  });

  const dump = await ckpt(t, 'criu', 'dump', '--pid', String(counter.pid), '--dir', dir);
  assert.equal(dump.exitCode, 0, dump.err.join('\n'));
  await waitGone(counter.pid);
  const restore = await ckpt(t, 'criu', 'restore', '--dir', dir, '--json');
  assert.equal(restore.exitCode, 0, restore.err.join('\n'));
  const result = JSON.parse(restore.out.at(-1)!);
  assert.equal(result.ok, true);
  assert.equal(result.pid, counter.pid);
  assert.deepEqual(
    result.stages.map((s: { stage: string }) => s.stage).filter((s: string) => !s.includes('namespaces')),
    ['pre-restore', 'post-restore', 'pre-resume', 'post-resume'],
  );
  assert.ok(result.stats.pagesRestored > 0);
  assert.equal(result.stats.bytesRestored, result.stats.pagesRestored * 4096);
  assert.equal(counter.alive(), true);
});
