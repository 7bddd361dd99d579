// `ckpt migrate` through the real binary against two real nodes (services, workers, CRIU, one s3rver bucket): a
// workload moves from node A to node B and counts on there; refusals exit non-zero with the reason on stderr.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { repoRoot } from '../../src/common/paths.js';
import { api } from '../api/harness.js';
import { waitUntil } from '../helpers/wait.js';
import { startTwoServices } from '../storage/two-services.js';
import { runCli } from './run.js';

const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
const COUNTER = [PYTHON, path.join(repoRoot(), 'test/fixtures/stdout-counter.py')];

/** The numbers a stdout-counter workload printed, in order. */
function printed(dir: string): number[] {
  const file = path.join(dir, 'stdout.log');
  return (existsSync(file) ? readFileSync(file, 'utf8') : '').split('\n').filter(Boolean).map(Number);
}

test("ckpt migrate --workload --wait, through node B's API without --from: moved from the workload's node A, it counts on on B, exit 0; refusals exit 1 with the reason on stderr", async (t) => {
  const nodes = await startTwoServices(t);
  if (!nodes) return;
  const { a, bUrl } = nodes;
  const started = await api(a.url, 'POST', '/api/v1/workloads', { name: 'mover', command: COUNTER });
  assert.equal(started.status, 201, started.text);
  // Killed by pid after the test: the services (and their APIs) are stopped by then. Node A's one is gone once moved.
  const pids: number[] = [started.json.hostPid];
  t.after(() => {
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
  });
  const dir: string = started.json.dir;
  await waitUntil('the workload to print', () => printed(dir).length >= 5);

  // Asked of node B's API: the workload registry, not the API, says where the process runs (node A).
  const ckptOnB = (...args: string[]) => runCli(args, { CKPT_URL: bUrl }, 120_000);
  const moved = await ckptOnB('migrate', '--workload', 'mover', '--to', 'node-b', '--wait');
  assert.equal(moved.code, 0, `stdout: ${moved.stdout}\nstderr: ${moved.stderr}`);
  assert.match(moved.stderr, /^queued dump job \S+: \{"workload":"mover"\} on test-node$/m, "the dump on the workload's node");
  assert.match(moved.stderr, /^migrate \{"workload":"mover"\} to node-b: completed$/m);
  const shown = (await api(bUrl, 'GET', '/api/v1/workloads/mover')).json;
  assert.deepEqual([shown.node, shown.state], ['node-b', 'running']);
  pids.push(shown.hostPid);
  const atMove = printed(dir).length;
  const after = await waitUntil('the moved workload to count on', () => (printed(dir).length > atMove + 5 ? printed(dir) : undefined));
  assert.ok(after.every((n, i) => i === 0 || n === after[i - 1]! + 1), `counted on, one by one: ${after.slice(-10).join(' ')}`);

  // Refused at once (422), exit 1 with the reason: it runs on node-b now, so node-b is where it is (asked of
  // node A's API this time); a node no worker serves; a workload nobody knows.
  const ckptOnA = (...args: string[]) => runCli(args, { CKPT_URL: a.url });
  const refusals: [string[], RegExp][] = [
    [['--workload', 'mover', '--to', 'node-b'], /toNode node-b is the node the process runs on/],
    [['--workload', 'mover', '--to', 'node-c', '--wait'], /no live worker serves node node-c; live nodes: node-b, test-node/],
    [['--workload', 'nobody', '--to', 'node-b', '--wait'], /workload nobody is unknown: no node runs a workload of that name/],
  ];
  for (const [args, reason] of refusals) {
    const refused = await ckptOnA('migrate', ...args);
    assert.equal(refused.code, 1, `ckpt migrate ${args.join(' ')}: ${refused.stdout}`);
    assert.match(refused.stderr, reason);
  }
  assert.equal((await api(bUrl, 'GET', '/api/v1/workloads/mover')).json.state, 'running', 'the refusals left it running on node B');
});
