// Migrations: two workers with different node names and storage roots on this one machine, a real s3rver bucket, real
// CRIU dumping a real process on node A and restoring it on node B, one BullMQ flow.
import assert from 'node:assert/strict';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { MigrationRefusedError, NodeUnservedError } from '../../src/queue/errors.js';
import { JobQueue } from '../../src/queue/job-queue.js';
import { TestS3 } from '../helpers/s3.js';
import { startCounter } from '../helpers/targets.js';
import { waitUntil } from '../helpers/wait.js';
import { startHarness, type Harness } from '../workers/harness.js';
import { completed, countsPast, startNode, startWithBucket } from './two-nodes.js';

/** A queue as the service makes it: jobs only for live nodes, the bucket configured. */
function serviceQueue(h: Harness, storage: { remote: boolean }): JobQueue {
  const queue = new JobQueue({
    connection: h.redis.url,
    prefix: 'ckpt',
    node: 'node-a',
    eventLog: h.eventLog,
    defaults: h.config.worker,
    checkpoints: h.catalog,
    signer: h.signer,
    requireLiveNode: true,
    remoteStorage: storage.remote,
  });
  h.defer(() => queue.close());
  return queue;
}

/** What the feed said about these jobs, in its order: `<job>:<event>` or `<job>:progress:<stage>` (repeats folded). */
async function feedOf(h: Harness, jobs: Record<string, string>): Promise<string[]> {
  const lines: string[] = [];
  for (const e of await h.eventLog.readAfter('0', 100_000)) {
    const name = e.jobId !== undefined ? jobs[e.jobId] : undefined;
    if (!name) continue;
    const line = e.event === 'job.progress' ? `${name}:progress:${String(e.data.stage)}` : `${name}:${e.event}`;
    if (lines.at(-1) !== line) lines.push(line);
  }
  return lines;
}

test('a process migrates from node A to node B: dumped and stopped on A, uploaded, downloaded and restored on B, counting on from where it was; nothing of it left on A; the feed shows every stage in order', async (t) => {
  const started = await startWithBucket(t);
  if (!started) return;
  const { h, s3, remote } = started;
  // keepLocal true: a migration still drops node A's copy (the checkpoint moved with the process).
  const a = await startNode(h, 'node-a', remote, { keepLocal: true });
  const b = await startNode(h, 'node-b', remote, { keepLocal: true });
  const queue = serviceQueue(h, { remote: true });
  const counter = await startCounter();
  h.defer(() => counter.kill());
  await countsPast(counter, 5);

  // Refused at once: a node no worker serves (the live ones named), the node it is on, and no storage to carry it.
  await assert.rejects(queue.enqueueMigration({ target: { pid: counter.pid }, toNode: 'node-c' }), (err: NodeUnservedError) => {
    assert.ok(err instanceof NodeUnservedError);
    assert.equal(err.field, 'toNode');
    assert.deepEqual(err.liveNodes, ['node-a', 'node-b']);
    assert.match(err.message, /no live worker serves node node-c; live nodes: node-a, node-b/);
    return true;
  });
  await assert.rejects(queue.enqueueMigration({ target: { pid: counter.pid }, toNode: 'node-a' }), (err: MigrationRefusedError) => {
    assert.equal(err.code, 'EMIGRATION_REFUSED');
    assert.equal(err.field, 'toNode');
    assert.match(err.message, /toNode node-a is the node the process runs on/);
    return true;
  });
  await assert.rejects(serviceQueue(h, { remote: false }).enqueueMigration({ target: { pid: counter.pid }, toNode: 'node-b' }), {
    code: 'EMIGRATION_REFUSED',
    message: /nothing can carry the checkpoint to another node: configure storage.remote .* or storage.shared/,
  });
  await assert.rejects(queue.enqueueMigration({ target: { pid: counter.pid }, workload: 'w', toNode: 'node-b' }), {
    code: 'EVALIDATION',
    message: /target: give exactly one of target, workload/,
  });
  assert.equal((await h.eventLog.readAfter('0', 100_000)).filter((e) => e.event === 'job.waiting').length, 0, 'nothing refused was enqueued');

  // Every count the process writes, sampled while it migrates: one that restarted would count down.
  const counts: number[] = [];
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      counts.push(counter.read());
      await sleep(5);
    }
  })();
  const m = await queue.enqueueMigration({ target: { pid: counter.pid }, toNode: 'node-b' });
  assert.deepEqual({ fromNode: m.fromNode, toNode: m.toNode }, { fromNode: 'node-a', toNode: 'node-b' });
  const migrated = await completed(h, m.migrationId);
  const dump = await completed(h, m.dumpJobId);
  sampling = false;
  await sampler;

  assert.equal(dump.node, 'node-a');
  assert.equal(dump.result!.checkpointId, m.checkpointId);
  assert.equal(migrated.node, 'node-b');
  assert.equal(migrated.result!.restoredPid, counter.pid, 'the same process, with its pid');
  const checkpoint = await h.catalog.get(m.checkpointId);
  assert.equal(checkpoint.leaveRunning, false, 'the dump stopped the original');
  assert.equal(checkpoint.location, 'remote', 'in the bucket only, though storage.keepLocal is true');
  assert.equal(await a.store.readManifest(checkpoint.target.key, m.checkpointId), null, "node A's copy is gone");
  assert.ok(await b.store.readManifest(checkpoint.target.key, m.checkpointId), 'node B holds the checked copy it restored from');
  assert.deepEqual(await h.catalog.refs(m.checkpointId), [], 'the migration let go of its checkpoint');
  const last = counts.at(-1)!;
  await countsPast(counter, last);
  assert.ok(
    counts.every((n, i) => i === 0 || n >= counts[i - 1]!),
    `the count never went back (a fresh start would): ${counts.filter((n, i) => i === 0 || n !== counts[i - 1]).join(' ')}`,
  );

  const feed = await feedOf(h, { [m.dumpJobId]: 'dump', [m.migrationId]: 'migrate' });
  const order = [
    'dump:job.waiting',
    'dump:job.active',
    'dump:progress:dumping',
    'dump:job.log',
    'dump:progress:uploading',
    'dump:job.completed',
    'migrate:job.active',
    'migrate:progress:downloading',
    'migrate:progress:verifying',
    'migrate:progress:restoring',
    'migrate:progress:done',
    'migrate:job.completed',
  ];
  const seen = order.map((line) => feed.indexOf(line));
  assert.ok(
    seen.every((at, i) => at >= 0 && (i === 0 || at > seen[i - 1]!)),
    `stages in order: ${order.join(', ')}\nfeed: ${feed.join(', ')}`,
  );
  assert.equal(feed.filter((l) => l === 'migrate:job.completed').length, 1, 'completed once');
  assert.equal(feed.filter((l) => l.endsWith(':job.failed')).length, 0, `no attempt failed: ${feed.join(', ')}`);
});

