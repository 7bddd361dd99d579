import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { EventLog } from '../../src/events/event-log.js';
import type { EventData, FeedEvent } from '../../src/events/types.js';
import { FeedHarness, ids, jobEvent, tailedTo, type EventMsg } from './harness.js';

let h: FeedHarness;
before(async () => {
  h = await FeedHarness.start();
});
after(async () => {
  await h?.stop();
});

const CREATED: EventData['checkpoint.created'] = { checkpointId: 'c1', node: 'n', host: 'h', pid: 1, bytes: 1, durationMs: 1 };

test('hello, then subscribed events arrive in order, exactly once, and filters select', async () => {
  const log = h.eventLog();
  const { url } = await h.feed({ eventLog: log });
  const all = await h.client(url);
  const jobA = await h.client(url);
  const restores = await h.client(url);
  const schedules = await h.client(url);
  for (const c of [all, jobA, restores, schedules]) {
    const hello = await c.expect('hello');
    assert.equal(hello.version, 1);
    assert.equal(hello.lastEventId, '0-0');
  }
  await all.subscribe({ channels: ['job', 'schedule', 'checkpoint'] });
  await jobA.subscribe({ channels: ['job'], filter: { jobId: 'A' } });
  await restores.subscribe({ channels: ['job'], filter: { type: 'restore' } });
  await schedules.subscribe({ channels: ['schedule'] });

  const published = [];
  for (let i = 0; i < 30; i++) {
    published.push(await log.publish(jobEvent('A', 'job.progress', { percent: i })));
    published.push(await log.publish(jobEvent('B', 'job.log', { lines: [`line ${i}`] }, 'restore')));
    if (i % 10 === 0) published.push(await log.publish({ event: 'schedule.fired', scheduleId: 's1', data: { tickAt: 0, jobId: 'j', lagMs: 3 } }));
  }
  const last = await log.publish({ event: 'checkpoint.created', target: 'pid:A', data: CREATED });
  published.push(last);

  const got = await all.eventsUntil(last.id);
  assert.deepEqual(ids(got), ids(published));
  assert.deepEqual(got[0], {
    type: 'event',
    id: published[0]!.id,
    event: 'job.progress',
    ts: published[0]!.ts,
    jobId: 'A',
    jobType: 'dump',
    target: 'pid:A',
    data: { percent: 0 },
  });

  const lastA = published.filter((e) => e.jobId === 'A').at(-1)!;
  assert.deepEqual(ids(await jobA.eventsUntil(lastA.id)), ids(published.filter((e) => e.jobId === 'A')));
  const lastB = published.filter((e) => e.jobType === 'restore').at(-1)!;
  assert.deepEqual(ids(await restores.eventsUntil(lastB.id)), ids(published.filter((e) => e.jobType === 'restore')));
  const lastS = published.filter((e) => e.scheduleId).at(-1)!;
  assert.deepEqual(ids(await schedules.eventsUntil(lastS.id)), ids(published.filter((e) => e.scheduleId)));

  // Nothing else arrives: a ping answered after all events proves no stray or duplicate messages were queued before it.
  for (const c of [all, jobA, restores, schedules]) {
    c.send({ op: 'ping' });
    assert.equal((await c.next()).type, 'pong');
  }
});

test('unsubscribe stops events; a new subscribe replaces the old one', async () => {
  const log = h.eventLog();
  const { url } = await h.feed({ eventLog: log });
  const c = await h.client(url);
  await c.expect('hello');
  await c.subscribe({ channels: ['job'] });
  const first = await log.publish(jobEvent('A', 'job.active'));
  assert.equal((await c.expect('event')).id, first.id);
  c.send({ op: 'unsubscribe' });
  await c.expect('unsubscribed');
  await log.publish(jobEvent('A', 'job.progress'));
  await c.subscribe({ channels: ['checkpoint'] });
  await log.publish(jobEvent('A', 'job.completed'));
  const cp = await log.publish({ event: 'checkpoint.created', data: CREATED });
  const m = await c.expect('event');
  assert.equal(m.id, cp.id);
});

test('reconnect with since: exactly the missed events, then live; two servers on one Redis agree', async () => {
  const log = h.eventLog();
  const serverA = await h.feed({ eventLog: log });
  const serverB = await h.feed({ eventLog: log });

  const watcherB = await h.client(serverB.url);
  await watcherB.expect('hello');
  await watcherB.subscribe({ channels: ['job'] });

  const c1 = await h.client(serverA.url);
  await c1.expect('hello');
  await c1.subscribe({ channels: ['job'] });
  const before = [];
  for (let i = 0; i < 5; i++) before.push(await log.publish(jobEvent('J', 'job.progress', { percent: i * 10 })));
  const seen = await c1.eventsUntil(before.at(-1)!.id);
  assert.deepEqual(ids(seen), ids(before));
  c1.ws.close();
  await c1.closed;

  const missed = [];
  for (let i = 5; i < 12; i++) missed.push(await log.publish(jobEvent('J', i === 11 ? 'job.completed' : 'job.progress', { i })));

  // Reconnect to the other server.
  const c2 = await h.client(serverB.url);
  await c2.expect('hello');
  await c2.subscribe({ channels: ['job'], since: seen.at(-1)!.id });
  const replayed = await c2.eventsUntil(missed.at(-1)!.id);
  assert.deepEqual(ids(replayed), ids(missed));
  await c2.expect('live');
  const live = await log.publish(jobEvent('K', 'job.waiting'));
  assert.equal((await c2.expect('event')).id, live.id);

  // A client on server B that stayed connected saw exactly the same events.
  const everything = [...before, ...missed, live];
  assert.deepEqual(ids(await watcherB.eventsUntil(live.id)), ids(everything));
});

