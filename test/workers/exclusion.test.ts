import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import type { FeedEvent } from '../../src/events/types.js';
import { startCounter } from '../helpers/targets.js';
import { waitUntil } from '../helpers/wait.js';
import { startHarness } from './harness.js';

/** The stream position of the first event of `jobId` matching `pred`. */
function indexOf(events: FeedEvent[], jobId: string, pred: (e: FeedEvent) => boolean): number {
  const i = events.findIndex((e) => e.jobId === jobId && pred(e));
  assert.ok(i >= 0, `no such event for ${jobId}`);
  return i;
}

test('two dumps of one process never run at once, even with worker concurrency 2; ifBusy skip completes as skipped', async (t) => {
  const h = await startHarness(t, { concurrency: 2 });
  if (!h) return;
  await h.startWorker();
  const target = await startCounter(128);
  h.defer(() => target.kill());

  const a = await h.queue.enqueueDump({ target: { pid: target.pid } });
  const b = await h.queue.enqueueDump({ target: { pid: target.pid } });
  const [ja, jb] = [await h.waitFinished(a.jobId), await h.waitFinished(b.jobId)];
  assert.equal(ja.state, 'completed', ja.failedReason);
  assert.equal(jb.state, 'completed', jb.failedReason);

  // The second dump started CRIU only after the first one's checkpoint was made (events are in stream order).
  let events = await h.eventLog.readAfter('0', 100_000);
  const dumping = (id: string) => indexOf(events, id, (e) => e.event === 'job.progress' && e.data.stage === 'dumping');
  const created = (id: string) => indexOf(events, id, (e) => e.event === 'checkpoint.created');
  const [first, second] = dumping(a.jobId) < dumping(b.jobId) ? [a.jobId, b.jobId] : [b.jobId, a.jobId];
  assert.ok(created(first) < dumping(second), 'the second dump waited for the first');
  assert.ok(
    events.some((e) => e.jobId === second && e.event === 'job.progress' && e.data.stage === 'waiting-target'),
    'the second dump reported that it waited',
  );
  assert.equal((await h.catalog.list({ targetKey: `python3-${target.pid}` })).length, 2);

  // While a dump runs, one that says ifBusy 'skip' completes at once as skipped (the other slot is free for it).
  const d = await h.queue.enqueueDump({ target: { pid: target.pid } });
  events = await waitUntil(`dump ${d.jobId} to report 'dumping'`, async () => {
    const of = await h.eventsOf(d.jobId);
    return of.some((e) => e.event === 'job.progress' && e.data.stage === 'dumping') && of;
  }, { pollMs: 5 });
  const c = await h.queue.enqueueDump({ target: { pid: target.pid }, ifBusy: 'skip' });
  const jc = await h.waitFinished(c.jobId);
  assert.equal(jc.state, 'completed', jc.failedReason);
  assert.equal(jc.result!.skipped, true);
  assert.match(jc.result!.reason!, new RegExp(`another dump of python3-${target.pid} is running \\(job ${d.jobId}\\)`));
  assert.equal(jc.result!.checkpointId, undefined);
  assert.equal((await h.waitFinished(d.jobId)).state, 'completed');
  const listed = await h.catalog.list({ targetKey: `python3-${target.pid}` });
  assert.equal(listed.length, 3, 'the skipped job made none');
  assert.deepEqual(
    (await readdir(path.join(h.root, `python3-${target.pid}`))).sort(),
    listed.map((c) => c.id).sort(),
    'and left no attempt folder behind',
  );
});
