// Issue 11.6: storage.retention prunes the checkpoints no schedule made (manual dumps), per target, through the real
// service with real CRIU dumps: the newest keepLast stay with their files, a pinned one and a schedule's own are never
// touched, and the pruned ones are announced. Byte sizes in the config take units.
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { configSchema } from '../../src/config/schema.js';
import { startCounter } from '../helpers/targets.js';
import { waitUntil } from '../helpers/wait.js';
import { api, FeedRecorder, startServiceUnderTest } from './harness.js';

test('storage.retention keepLast: manual dumps of a target beyond the newest 2 are pruned with their files; pinned and scheduled ones stay', async (t) => {
  const svc = await startServiceUnderTest(t, { storage: { retention: { keepLast: 2 } } });
  if (!svc) return;
  const target = await startCounter(0);
  t.after(() => target.kill());
  const feed = await FeedRecorder.subscribed(svc.url, ['job', 'checkpoint']);
  t.after(() => feed.close());

  const finished = async (jobId: string): Promise<string> => {
    const done = await feed.waitFor((m) => m.type === 'event' && m.jobId === jobId && (m.event === 'job.completed' || (m.event === 'job.failed' && m.data.final)));
    assert.equal(done.event, 'job.completed', JSON.stringify(done.data));
    return done.data.result.checkpointId as string;
  };
  const dump = async () => {
    const res = await api(svc.url, 'POST', '/api/v1/dumps', { target: { pid: target.pid } });
    assert.equal(res.status, 202, res.text);
    return finished(res.json.jobId);
  };

  const schedule = await api(svc.url, 'POST', '/api/v1/schedules', { id: 'yearly', cron: '0 0 1 1 *', target: { pid: target.pid } });
  assert.equal(schedule.status, 201, schedule.text);
  const scheduled = await finished((await api(svc.url, 'POST', '/api/v1/schedules/yearly/trigger')).json.jobId);
  const pinned = await dump();
  assert.equal((await api(svc.url, 'POST', `/api/v1/checkpoints/${pinned}/pin`)).status, 200);
  const manual = [];
  for (let i = 0; i < 4; i++) manual.push(await dump());

  // Each manual checkpoint is followed by a prune of its target: after the fourth, the two oldest unpinned are gone.
  const pruned = await waitUntil('two checkpoint.pruned events', () => {
    const events = feed.messages.filter((m) => m.type === 'event' && m.event === 'checkpoint.pruned');
    return events.length >= 2 && events;
  }, { timeoutMs: 60_000, pollMs: 50 });
  assert.deepEqual(pruned.map((e) => e.data.checkpointId).sort(), manual.slice(0, 2).sort());
  for (const e of pruned) assert.equal(e.data.reason, 'keepLast');

  const listed = await api(svc.url, 'GET', `/api/v1/checkpoints?limit=100`);
  const kept = listed.json.items.map((c: { id: string }) => c.id).sort();
  assert.deepEqual(kept, [scheduled, pinned, ...manual.slice(2)].sort(), 'the pinned, the scheduled and the newest two stay');
  const key = listed.json.items[0].target.key;
  assert.deepEqual((await readdir(path.join(svc.config.storage.root, key))).filter((n) => !n.startsWith('.')).sort(), kept, 'the pruned folders are gone');
  assert.equal(feed.messages.filter((m) => m.type === 'event' && m.event === 'checkpoint.pruned').length, 2, 'nothing else pruned');
});

test('byte sizes in the config take units, and a bad one names its key', () => {
  const config = configSchema.parse({ storage: { minFreeBytes: '2G', retention: { maxTotalBytes: '512MiB' } }, api: { bodyLimitBytes: '64K' } });
  assert.equal(config.storage.minFreeBytes, 2 * 1024 ** 3);
  assert.equal(config.storage.retention?.maxTotalBytes, 512 * 1024 ** 2);
  assert.equal(config.api.bodyLimitBytes, 64 * 1024);
  const bad = configSchema.safeParse({ storage: { minFreeBytes: '2X' } });
  assert.ok(!bad.success);
  assert.deepEqual(bad.error.issues[0]!.path, ['storage', 'minFreeBytes']);
  assert.match(bad.error.issues[0]!.message, /not a size: "2X"/);
});