test('since while events keep flowing: no gap, no duplicate across the replay/live switch', async () => {
  const log = h.eventLog();
  const { url } = await h.feed({ eventLog: log, options: { replayBatch: 20 } });
  const start = await log.publish(jobEvent('R', 'job.active'));
  for (let i = 0; i < 200; i++) await log.publish(jobEvent('R', 'job.progress', { i }));

  // Keeps publishing (bounded, so a slow machine does not turn this into a flood) while clients connect and replay.
  let publishing = true;
  const publisher = (async () => {
    for (let i = 0; publishing && i < 3000; i++) await log.publish(jobEvent('R', 'job.log', { lines: [String(i)] }));
  })();
  const clients = [];
  for (let i = 0; i < 5; i++) {
    const c = await h.client(url);
    await c.expect('hello');
    await c.subscribe({ channels: ['job'], since: start.id });
    clients.push(c);
  }
  publishing = false;
  await publisher;
  const end = await log.publish(jobEvent('R', 'job.completed'));

  const stored = await log.readAfter(start.id, 100_000);
  assert.equal(stored.at(-1)!.id, end.id);
  for (const c of clients) {
    const got: EventMsg[] = await c.eventsUntil(end.id);
    assert.deepEqual(ids(got), ids(stored));
    // `live` ends the replay; when the replay was still reading as `end` was published, it comes right after `end`.
    if (!c.received.some((m) => m.type === 'live')) await c.expect('live');
  }
});

test('since older than the retained history: reset, snapshot, then live', async () => {
  const log = h.eventLog(10);
  let snapshots = 0;
  const { url, feed } = await h.feed({ eventLog: log, snapshot: async () => ({ jobs: [{ id: 'X', state: 'active' }], n: ++snapshots }) });
  const first = await log.publish(jobEvent('X', 'job.waiting'));
  for (let i = 0; i < 1000; i++) await log.publish(jobEvent('X', 'job.progress', { i }));
  const oldest = (await log.oldestId())!;
  assert.notEqual(oldest, first.id, 'the stream was trimmed');
  await tailedTo(feed, await log.lastId());

  const c = await h.client(url);
  await c.expect('hello');
  await c.subscribe({ channels: ['job'], since: first.id });
  const reset = await c.expect('reset');
  assert.match(String(reset.reason), /no longer retained/);
  assert.deepEqual((await c.expect('snapshot')).data, { jobs: [{ id: 'X', state: 'active' }], n: 1 });
  await c.expect('live');
  const live = await log.publish(jobEvent('X', 'job.completed'));
  assert.equal((await c.expect('event')).id, live.id);

  // A since that is still retained replays normally.
  const c2 = await h.client(url);
  await c2.expect('hello');
  const kept = (await log.readAfter('0', 3))[1]!;
  await c2.subscribe({ channels: ['job'], since: kept.id });
  const rest = await log.readAfter(kept.id, 100_000);
  assert.deepEqual(ids(await c2.eventsUntil(live.id)), ids(rest));

  // A since from another history (newer than anything here) also resets.
  const c3 = await h.client(url);
  await c3.expect('hello');
  await c3.subscribe({ channels: ['job'], since: '99999999999999-0' });
  assert.match(String((await c3.expect('reset')).reason), /newer than the newest/);
  await c3.expect('snapshot');
});

/** An EventLog whose replay reads wait until released: holds a session between its `subscribed` and its reset. */
class HeldReplayLog extends EventLog {
  release!: () => void;
  private readonly released = new Promise<void>((resolve) => (this.release = resolve));

  override async readAfter(afterId: string, count?: number): Promise<FeedEvent[]> {
    await this.released;
    return super.readAfter(afterId, count);
  }
}

test('reset: an event published after subscribed, while the replay still runs, follows the snapshot', async () => {
  const log = new HeldReplayLog(h.redis, { key: h.eventLog().key, maxLen: 10 });
  const { url, feed } = await h.feed({ eventLog: log, snapshot: async () => ({ state: 'now' }) });
  const first = await log.publish(jobEvent('Y', 'job.waiting'));
  for (let i = 0; i < 100; i++) await log.publish(jobEvent('Y', 'job.progress', { i }));
  await tailedTo(feed, await log.lastId());

  const c = await h.client(url);
  await c.expect('hello');
  await c.subscribe({ channels: ['job'], since: first.id });
  // The client is subscribed; the server is still reading the history when this happens.
  const live = await log.publish(jobEvent('Y', 'job.completed'));
  await tailedTo(feed, live.id);
  log.release();

  await c.expect('reset');
  await c.expect('snapshot');
  assert.equal((await c.expect('event')).id, live.id, 'the event the client subscribed in time for');
  assert.equal((await c.expect('live')).lastEventId, live.id);
});

test('since 0-0 on an untrimmed stream replays everything', async () => {
  const log = h.eventLog();
  const { url } = await h.feed({ eventLog: log });
  const published = [];
  for (let i = 0; i < 3; i++) published.push(await log.publish(jobEvent('Z', 'job.progress', { i })));
  const c = await h.client(url);
  await c.expect('hello');
  await c.subscribe({ channels: ['job'], since: '0-0' });
  assert.deepEqual(ids(await c.eventsUntil(published.at(-1)!.id)), ids(published));
  await c.expect('live');
});
