import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import { EventId } from '../../src/events/event-id.js';
import type { FeedServer } from '../../src/feed/server.js';
import { FeedHarness, jobEvent, type EventMsg } from './harness.js';

let h: FeedHarness;
before(async () => {
  h = await FeedHarness.start();
});
after(async () => {
  await h?.stop();
});

async function until(what: string, check: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

function onlySession(feed: FeedServer) {
  assert.equal(feed.sessions.size, 1);
  return [...feed.sessions][0]!;
}

test('malformed, invalid and unknown messages get an error and the connection stays', async () => {
  const { url } = await h.feed({ eventLog: h.eventLog() });
  const c = await h.client(url);
  await c.expect('hello');

  c.send('{not json');
  assert.equal((await c.expect('error')).code, 'invalid_json');

  c.send({ op: 'launch' });
  const unknown = await c.expect('error');
  assert.equal(unknown.code, 'unknown_op');
  assert.equal(unknown.field, 'op');

  c.send({ op: 'subscribe', channels: ['jobs'] });
  const invalid = await c.expect('error');
  assert.equal(invalid.code, 'invalid_message');
  assert.equal(invalid.field, 'channels.0');

  c.send({ op: 'subscribe', channels: ['job'], since: 'yesterday' });
  assert.equal((await c.expect('error')).field, 'since');
  // Shaped like ids, but Redis refuses them (a part past 64 bits; the last possible id as an exclusive start):
  // the client's mistake, answered as such, never a 1011 close that tells the client to come back with the same since.
  for (const since of ['99999999999999999999-0', '1-18446744073709551616', '18446744073709551615-18446744073709551615']) {
    c.send({ op: 'subscribe', channels: ['job'], since });
    const refused = await c.expect('error');
    assert.deepEqual([refused.code, refused.field], ['invalid_message', 'since'], JSON.stringify(refused));
  }

  c.send({ channels: ['job'] });
  assert.equal((await c.expect('error')).code, 'invalid_message');

  c.send({ op: 'ping' });
  await c.expect('pong');
});

test('a message larger than maxPayloadBytes closes the connection with 1009', async () => {
  const { url } = await h.feed({ eventLog: h.eventLog() });
  const c = await h.client(url);
  await c.expect('hello');
  c.send(JSON.stringify({ op: 'ping', pad: 'x'.repeat(1024 * 1024) }));
  assert.equal((await c.closed).code, 1009);
});

test('a client that stops reading is closed with 1008 and the server buffers a bounded amount', async (t) => {
  const log = h.eventLog();
  const maxBufferedBytes = 256 * 1024;
  const { url, feed } = await h.feed({ eventLog: log, options: { maxBufferedBytes } });
  const slow = await h.client(url);
  const healthy = await h.client(url);
  for (const c of [slow, healthy]) {
    await c.expect('hello');
    await c.subscribe({ channels: ['job'] });
  }
  const slowSession = [...feed.sessions][0]!; // sessions are kept in connection order
  (slow.ws as unknown as { _socket: Socket })._socket.pause();

  // ~40 MiB of logs: far more than the kernel's socket buffers hold.
  const line = 'y'.repeat(2000);
  let last = '';
  for (let batch = 0; batch < 100 && !slowSession.closed; batch++) {
    const published = await Promise.all(
      Array.from({ length: 200 }, (_, i) => log.publish(jobEvent(`job${i % 20}`, 'job.log', { lines: [line] }))),
    );
    last = published.map((e) => e.id).sort(EventId.compare).at(-1)!;
  }
  await until('the slow client to be closed', () => slowSession.closed);
  assert.equal(slowSession.endedBy, 'too-slow');
  // Bounded: what the server held for it never exceeded the limit by more than one message.
  assert.ok(slowSession.peakBufferedBytes <= maxBufferedBytes + 4096, `peak ${slowSession.peakBufferedBytes}`);
  assert.ok(slowSession.ws.bufferedAmount <= maxBufferedBytes + 4096);
  t.diagnostic(`slow client: peak unsent ${slowSession.peakBufferedBytes} bytes (limit ${maxBufferedBytes})`);

  (slow.ws as unknown as { _socket: Socket })._socket.resume();
  const closed = await slow.closed;
  assert.deepEqual(closed, { code: 1008, reason: 'too slow' });
  await until('the server to count it', () => feed.stats().closedTooSlow === 1);

  // The healthy client got everything.
  const got = await healthy.eventsUntil(last, 30_000);
  assert.ok(got.length >= 200);
  assert.equal(healthy.ws.readyState, 1, 'a client that keeps up stays connected');
});

test('while a client is behind, progress is coalesced to the latest per job and order is kept', async (t) => {
  const log = h.eventLog();
  const { url, feed } = await h.feed({ eventLog: log, options: { maxBufferedBytes: 512 * 1024 * 1024, coalesceAboveBytes: 64 * 1024 } });
  const c = await h.client(url);
  await c.expect('hello');
  await c.subscribe({ channels: ['job'] });
  const session = onlySession(feed);
  const socket = (c.ws as unknown as { _socket: Socket })._socket;
  socket.pause();

  const pad = 'p'.repeat(8000);
  const steps = 4000;
  for (let start = 0; start < steps; start += 500) {
    await Promise.all(
      Array.from({ length: 500 }, (_, i) => {
        const step = start + i;
        return log.publish(jobEvent(step % 2 ? 'odd' : 'even', 'job.progress', { step, pad }));
      }),
    );
  }
  const done = await log.publish(jobEvent('even', 'job.completed'));
  await until('the server to have handed every event to the session', () => feed.tailer.head === done.id);
  // Bounded while behind: the socket's backlog above the threshold plus at most one progress message per job.
  assert.ok(session.peakBufferedBytes < 64 * 1024 + 3 * 9000, `peak ${session.peakBufferedBytes}`);
  socket.resume();

  const got = await c.eventsUntil(done.id, 30_000);
  const progress = got.filter((e) => e.event === 'job.progress');
  assert.ok(progress.length < steps, `coalesced: ${progress.length} of ${steps} progress events delivered`);
  t.diagnostic(`coalesced: ${progress.length} of ${steps} progress events delivered, peak unsent ${session.peakBufferedBytes} bytes`);
  // Ids only grow, and the final progress of each job made it.
  for (let i = 1; i < got.length; i++) assert.ok(EventId.compare(got[i - 1]!.id, got[i]!.id) < 0);
  const stored = await log.readAfter('0', 100_000);
  for (const job of ['odd', 'even']) {
    const lastStored = stored.filter((e) => e.jobId === job && e.event === 'job.progress').at(-1)!;
    const lastGot = progress.filter((e: EventMsg) => e.jobId === job).at(-1)!;
    assert.equal(lastGot.id, lastStored.id);
  }
  assert.equal(got.at(-1)!.event, 'job.completed');
  assert.equal(c.ws.readyState, 1);
});

test('heartbeat terminates a client that does not answer pings, and keeps one that does', async () => {
  // 1 s: time enough for the answering client's pong on a loaded machine (server and clients share this event loop).
  const { url, feed } = await h.feed({ eventLog: h.eventLog(), options: { heartbeatMs: 1000 } });
  const dead = await h.client(url, { autoPong: false });
  const alive = await h.client(url);
  let pings = 0;
  alive.ws.on('ping', () => pings++);
  await dead.expect('hello');
  await alive.expect('hello');
  const closed = await dead.closed;
  assert.equal(closed.code, 1006);
  await until('the server to count it', () => feed.stats().terminatedByHeartbeat === 1);
  // Two more rounds of pings: the server had two more chances to end the answering client.
  const seen = pings;
  await until('two more pings to the answering client', () => pings >= seen + 2);
  alive.send({ op: 'ping' });
  await alive.expect('pong');
  assert.equal(feed.clientCount, 1);
});