test('a migration whose dump fails fails visibly, saying why, and the process runs on where it was', async (t) => {
  const started = await startWithBucket(t);
  if (!started) return;
  const { h, s3, remote } = started;
  await startNode(h, 'node-a', remote, { keepLocal: false });
  await startNode(h, 'node-b', remote, { keepLocal: false });
  const queue = serviceQueue(h, { remote: true });
  // The CRIU service itself: the policy refuses to dump it (on node A's worker, not at the API).
  const pid = h.criu.pid!;
  const m = await queue.enqueueMigration({ target: { pid }, toNode: 'node-b' });
  const dump = await h.waitFinished(m.dumpJobId, 60_000);
  assert.equal(dump.state, 'failed');
  const migration = await h.waitFinished(m.migrationId, 60_000);
  assert.equal(migration.state, 'failed', 'BullMQ failed the migration with its dump');
  const failed = (await h.eventsOf(m.migrationId)).filter((e) => e.event === 'job.failed');
  assert.equal(failed.length, 1, 'failed once, for good');
  assert.equal(failed[0]!.data.final, true);
  const why = `its dump on node node-a \\(job ${m.dumpJobId}\\) failed; the process was left running on node node-a: target pid ${pid} refused by policy`;
  assert.match(migration.failedReason!, new RegExp(why));
  assert.match(String(failed[0]!.data.reason), new RegExp(why));
  assert.deepEqual(
    (await h.eventsOf(m.migrationId)).filter((e) => e.event === 'job.progress').map((e) => e.data.stage),
    [],
    'node B never began a restore',
  );
  process.kill(pid, 0);
});

test('a migration whose restore fails says the checkpoint is kept in the bucket and how to retry; the retry finishes the move', async (t) => {
  const started = await startWithBucket(t);
  if (!started) return;
  const { h, s3, remote } = started;
  await startNode(h, 'node-a', remote, { keepLocal: false });
  const b = await startNode(h, 'node-b', remote, { keepLocal: false });
  const queue = serviceQueue(h, { remote: true });
  const counter = await startCounter();
  h.defer(() => counter.kill());
  await countsPast(counter, 5);
  // Node B cannot write its storage root: its download fails on every attempt.
  const rootB = b.config.storage.root;
  await rm(rootB, { recursive: true, force: true });
  await writeFile(rootB, 'not a folder');

  const m = await queue.enqueueMigration({ target: { pid: counter.pid }, toNode: 'node-b' });
  const migration = await h.waitFinished(m.migrationId, 90_000);
  assert.equal(migration.state, 'failed');
  assert.match(
    migration.failedReason!,
    new RegExp(
      `^the process was dumped and stopped on node node-a, its restore on node node-b failed; checkpoint ${m.checkpointId} is kept in the bucket: ` +
        `retry with \`ckpt job retry ${m.migrationId}\``,
    ),
  );
  await waitUntil('the original to be stopped', () => !counter.alive());
  const stoppedAt = counter.read();
  const checkpoint = await h.catalog.get(m.checkpointId);
  assert.equal(checkpoint.location, 'remote');
  assert.ok((await s3.keys()).includes(`ckpt/${checkpoint.target.key}/${m.checkpointId}/manifest.json`), 'safe in the bucket');

  // Node B's root is back: the retry the reason named restores the process there.
  await rm(rootB, { force: true });
  await mkdir(rootB, { mode: 0o700 });
  await queue.retryJob(m.migrationId);
  const retried = await completed(h, m.migrationId);
  assert.equal(retried.result!.restoredPid, counter.pid);
  await countsPast(counter, stoppedAt);
});
