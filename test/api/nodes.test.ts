// Several nodes on one Redis: which node runs a job, what happens when no live worker serves a node, and a storage
// root shared by every node (storage.shared). Real services (API, scheduler, workers with their own CRIU service),
// real processes dumped and restored.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { repoRoot } from '../../src/common/paths.js';
import { startCounter } from '../helpers/targets.js';
import { waitUntil } from '../helpers/wait.js';
import { api, FeedRecorder, jobIn, startServiceUnderTest } from './harness.js';

const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
const COUNTER = [PYTHON, path.join(repoRoot(), 'test/fixtures/stdout-counter.py')];

/** The numbers a stdout-counter workload printed, in order. */
function printed(dir: string): number[] {
  const file = path.join(dir, 'stdout.log');
  const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
  return text.split('\n').filter(Boolean).map(Number);
}

/** A private folder for a second worker's own parts (its CRIU service's runtime dir, its storage root). */
async function scratch(t: TestContext): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ckpt-node-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

test('storage.shared: a workload checkpointed on node A is restored by node B from the same root, in place, and counts on', async (t) => {
  const svc = await startServiceUnderTest(t, { storage: { shared: true } });
  if (!svc) return;
  const mine = await scratch(t);
  const nodeB = await svc.startWorker({ node: 'node-b', criu: { runtimeDir: path.join(mine, 'run') } });
  t.after(() => nodeB.close());
  const feed = await FeedRecorder.open(svc.url);
  t.after(() => feed.close());
  feed.send({ op: 'subscribe', channels: ['job'] });
  await feed.waitFor((m) => m.type === 'subscribed');

  const started = await api(svc.url, 'POST', '/api/v1/workloads', { name: 'counter', command: COUNTER });
  assert.equal(started.status, 201, started.text);
  assert.equal(started.json.node, 'test-node');
  const dir: string = started.json.dir;
  await waitUntil('the counter to print', () => printed(dir).length >= 5);

  const dump = await api(svc.url, 'POST', '/api/v1/dumps', { target: { workload: 'counter' }, leaveRunning: false });
  assert.equal(dump.status, 202, dump.text);
  assert.equal(dump.json.node, 'test-node');
  const dumped = await jobIn(svc.url, dump.json.jobId, undefined, 90_000);
  assert.equal(dumped.state, 'completed', dumped.failedReason);
  const checkpointId: string = dumped.result.checkpointId;
  const checkpoint = (await api(svc.url, 'GET', `/api/v1/checkpoints/${checkpointId}`)).json;
  assert.equal(checkpoint.node, 'test-node', 'made on node A');
  await waitUntil('the dumped workload to be gone', async () => (await api(svc.url, 'GET', '/api/v1/workloads/counter')).json.state === 'exited');
  const atDump = printed(dir).at(-1)!;

  const restore = await api(svc.url, 'POST', '/api/v1/restores', { checkpointId, node: 'node-b' });
  assert.equal(restore.status, 202, restore.text);
  assert.equal(restore.json.node, 'node-b');
  const restored = await jobIn(svc.url, restore.json.jobId, undefined, 90_000);
  assert.equal(restored.state, 'completed', restored.failedReason);
  const [workload] = restored.result.workloads;
  t.after(() => {
    try {
      process.kill(workload.hostPid, 'SIGKILL');
    } catch {
      // gone already
    }
  });
  assert.equal(workload.name, 'counter', 'back under its own name');
  const active = feed.events(restore.json.jobId).filter((e) => e.event === 'job.active');
  assert.deepEqual(active.map((e) => e.data.node), ['node-b'], 'node B ran the restore, nobody else');

  // The counter goes on from where it was dumped, in its own output file.
  const after = await waitUntil('the restored counter to count', () => {
    const numbers = printed(dir);
    return numbers.length > numbers.indexOf(atDump) + 5 ? numbers.slice(numbers.indexOf(atDump) + 1) : undefined;
  });
  assert.equal(after[0], atDump + 1, `the counter went on from ${atDump}: ${after.slice(0, 5).join(' ')}`);
  assert.ok(after.every((n, i) => i === 0 || n === after[i - 1]! + 1), 'and kept counting, one by one');

  // Nothing was copied: node B restored from the checkpoint's own folder under the shared root (CRIU's log is there),
  // and the catalog still lists that one checkpoint, made on node A.
  const folder = path.join(svc.config.storage.root, checkpoint.target.key, checkpointId);
  assert.ok(existsSync(path.join(folder, `restore-${restore.json.jobId}.log`)), `node B's restore log in ${folder}`);
  const list = (await api(svc.url, 'GET', '/api/v1/checkpoints')).json.items;
  assert.deepEqual(list.map((c: any) => [c.id, c.node]), [[checkpointId, 'test-node']]);

  // And migrated back to node A in one request: dumped and stopped on node B, restored by node A from the shared root.
  const refusedHere = await api(svc.url, 'POST', '/api/v1/migrations', { workload: 'counter', fromNode: 'node-b', toNode: 'node-b' });
  assert.equal(refusedHere.status, 422, refusedHere.text);
  assert.equal(refusedHere.json.code, 'EMIGRATION_REFUSED');
  const migration = await api(svc.url, 'POST', '/api/v1/migrations', { workload: 'counter', fromNode: 'node-b', toNode: 'test-node' });
  assert.equal(migration.status, 202, migration.text);
  const { migrationId, dumpJobId } = migration.json;
  const migrated = await jobIn(svc.url, migrationId, undefined, 90_000);
  assert.equal(migrated.state, 'completed', migrated.failedReason);
  assert.equal(migrated.node, 'test-node');
  assert.equal((await jobIn(svc.url, dumpJobId, undefined, 90_000)).node, 'node-b');
  const back = migrated.result.workloads[0];
  t.after(() => {
    try {
      process.kill(back.hostPid, 'SIGKILL');
    } catch {
      // gone already
    }
  });
  assert.equal(back.name, 'counter');
  assert.notEqual(back.hostPid, workload.hostPid, "node B's process is gone, node A runs a new one");
  const shown = (await api(svc.url, 'GET', '/api/v1/workloads/counter')).json;
  assert.equal(shown.node, 'test-node');
  const order = feed.events().filter((e) => e.jobId === dumpJobId || e.jobId === migrationId).map((e) => `${e.jobId === dumpJobId ? 'dump' : 'migrate'}:${e.event}`);
  const firstOfMigrate = order.findIndex((l) => l.startsWith('migrate:') && l !== 'migrate:job.waiting');
  assert.ok(firstOfMigrate > order.indexOf('dump:job.completed') && order.indexOf('dump:job.completed') >= 0, `the restore after the dump: ${order.join(', ')}`);
  const atMigrated = printed(dir).length;
  const resumed = await waitUntil('the migrated counter to count', () => (printed(dir).length > atMigrated + 5 ? printed(dir) : undefined));
  assert.ok(resumed.every((n, i) => i === 0 || n === resumed[i - 1]! + 1), `counted on, one by one, across both moves: ${resumed.slice(-10).join(' ')}`);
});

