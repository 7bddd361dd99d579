// Retention by age and by total size on real checkpoints made by a schedule (planRetention's rules are in
// retention.test.ts; keepLast, pins and in-use marks end to end in pruning.test.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { foldersOf, setup } from './criu-setup.js';
import { allEvents, waitFor } from './harness.js';

test('retention maxAge and maxTotalBytes on real runs: the oldest go with their files, the newest always stays', async (t) => {
  const s = await setup(t);
  if (!s) return;
  const target = await s.target(16);
  // 1 ms: every checkpoint but the newest is older than that when the next run's pass looks (no clock involved).
  await s.create({ id: 'by-age', cron: '0 0 1 1 *', target: { pid: target.pid }, retention: { maxAge: '1ms' } });
  const limit = 45 * 1024 * 1024; // room for two checkpoints of a 16 MiB target, not three
  await s.create({ id: 'by-size', cron: '0 0 1 1 *', target: { pid: target.pid }, retention: { maxTotalBytes: limit } });
  const scheduler = await s.scheduler();
  const runs = async (id: string, n: number) => {
    const jobIds: string[] = [];
    for (let i = 0; i < n; i++) {
      jobIds.push((await scheduler.trigger(id)).jobId);
      await s.settle(id);
    }
    return jobIds;
  };
  const listed = (id: string) => s.catalog.list({ scheduleId: id, limit: Infinity });
  const pruned = (id: string) => allEvents(s.eventLog, 'checkpoint.pruned', id);

  const byAge = await runs('by-age', 3);
  await waitFor('the two older by-age checkpoints to go', async () => (await pruned('by-age')).length === 2);
  const keptByAge = await listed('by-age');
  assert.deepEqual(keptByAge.map((c) => c.jobId), [byAge[2]], 'only the newest stays');
  assert.deepEqual((await pruned('by-age')).map((e) => e.data.reason), ['maxAge', 'maxAge']);
  assert.deepEqual(await foldersOf(s.root, keptByAge[0]!.target.key), (await listed('by-size')).map((c) => c.id).concat(keptByAge[0]!.id).sort());

  const bySize = await runs('by-size', 4);
  const total = async () => (await listed('by-size')).reduce((sum, c) => sum + c.bytes, 0);
  await waitFor('by-size within its limit', async () => (await total()) <= limit && (await pruned('by-size')).length + (await listed('by-size')).length === 4);
  const keptBySize = await listed('by-size');
  assert.ok(keptBySize.length >= 1 && keptBySize.length < 4, `${keptBySize.length} kept`);
  assert.deepEqual(keptBySize.map((c) => c.jobId), bySize.slice(4 - keptBySize.length).reverse(), 'the newest ones stay');
  for (const e of await pruned('by-size')) assert.equal(e.data.reason, 'maxTotalBytes');
  assert.deepEqual(
    await foldersOf(s.root, keptBySize[0]!.target.key),
    [...keptBySize, ...(await listed('by-age'))].map((c) => c.id).sort(),
    'the files of the pruned ones are gone',
  );
});
