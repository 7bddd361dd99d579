import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { Redis } from 'ioredis';
import { repoRoot } from '../../src/common/paths.js';
import { api, FeedRecorder, jobIn, startServiceUnderTest } from '../api/harness.js';
import { startCounter } from '../helpers/targets.js';
import { waitUntil } from '../helpers/wait.js';

const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
const COUNTER = [PYTHON, path.join(repoRoot(), 'test/fixtures/stdout-counter.py')];

/** The numbers a stdout-counter printed, in order. */
function printed(dir: string): number[] {
  const text = existsSync(path.join(dir, 'stdout.log')) ? readFileSync(path.join(dir, 'stdout.log'), 'utf8') : '';
  return text.split('\n').filter(Boolean).map(Number);
}

/** The pid namespace ids of a host pid, from /proc/<pid>/status ("NSpid: <host> <inner>"). */
function nsPids(pid: number): number[] {
  const line = /^NSpid:\s+(.*)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]!;
  return line.trim().split(/\s+/).map(Number);
}

/** Stops every workload the test left running (through the API, which also removes their folders). */
function stopAllAfter(t: TestContext, url: () => string | undefined): void {
  t.after(async () => {
    const u = url();
    if (!u) return;
    const list = (await api(u, 'GET', '/api/v1/workloads')).json?.items ?? [];
    for (const w of list) await api(u, 'DELETE', `/api/v1/workloads/${w.name}`);
  });
}

test('a workload dumped and stopped comes back as three copies at once, each counting on from the dumped value into its own output; the checkpoint then restores once more in place', async (t) => {
  let url: string | undefined;
  stopAllAfter(t, () => url);
  const svc = await startServiceUnderTest(t, { worker: { concurrency: 4, backoff: { baseDelayMs: 200, maxDelayMs: 1000 }, attempts: 3 } });
  if (!svc) return;
  url = svc.url;
  const feed = await FeedRecorder.open(url);
  t.after(() => feed.close());
  feed.send({ op: 'subscribe', channels: ['job', 'workload', 'checkpoint'] });
  await feed.waitFor((m) => m.type === 'subscribed');

  const started = await api(url, 'POST', '/api/v1/workloads', { name: 'counter', command: COUNTER });
  assert.equal(started.status, 201, started.text);
  const original = started.json;
  assert.equal(original.state, 'running');
  assert.deepEqual(nsPids(original.hostPid), [original.hostPid, 1], 'the workload is the init of its own pid namespace');
  await waitUntil('the counter to print', () => printed(original.dir).length >= 5 || undefined);

  const dump = await api(url, 'POST', '/api/v1/dumps', { target: { workload: 'counter' }, leaveRunning: false });
  assert.equal(dump.status, 202, dump.text);
  const dumped = await jobIn(url, dump.json.jobId);
  assert.equal(dumped.state, 'completed', dumped.failedReason);
  const checkpointId = dumped.result.checkpointId;
  const checkpoint = (await api(url, 'GET', `/api/v1/checkpoints/${checkpointId}`)).json;
  assert.equal(checkpoint.target.key, 'workload.counter');
  assert.equal(checkpoint.target.workload.name, 'counter');

  // The dump stopped it: its last number is the dumped state, and the watcher says it ended.
  const exited = await feed.waitFor((m) => m.type === 'event' && m.event === 'workload.exited' && m.data.name === 'counter');
  assert.equal(exited.data.signal, 'SIGKILL');
  const atDump = printed(original.dir).at(-1)!;
  assert.equal((await api(url, 'GET', '/api/v1/workloads/counter')).json.state, 'exited');

  const restore = await api(url, 'POST', '/api/v1/restores', { checkpointId, replicas: 3 });
  assert.equal(restore.status, 202, restore.text);
  const restored = await jobIn(url, restore.json.jobId);
  assert.equal(restored.state, 'completed', restored.failedReason);
  const copies: Array<{ name: string; hostPid: number }> = restored.result.workloads;
  assert.deepEqual(copies.map((c) => c.name).sort(), ['counter-1', 'counter-2', 'counter-3']);

  const dirs = new Set<string>();
  for (const copy of copies) {
    const w: any = (await api(url, 'GET', `/api/v1/workloads/${copy.name}`)).json;
    assert.equal(w.state, 'running', `${copy.name} runs`);
    assert.equal(w.hostPid, copy.hostPid);
    assert.deepEqual(w.origin, { kind: 'restore', checkpointId, jobId: restore.json.jobId, of: 'counter' });
    assert.deepEqual(nsPids(copy.hostPid).slice(1), [1], `${copy.name} is pid 1 of its own namespace`);
    dirs.add(w.dir);
    const numbers = await waitUntil(`${copy.name} to count`, () => (printed(w.dir).length >= 5 ? printed(w.dir) : undefined));
    // Its own output file, starting right after the dumped value and going on one by one.
    assert.deepEqual(numbers.slice(0, 5), [1, 2, 3, 4, 5].map((i) => atDump + i), `${copy.name} counts on from ${atDump}`);
  }
  assert.equal(dirs.size, 3, 'each copy has its own folder');
  assert.equal(new Set(copies.map((c) => c.hostPid)).size, 3);
  // Nothing was written into the original's output by the copies.
  assert.equal(printed(original.dir).at(-1), atDump);
  const restoredEvents = feed.events().filter((m) => m.event === 'workload.restored' && m.data.checkpointId === checkpointId);
  assert.equal(restoredEvents.length, 3);

  // The same checkpoint once more, with the workload itself not running: it comes back under its own name.
  const again = await api(url, 'POST', '/api/v1/restores', { checkpointId });
  const back = await jobIn(url, again.json.jobId);
  assert.equal(back.state, 'completed', back.failedReason);
  assert.deepEqual(back.result.workloads.map((w: any) => w.name), ['counter']);
  const counter = (await api(url, 'GET', '/api/v1/workloads/counter')).json;
  assert.equal(counter.state, 'running');
  assert.notEqual(counter.hostPid, original.hostPid);
  assert.equal(counter.newestCheckpoint.id, checkpointId);
  const resumed = await waitUntil('counter to count again', () => {
    const all = printed(original.dir);
    return all.length >= atDump + 3 ? all : undefined;
  });
  assert.deepEqual(resumed.slice(atDump - 1, atDump + 2), [atDump, atDump + 1, atDump + 2], 'in place: counts on in its own file');

  // Stopping a copy: SIGTERM reaches the command through the namespace's init; the workload is forgotten.
  const stop = await api(url, 'DELETE', '/api/v1/workloads/counter-1');
  assert.equal(stop.status, 200, stop.text);
  assert.equal(stop.json.outcome, 'stopped');
  assert.equal((await api(url, 'GET', '/api/v1/workloads/counter-1')).status, 404);
  const stoppedPid = copies.find((c) => c.name === 'counter-1')!.hostPid;
  const stat = existsSync(`/proc/${stoppedPid}/stat`) ? readFileSync(`/proc/${stoppedPid}/stat`, 'utf8') : '';
  assert.ok(!stat || /\) [ZX] /.test(stat), `counter-1 (pid ${stoppedPid}) no longer runs: ${stat}`);
});

