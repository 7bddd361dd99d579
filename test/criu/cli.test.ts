// `ckpt criu ...` through the real binary (bin/ckpt.js), its stdout, stderr and exit code.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { requireCriu } from '../helpers/criu.js';
import { waitGone } from '../helpers/targets.js';
import { runCli } from '../cli/run.js';
import { counterFor, tempDir, useCriuService } from './support.js';

const criuService = useCriuService();

/** Runs `ckpt <args>` with `env` added to the environment; returns the lines it printed on stdout and stderr and its exit code. */
async function ckptWith(env: NodeJS.ProcessEnv, ...args: string[]): Promise<{ out: string[]; err: string[]; exitCode: number }> {
  const { code, stdout, stderr } = await runCli(args, env);
  const lines = (text: string) => text.split('\n').filter((l) => l !== '');
  return { out: lines(stdout), err: lines(stderr), exitCode: code ?? -1 };
}

const ckpt = (...args: string[]) => ckptWith({}, ...args);

test('ckpt criu version and check on a given socket', async (t) => {
  const criu = await requireCriu(t);
  if (!criu) return;
  const { socketPath } = await criuService(criu);
  const version = await ckpt('criu', 'version', '--socket', socketPath);
  assert.equal(version.exitCode, 0, version.err.join('\n'));
  assert.equal(version.out[0], `CRIU ${criu.version}`);
  const check = await ckpt('criu', 'check', '--socket', socketPath, '--json');
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
  const dump = await ckpt('criu', 'dump', '--pid', String(counter.pid), '--dir', dir, '--leave-running', '--socket', socketPath);
  assert.equal(dump.exitCode, 0, dump.err.join('\n'));

  // The pid is still taken by the running original.
  const { out, err, exitCode } = await ckpt('criu', 'restore', '--dir', dir, '--socket', socketPath, '--json');
  assert.equal(exitCode, 1);
  assert.equal(err.length, 1);
  assert.match(err[0]!, /^ckpt criu restore: CRIU RESTORE failed: EEXIST .*Can't fork for/);
  const result = JSON.parse(out.at(-1)!);
  assert.equal(result.ok, false);
  assert.equal(result.error.code, 'ECRIU');
  assert.equal(result.error.errnoName, 'EEXIST');
  assert.ok(result.error.logTail.length > 0);

  const bad = await ckpt('criu', 'dump', '--pid', '0', '--dir', dir, '--socket', socketPath);
  assert.equal(bad.exitCode, 1);
  assert.deepEqual(bad.err, ['ckpt criu dump: invalid flags: --pid: must be a positive integer, got "0"']);
});

test('without --socket: a private CRIU service for the command; dump kills, restore brings it back', async (t) => {
  const criu = await requireCriu(t);
  if (!criu) return;
  const counter = await counterFor(t);
  const dir = await tempDir(t);
  // No socket from the caller's environment either.
  const noSocket = { CKPT_CRIU_SOCKET: undefined };
  const dump = await ckptWith(noSocket, 'criu', 'dump', '--pid', String(counter.pid), '--dir', dir);
  assert.equal(dump.exitCode, 0, dump.err.join('\n'));
  await waitGone(counter.pid);
  const restore = await ckptWith(noSocket, 'criu', 'restore', '--dir', dir, '--json');
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
