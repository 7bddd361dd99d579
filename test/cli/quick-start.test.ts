import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { repoRoot } from '../../src/common/paths.js';
import { requireCriu } from '../helpers/criu.js';
import { startCounter } from '../helpers/targets.js';
import { runCli, spawnCli } from './run.js';
import { startCkptUp } from './server.js';

/** The commands of the README's quick start ("Then, from another terminal:"), comments stripped, in order. */
async function quickStartCommands(): Promise<string[][]> {
  const readme = await readFile(path.join(repoRoot(), 'README.md'), 'utf8');
  const block = /Then, from another terminal:\s*```sh\n([\s\S]*?)```/.exec(readme)?.[1];
  assert.ok(block, 'README has its quick start block');
  return block
    .split('\n')
    .map((l) => l.replace(/#.*$/, '').trim())
    .filter(Boolean)
    .map((l) => {
      const [node, bin, ...args] = l.split(/\s+/);
      assert.deepEqual([node, bin], ['node', 'bin/ckpt.js'], l);
      return args;
    });
}

test('the README quick start, as written, against a real ckpt up', async (t) => {
  if (!(await requireCriu(t))) return;
  const commands = await quickStartCommands();
  assert.deepEqual(
    commands.map((c) => c[0]),
    ['dump', 'checkpoints', 'restore', 'restore', 'watch'],
  );
  const srv = await startCkptUp();
  t.after(() => srv.stop());
  const counter = await startCounter();
  t.after(() => counter.kill());
  let checkpointId = '';
  const fill = (args: string[]) => args.map((a) => (a === '4242' ? String(counter.pid) : a === '<checkpointId>' ? checkpointId : a));
  const ckpt = (args: string[]) => runCli(fill(args), { CKPT_URL: srv.url });
  const [dumpCmd, listCmd, restoreCmd, replaceCmd, watchCmd] = commands as [string[], string[], string[], string[], string[]];

  // dump --pid N --wait: a checkpoint; the process keeps running.
  const dump = await ckpt(dumpCmd);
  assert.equal(dump.code, 0, dump.stderr);
  checkpointId = /\n {2}checkpoint +(\S+)/.exec(dump.stdout)?.[1] ?? '';
  assert.match(checkpointId, /^\d{8}T\d{6}Z-[0-9a-f]{8}$/, dump.stdout);
  const afterDump = counter.read();
  assert.ok(counter.alive());

  const list = await ckpt(listCmd);
  assert.equal(list.code, 0, list.stderr);
  assert.ok(list.stdout.includes(checkpointId), list.stdout);

  // restore --wait while the original runs: fails at once, naming the pid and saying it is the original.
  const refused = await ckpt(restoreCmd);
  assert.equal(refused.code, 1, refused.stdout);
  assert.match(refused.stderr, new RegExp(`^ckpt: restore job \\S+ failed after 1 attempt: pid ${counter.pid} is the checkpointed process itself`, 'm'));
  assert.match(refused.stderr, new RegExp(`--replace`));
  assert.ok(counter.alive(), 'the original was not touched');

  // Let the original count well past the dumped state, then roll it back: the count must go back, then on.
  await until(() => counter.read() > afterDump + 200);
  let previous = counter.read();
  let drop: { from: number; to: number } | undefined;
  const watcher = setInterval(() => {
    let now: number;
    try {
      now = counter.read();
    } catch {
      return; // between the original's end and the restore
    }
    if (now < previous && !drop) drop = { from: previous, to: now };
    previous = now;
  }, 2);
  t.after(() => clearInterval(watcher));
  const replaced = await ckpt(replaceCmd);
  assert.equal(replaced.code, 0, replaced.stderr);
  const jobId = /^restore job (\S+) completed\n {2}restored pid +(\d+)\n/.exec(replaced.stdout);
  assert.ok(jobId, replaced.stdout);
  assert.equal(jobId[2], String(counter.pid), 'the same pid');
  await until(() => drop !== undefined);
  clearInterval(watcher);
  // From where the original was when stopped back to near the dumped count (closer to it than to the stopped one).
  assert.ok(drop!.from > afterDump + 200 && drop!.to - afterDump < (drop!.from - afterDump) / 2, JSON.stringify({ drop, afterDump }));
  await until(() => counter.alive() && counter.read() > drop!.to + 5);
  const log = await ckpt(['logs', jobId[1]!]);
  assert.match(log.stdout, new RegExp(`stopping the original process ${counter.pid} and its tree`));
  assert.match(log.stdout, /Restore finished successfully/);

  // The restored process (a new start time) is still the checkpointed process for this node: rolled back again.
  const again = await ckpt(replaceCmd);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, new RegExp(`^restore job \\S+ completed\n {2}restored pid +${counter.pid}\n`));

  // Beyond the quick start: a restore drill of the same checkpoint, next to the running process; the listing shows it.
  const drill = await ckpt(['checkpoints', 'verify', checkpointId, '--wait']);
  assert.equal(drill.code, 0, drill.stderr);
  assert.match(drill.stdout, new RegExp(`^verify job \\S+ completed\n {2}checkpoint +${checkpointId}\n`));
  const listed = await ckpt(listCmd);
  assert.match(listed.stdout, new RegExp(`^${checkpointId} .* ok \\d`, 'm'));
  assert.ok(counter.alive());

  // watch: the live feed.
  const watch = spawnCli(fill(watchCmd), { CKPT_URL: srv.url });
  let err = '';
  watch.stderr!.setEncoding('utf8').on('data', (s: string) => (err += s));
  watch.stdout!.resume();
  t.after(() => watch.kill('SIGKILL'));
  await until(() => /watching ws:\/\//.test(err));
  watch.kill('SIGINT');
  const [code] = await once(watch, 'exit');
  assert.equal(code, 0, err);
});

async function until(check: () => boolean, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await sleep(20);
  }
}