test('a batch restores 8 copies of one workload checkpoint, 4 at a time, each running in its own namespace', async (t) => {
  let url: string | undefined;
  stopAllAfter(t, () => url);
  const svc = await startServiceUnderTest(t, { worker: { concurrency: 8, backoff: { baseDelayMs: 200, maxDelayMs: 1000 }, attempts: 3 } });
  if (!svc) return;
  url = svc.url;
  const started = await api(url, 'POST', '/api/v1/workloads', { name: 'warm', command: COUNTER });
  assert.equal(started.status, 201, started.text);
  await waitUntil('the counter to print', () => printed(started.json.dir).length >= 3 || undefined);
  const dump = await api(url, 'POST', '/api/v1/dumps', { target: { workload: 'warm' } });
  const dumped = await jobIn(url, dump.json.jobId);
  assert.equal(dumped.state, 'completed', dumped.failedReason);
  const checkpointId = dumped.result.checkpointId;

  const batch = await api(url, 'POST', '/api/v1/restores/batch', { checkpointIds: [checkpointId], replicas: { [checkpointId]: 8 }, concurrency: 4 });
  assert.equal(batch.status, 202, batch.text);
  assert.equal(batch.json.jobIds.length, 8);
  const parent = await jobIn(url, batch.json.batchId);
  assert.equal(parent.state, 'completed', parent.failedReason);
  assert.equal(parent.result.succeeded, 8, JSON.stringify(parent.result.items));
  const list = (await api(url, 'GET', '/api/v1/workloads')).json.items;
  const copies = list.filter((w: any) => w.origin.kind === 'restore');
  assert.equal(copies.length, 8);
  assert.ok(copies.every((w: any) => w.state === 'running' && w.name.startsWith('warm-')));
  assert.equal(new Set(copies.map((w: any) => w.dir)).size, 8);
  // The original was left running by the dump and is untouched.
  assert.equal(list.find((w: any) => w.name === 'warm').state, 'running');
});

