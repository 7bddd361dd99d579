import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { repoRoot } from '../../src/common/paths.js';
import { requireCriu } from '../helpers/criu.js';
import { runCli, spawnCli } from './run.js';
import { startCkptUp } from './server.js';

const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
const COUNTER = path.join(repoRoot(), 'test/fixtures/stdout-counter.py');

const numbers = (text: string) => text.split('\n').filter(Boolean).map(Number);

test('ckpt run, workloads, logs --workload, dump --workload --stop, restore --replicas, workloads stop', async (t) => {
  if (!(await requireCriu(t))) return;
  const srv = await startCkptUp();
  const env = { CKPT_URL: srv.url };
  const ckpt = (...args: string[]) => runCli(args, env);
  t.after(async () => {
    const list = await ckpt('workloads', '--json');
    for (const w of JSON.parse(list.stdout).items) await ckpt('workloads', 'stop', w.name);
    await srv.stop();
  });

  const run = await ckpt('run', '--name', 'cli-counter', '--', PYTHON, COUNTER);
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stdout, /^workload cli-counter running: host pid \d+ on node /);

  // logs --workload --follow streams the output as it grows, until interrupted.
  const follow = spawnCli(['logs', '--workload', 'cli-counter', '--follow'], env);
  let followed = '';
  follow.stdout!.setEncoding('utf8').on('data', (c: string) => (followed += c));
  const deadline = Date.now() + 30_000;
  while (numbers(followed).length < 20) {
    assert.ok(Date.now() < deadline, `logs --follow printed ${JSON.stringify(followed)}`);
    await sleep(25);
  }
  follow.kill('SIGINT');
  assert.deepEqual(numbers(followed).slice(0, 20), Array.from({ length: 20 }, (_, i) => i + 1));

  const ls = JSON.parse((await ckpt('workloads', '--json')).stdout).items;
  assert.deepEqual(ls.map((w: any) => [w.name, w.state]), [['cli-counter', 'running']]);
  const table = await ckpt('workloads');
  assert.match(table.stdout, /cli-counter\s+running/);

  const dump = await ckpt('dump', '--workload', 'cli-counter', '--stop', '--wait', '--json');
  assert.equal(dump.code, 0, dump.stderr);
  const checkpointId = JSON.parse(dump.stdout).result.checkpointId;
  const atDump = numbers((await ckpt('logs', '--workload', 'cli-counter')).stdout).at(-1)!;

  const restore = await ckpt('restore', checkpointId, '--replicas', '3', '--wait', '--json');
  assert.equal(restore.code, 0, restore.stderr);
  const copies = JSON.parse(restore.stdout).result.workloads.map((w: any) => w.name).sort();
  assert.deepEqual(copies, ['cli-counter-1', 'cli-counter-2', 'cli-counter-3']);
  for (const name of copies) {
    let out: number[] = [];
    const until = Date.now() + 30_000;
    while (out.length < 3) {
      assert.ok(Date.now() < until, `${name} printed nothing`);
      out = numbers((await ckpt('logs', '--workload', name)).stdout);
    }
    assert.deepEqual(out.slice(0, 3), [atDump + 1, atDump + 2, atDump + 3], `${name} counts on from ${atDump}`);
  }

  // Without --json: the workload by name (one copy of a stopped workload comes back as itself), and the jobs table too.
  const another = await ckpt('restore', checkpointId, '--wait');
  assert.equal(another.code, 0, another.stderr);
  const [, hostPid] = /^ {2}workload +cli-counter, host pid (\d+)$/m.exec(another.stdout) ?? [];
  assert.ok(hostPid, `the copy named:\n${another.stdout}`);
  assert.match((await ckpt('jobs', '--type', 'restore')).stdout, new RegExp(`restored cli-counter \\(pid ${hostPid}\\)`));

  const stop = await ckpt('workloads', 'stop', 'cli-counter-2');
  assert.equal(stop.code, 0, stop.stderr);
  assert.equal(stop.stdout.trim(), 'workload cli-counter-2: stopped');
  const missing = await ckpt('workloads', 'show', 'cli-counter-2');
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /workload cli-counter-2 not found/);
  const usage = await ckpt('logs');
  assert.equal(usage.code, 2, usage.stderr);
});
