import assert from 'node:assert/strict';
import { test } from 'node:test';
import { foldersOf, setup } from './criu-setup.js';
import { allEvents, waitFor } from './harness.js';

test('retention keepLast 2 after 5 runs: 2 in the catalog, 2 folders on disk; pinned and in-use ones survive', async (t) => {
  const s = await setup(t);
  if (!s) return;
  const target = await s.target(16);
  // A schedule that does not tick during the test: its runs are trigger-now runs, one after another.
  await s.create({ id: 'keep2', cron: '0 0 1 1 *', target: { pid: target.pid }, retention: { keepLast: 2 } });
  const logs: string[] = [];
  const scheduler = await s.scheduler(logs);
  const pruned = () => allEvents(s.eventLog, 'checkpoint.pruned', 'keep2');
  const run = async () => {
    const { jobId } = await scheduler.trigger('keep2');
    await s.settle('keep2');
    return jobId;
  };

  const jobIds: string[] = [];
  for (let i = 0; i < 5; i++) jobIds.push(await run());
  await waitFor('3 prunes', async () => (await pruned()).length === 3 || null);
  let listed = await s.catalog.list({ scheduleId: 'keep2', limit: Infinity });
  assert.deepEqual(listed.map((c) => c.jobId), [jobIds[4], jobIds[3]], 'the newest two remain');
  const key = listed[0]!.target.key;
  assert.deepEqual(await foldersOf(s.root, key), listed.map((c) => c.id).sort());
  for (const e of await pruned()) {
    assert.equal(e.data.reason, 'keepLast');
    assert.ok((e.data.bytes as number) > 16 * 1024 * 1024);
  }
  const prunedIds = (await pruned()).map((e) => e.data.checkpointId);
  for (const id of prunedIds) {
    assert.ok(logs.some((l) => new RegExp(`^pruned checkpoint ${id} of schedule keep2 \\(keepLast 2\\): freed \\d+ bytes$`).test(l)), `log line for ${id}`);
  }

  // Pin the older of the two, and let a (pretend) waiting restore hold the newer: three more runs remove neither.
  // The third run's pass must remove the run before it (beyond the newest two): that removal is the proof the pass
  // happened, and the pass removes oldest first, so the in-use one would have gone before it.
  const [inUse, pinned] = listed;
  await s.catalog.pin(pinned!.id);
  await s.catalog.acquireRef(inUse!.id, 'restore-job-1');
  jobIds.push(await run(), await run(), await run());
  await waitFor('the pass after the third run to prune one', async () => (await pruned()).length === 4 || null);
  listed = await s.catalog.list({ scheduleId: 'keep2', limit: Infinity });
  assert.deepEqual(
    listed.map((c) => c.jobId),
    [jobIds[7], jobIds[6], jobIds[4], jobIds[3]],
    'pinned one kept, in-use one kept, and the newest two',
  );
  assert.deepEqual((await pruned()).slice(3).map((e) => e.data.reason), ['keepLast']);
  assert.equal((await foldersOf(s.root, key)).length, 4);

  // The restore is done: the next run removes it (beyond the newest two unpinned), the pinned one stays.
  await s.catalog.releaseRef(inUse!.id, 'restore-job-1');
  jobIds.push(await run());
  // That pass removes two, oldest first: the formerly in-use one, then the run after it.
  await waitFor('the formerly in-use one and the next to go', async () => (await pruned()).length === 6 || null);
  assert.equal((await pruned())[4]!.data.checkpointId, inUse!.id);
  listed = await s.catalog.list({ scheduleId: 'keep2', limit: Infinity });
  assert.deepEqual(listed.map((c) => c.jobId), [jobIds[8], jobIds[7], jobIds[3]]);
  assert.equal(listed[2]!.pinned, true);
  assert.deepEqual(await foldersOf(s.root, key), listed.map((c) => c.id).sort());
});
