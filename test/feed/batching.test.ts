import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { after, before, test } from 'node:test';
import { EventId } from '../../src/events/event-id.js';
import { MAX_BATCH_FRAME_BYTES } from '../../src/feed/protocol.js';
import { FeedHarness, ids, jobEvent, tailedTo, type EventMsg, type Msg } from './harness.js';

let h: FeedHarness;
before(async () => {
  h = await FeedHarness.start();
});
after(async () => {
  await h?.stop();
});

/** Every frame after `subscribed` up to the one that carries event `lastId`. */
async function framesUntil(c: Awaited<ReturnType<FeedHarness['client']>>, lastId: string): Promise<Msg[]> {
  const frames: Msg[] = [];
  for (const deadline = Date.now() + 60_000; ; ) {
    if (Date.now() > deadline) throw new Error(`event ${lastId} not received within 60 s; got ${JSON.stringify(frames.slice(-3))}`);
    const m = await c.next();
    frames.push(m);
    const last = m.type === 'events' ? (m.events as EventMsg[]).at(-1)! : m;
    if (last.id === lastId) return frames;
  }
}

test('with batch: true, events ready together arrive in one events frame; without, one frame each; the same events in order', async () => {
  const log = h.eventLog();
  const { url } = await h.feed({ eventLog: log });
  const batching = await h.client(url);
  const plain = await h.client(url);
  const batchingJobA = await h.client(url);
  for (const c of [batching, plain, batchingJobA]) await c.expect('hello');
  assert.equal((await batching.subscribe({ channels: ['job'], batch: true })).batch, true);
  assert.equal((await plain.subscribe({ channels: ['job'] })).batch, false);
  await batchingJobA.subscribe({ channels: ['job'], filter: { jobId: 'A' }, batch: true });

  const inputs = Array.from({ length: 20 }, (_, i) => jobEvent(i % 2 ? 'A' : 'B', 'job.progress', { percent: i }));
  const published = await h.publishTogether(log, inputs);
  const last = published.at(-1)!;

  const plainFrames = await framesUntil(plain, last);
  assert.equal(plainFrames.length, 20, 'one frame per event without batch');
  assert.ok(plainFrames.every((m) => m.type === 'event'));
  assert.deepEqual(ids(plainFrames as EventMsg[]), published);

  const batchFrames = await framesUntil(batching, last);
  assert.equal(batchFrames.length, 1, `one frame for the 20 events, got ${batchFrames.map((m) => m.type).join(', ')}`);
  assert.equal(batchFrames[0]!.type, 'events');
  // Each element is exactly the event message a plain client gets.
  assert.deepEqual(batchFrames[0]!.events, plainFrames);

  const lastA = published.filter((_, i) => i % 2).at(-1)!;
  const aFrames = await framesUntil(batchingJobA, lastA);
  assert.equal(aFrames.length, 1);
  assert.deepEqual(ids(aFrames[0]!.events as EventMsg[]), published.filter((_, i) => i % 2), 'the filter applies inside a batch');
});

test('an events frame is cut at MAX_BATCH_FRAME_BYTES, every event still there once and in order', async () => {
  const log = h.eventLog();
  const { url } = await h.feed({ eventLog: log, options: { maxBufferedBytes: 64 * 1024 * 1024 } });
  const c = await h.client(url);
  await c.expect('hello');
  await c.subscribe({ channels: ['job'], batch: true });
  const pad = 'x'.repeat(4000);
  const count = Math.ceil((3 * MAX_BATCH_FRAME_BYTES) / pad.length);
  const published = await h.publishTogether(log, Array.from({ length: count }, (_, i) => jobEvent('big', 'job.log', { lines: [pad], i })));
  const frames = await framesUntil(c, published.at(-1)!);
  assert.ok(frames.length >= 3, `${count} events of 4 KB need at least 3 frames, got ${frames.length}`);
  for (const f of frames) assert.ok(Buffer.byteLength(JSON.stringify(f)) <= MAX_BATCH_FRAME_BYTES, 'each frame within the cut');
  assert.deepEqual(ids(frames.flatMap((f) => (f.type === 'events' ? (f.events as EventMsg[]) : [f as EventMsg]))), published);
});

test('a batching client that falls behind: progress coalesced, the backlog flushed in events frames, order kept', async (t) => {
  const log = h.eventLog();
  const { url, feed } = await h.feed({ eventLog: log, options: { maxBufferedBytes: 512 * 1024 * 1024, coalesceAboveBytes: 64 * 1024 } });
  const c = await h.client(url);
  await c.expect('hello');
  await c.subscribe({ channels: ['job'], batch: true });
  const socket = (c.ws as unknown as { _socket: Socket })._socket;
  socket.pause();

  const pad = 'p'.repeat(8000);
  const steps = 1000;
  for (let start = 0; start < steps; start += 250) {
    await Promise.all(
      Array.from({ length: 250 }, (_, i) => log.publish(jobEvent((start + i) % 2 ? 'odd' : 'even', 'job.progress', { step: start + i, pad }))),
    );
    await log.publish(jobEvent('even', 'job.log', { lines: [`after ${start + 250}`] }));
  }
  const done = await log.publish(jobEvent('even', 'job.completed'));
  await tailedTo(feed, done.id);
  socket.resume();

  const frames = await framesUntil(c, done.id);
  const got = frames.flatMap((f) => (f.type === 'events' ? (f.events as EventMsg[]) : f.type === 'event' ? [f as EventMsg] : []));
  const progress = got.filter((e) => e.event === 'job.progress');
  assert.ok(progress.length < steps, `coalesced: ${progress.length} of ${steps}`);
  assert.ok(frames.some((f) => f.type === 'events'), 'the backlog left in events frames');
  t.diagnostic(`${progress.length} of ${steps} progress events delivered in ${frames.length} frames`);
  for (let i = 1; i < got.length; i++) assert.ok(EventId.compare(got[i - 1]!.id, got[i]!.id) < 0, 'ids only grow');
  // Nothing but progress is dropped, and the newest progress of each job is there.
  const stored = await log.readAfter('0', 100_000);
  assert.deepEqual(
    ids(got.filter((e) => e.event !== 'job.progress')),
    ids(stored.filter((e) => e.event !== 'job.progress')),
  );
  for (const job of ['odd', 'even']) {
    const lastStored = stored.filter((e) => e.jobId === job && e.event === 'job.progress').at(-1)!;
    assert.equal(progress.filter((e) => e.jobId === job).at(-1)!.id, lastStored.id);
  }
  assert.equal(c.ws.readyState, 1);
});

test('batch: true with since: the replay, then live events, each exactly once and in order', async () => {
  const log = h.eventLog();
  const { url, feed } = await h.feed({ eventLog: log });
  const before = [];
  for (let i = 0; i < 30; i++) before.push(await log.publish(jobEvent('A', 'job.log', { lines: [`old ${i}`] })));
  await tailedTo(feed, before.at(-1)!.id);
  const c = await h.client(url);
  await c.expect('hello');
  await c.subscribe({ channels: ['job'], since: before[9]!.id, batch: true });
  const replayed = await c.eventsUntil(before.at(-1)!.id);
  assert.deepEqual(ids(replayed), ids(before.slice(10)));
  await c.expect('live');
  const live = await h.publishTogether(log, Array.from({ length: 5 }, (_, i) => jobEvent('A', 'job.log', { lines: [`new ${i}`] })));
  assert.deepEqual(ids(await c.eventsUntil(live.at(-1)!)), live);
});