test('a schedule targeting {workload} keeps making checkpoints after the workload came back under a new host pid', async (t) => {
  let url: string | undefined;
  stopAllAfter(t, () => url);
  const svc = await startServiceUnderTest(t);
  if (!svc) return;
  url = svc.url;
  const started = await api(url, 'POST', '/api/v1/workloads', { name: 'sched', command: COUNTER });
  assert.equal(started.status, 201, started.text);
  const made = await api(url, 'POST', '/api/v1/schedules', { id: 'wl', cron: '* * * * * *', target: { workload: 'sched' } });
  assert.equal(made.status, 201, made.text);
  const checkpointsOf = async () => (await api(url!, 'GET', '/api/v1/checkpoints?target=workload.sched')).json.items as any[];
  const first = await waitUntil('a scheduled checkpoint', async () => (await checkpointsOf())[0], { timeoutMs: 30_000 });
  assert.equal(first.target.pid, started.json.hostPid);

  // Stop it with a dump, bring it back: a new host pid, the same name.
  await api(url, 'POST', '/api/v1/schedules/wl/pause');
  const dump = await api(url, 'POST', '/api/v1/dumps', { target: { workload: 'sched' }, leaveRunning: false });
  const dumped = await jobIn(url, dump.json.jobId);
  assert.equal(dumped.state, 'completed', dumped.failedReason);
  const restore = await api(url, 'POST', '/api/v1/restores', { checkpointId: dumped.result.checkpointId });
  const restored = await jobIn(url, restore.json.jobId);
  assert.equal(restored.state, 'completed', restored.failedReason);
  const hostPid = restored.result.workloads[0].hostPid;
  assert.notEqual(hostPid, started.json.hostPid);

  await api(url, 'POST', '/api/v1/schedules/wl/resume');
  const after = await waitUntil('a scheduled checkpoint of the restored workload', async () =>
    (await checkpointsOf()).find((c) => c.target.pid === hostPid && c.scheduleId === 'wl'),
    { timeoutMs: 30_000 },
  );
  assert.equal(after.target.key, 'workload.sched');
  await api(url, 'POST', '/api/v1/schedules/wl/pause');
});

test('bad workload requests name the field; replicas of a plain process are refused', async (t) => {
  const svc = await startServiceUnderTest(t);
  if (!svc) return;
  const url = svc.url;
  const empty = await api(url, 'POST', '/api/v1/workloads', { command: [] });
  assert.equal(empty.status, 400);
  assert.match(empty.json.issues[0].field, /^body\.command/);
  const badName = await api(url, 'POST', '/api/v1/workloads', { name: '../etc', command: ['true'] });
  assert.equal(badName.status, 400);
  assert.equal(badName.json.issues[0].field, 'body.name');
  const otherNode = await api(url, 'POST', '/api/v1/workloads', { command: ['sleep', '1'], node: 'elsewhere' });
  assert.equal(otherNode.status, 422, otherNode.text);
  const gone = await api(url, 'POST', '/api/v1/workloads', { name: 'nothing', command: ['/nonexistent/program'] });
  assert.equal(gone.status, 422, gone.text);
  assert.match(gone.json.message, /did not keep running/);
  assert.equal((await api(url, 'GET', '/api/v1/workloads/nothing')).status, 404, 'a failed start leaves no workload');
  const unknown = await api(url, 'POST', '/api/v1/dumps', { target: { workload: 'nope' } });
  assert.equal(unknown.status, 422);
  assert.match(unknown.json.message, /workload nope not found/);

  // A plain process's checkpoint needs its own pids: one copy at a time.
  const plain = await startCounter();
  t.after(() => plain.kill());
  const dump = await api(url, 'POST', '/api/v1/dumps', { target: { pid: plain.pid } });
  const dumped = await jobIn(url, dump.json.jobId);
  assert.equal(dumped.state, 'completed', dumped.failedReason);
  const copies = await api(url, 'POST', '/api/v1/restores', { checkpointId: dumped.result.checkpointId, replicas: 2 });
  assert.equal(copies.status, 400, copies.text);
  assert.equal(copies.json.issues[0].field, 'replicas');
  assert.match(copies.json.issues[0].reason, /plain process/);
  const batch = await api(url, 'POST', '/api/v1/restores/batch', {
    checkpointIds: [dumped.result.checkpointId],
    replicas: { [dumped.result.checkpointId]: 2 },
  });
  assert.equal(batch.status, 400, batch.text);
  assert.equal(batch.json.issues[0].field, `replicas.${dumped.result.checkpointId}`);
});

test('a workload record planted in Redis steers nothing: DELETE neither removes the folder it names nor signals a process that is no workload', async (t) => {
  const svc = await startServiceUnderTest(t);
  if (!svc) return;
  const victimDir = await mkdtemp(path.join(os.tmpdir(), 'ckpt-victim-'));
  t.after(() => rm(victimDir, { recursive: true, force: true }));
  await writeFile(path.join(victimDir, 'keep'), 'precious');
  const victim = await startCounter(); // a plain process, not the init of a pid namespace
  t.after(() => victim.kill());
  const startTime = Number(readFileSync(`/proc/${victim.pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[19]);
  const redis = new Redis(svc.redis.url);
  t.after(() => redis.disconnect());
  const prefix = svc.config.redis.prefix;
  const planted = {
    name: 'planted', node: svc.config.node, command: ['x'], cwd: victimDir, envNames: [], dir: victimDir,
    hostPid: victim.pid, startTime, startedAt: new Date().toISOString(), origin: { kind: 'run' },
  };
  await redis.set(`${prefix}:workloads:planted`, JSON.stringify(planted));
  await redis.sadd(`${prefix}:workloads`, 'planted');

  const res = await api(svc.url, 'DELETE', '/api/v1/workloads/planted');
  assert.equal(res.status, 422, res.text);
  assert.match(res.json.message, new RegExp(`pid ${victim.pid} is not the init of a pid namespace`));
  assert.ok(victim.alive(), 'the process the record named was not signalled');
  assert.equal(readFileSync(path.join(victimDir, 'keep'), 'utf8'), 'precious', 'the folder the record named is untouched');
});