test('a job for a node no live worker serves is refused (422 listing the live nodes): dumps, restores, batches, drills and schedule ticks', async (t) => {
  const svc = await startServiceUnderTest(t);
  if (!svc) return;
  const mine = await scratch(t);
  // Node B has a root of its own (no shared storage): its checkpoints exist only there. (Next to node A's, so both
  // find the deployment's job key where they look for it by default.)
  const rootB = path.join(path.dirname(svc.config.storage.root), 'checkpoints-node-b');
  const nodeB = await svc.startWorker({ node: 'node-b', criu: { runtimeDir: path.join(mine, 'run') }, storage: { root: rootB } });
  let nodeBStopped = false;
  t.after(() => (nodeBStopped ? undefined : nodeB.close()));
  const target = await startCounter();
  t.after(() => target.kill());
  const feed = await FeedRecorder.open(svc.url);
  t.after(() => feed.close());
  feed.send({ op: 'subscribe', channels: ['job', 'schedule'] });
  await feed.waitFor((m) => m.type === 'subscribed');

  const onB = await api(svc.url, 'POST', '/api/v1/dumps', { target: { pid: target.pid }, node: 'node-b' });
  assert.equal(onB.status, 202, onB.text);
  const dumped = await jobIn(svc.url, onB.json.jobId, undefined, 90_000);
  assert.equal(dumped.state, 'completed', dumped.failedReason);
  const checkpointId: string = dumped.result.checkpointId;

  const nowhere = await api(svc.url, 'POST', '/api/v1/dumps', { target: { pid: target.pid }, node: 'node-x' });
  assert.equal(nowhere.status, 422, nowhere.text);
  assert.equal(nowhere.json.code, 'ENODE_UNSERVED');
  assert.deepEqual(nowhere.json.liveNodes, ['node-b', 'test-node']);
  assert.deepEqual(nowhere.json.issues, [{ field: 'node', reason: 'no live worker serves node node-x; live nodes: node-b, test-node' }]);

  await nodeB.close();
  nodeBStopped = true;
  const refused = (res: { status: number; json: any; text: string }, field: string, names: RegExp) => {
    assert.equal(res.status, 422, res.text);
    assert.equal(res.json.code, 'ENODE_UNSERVED');
    assert.deepEqual(res.json.liveNodes, ['test-node']);
    assert.equal(res.json.issues[0].field, field);
    assert.match(res.json.message, names);
  };
  refused(await api(svc.url, 'POST', '/api/v1/dumps', { target: { pid: target.pid }, node: 'node-b' }), 'node', /no live worker serves node node-b/);
  // The checkpoint's only copy is on node B: refused naming it, wherever the restore is asked to run.
  const onlyOnB = new RegExp(`checkpoint ${checkpointId} lives only on node node-b, which no live worker serves`);
  refused(await api(svc.url, 'POST', '/api/v1/restores', { checkpointId }), 'checkpointId', onlyOnB);
  refused(await api(svc.url, 'POST', '/api/v1/restores', { checkpointId, node: 'test-node' }), 'checkpointId', onlyOnB);
  refused(await api(svc.url, 'POST', '/api/v1/restores/batch', { checkpointIds: [checkpointId] }), 'checkpointId', onlyOnB);
  refused(await api(svc.url, 'POST', `/api/v1/checkpoints/${checkpointId}/verify`), 'checkpointId', onlyOnB);
  refused(await api(svc.url, 'POST', '/api/v1/migrations', { target: { pid: target.pid }, toNode: 'node-b' }), 'toNode', /no live worker serves node node-b; live nodes: test-node/);

  // A schedule of node B: each tick fails visibly (no job is queued for nobody), and so does a trigger.
  const created = await api(svc.url, 'POST', '/api/v1/schedules', { id: 'on-b', cron: '* * * * * *', target: { pid: target.pid }, node: 'node-b' });
  assert.equal(created.status, 201, created.text);
  const skipped = await feed.waitFor((m) => m.type === 'event' && m.event === 'schedule.skipped' && m.scheduleId === 'on-b', 30_000);
  assert.match(skipped.data.reason, /no live worker serves node node-b/);
  const trigger = await api(svc.url, 'POST', '/api/v1/schedules/on-b/trigger');
  assert.equal(trigger.status, 422, trigger.text);
  assert.equal(trigger.json.code, 'ENODE_UNSERVED');
  const schedule = (await api(svc.url, 'GET', '/api/v1/schedules/on-b')).json;
  assert.ok(schedule.state.consecutiveFailures >= 1, `the failed ticks count: ${JSON.stringify(schedule.state)}`);
  const nodeBJobs = (await api(svc.url, 'GET', '/api/v1/jobs?limit=1000')).json.items.filter((j: any) => j.node === 'node-b');
  assert.deepEqual(nodeBJobs.map((j: any) => j.id), [onB.json.jobId], 'nothing was queued for node B once it was gone');
});
