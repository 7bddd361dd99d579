import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { FeedClient, FeedError, type FeedEventMessage } from '../../src/cli/feed-client.js';
import { FeedHarness, jobEvent, tailedTo } from '../feed/harness.js';
import { freePort } from '../helpers/redis.js';

// The CLI's feed client against a real FeedServer on a real Redis: resume with `since` after the server drops it,
// reset when history is gone, refusal without a token.

let h: FeedHarness;
before(async () => {
  h = await FeedHarness.start();
});
after(async () => {
  await h?.stop();
});

/** The feed client takes the API's base URL; the harness gives the feed's ws:// URL. */
const baseUrl = (feedUrl: string) => feedUrl.replace(/^ws:/, 'http:').replace(/\/api\/v1\/feed$/, '');

/** Collects events, with a wait for the one with a given id. */
function collector() {
  const events: FeedEventMessage[] = [];
  let wake: (() => void) | undefined;
  return {
    events,
    onEvent(e: FeedEventMessage) {
      events.push(e);
      wake?.();
    },
    async until(id: string, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (!events.some((e) => e.id === id)) {
        if (Date.now() > deadline) throw new Error(`event ${id} not received; got ${events.map((e) => e.id).join(',')}`);
        await new Promise<void>((r) => {
          wake = r;
          setTimeout(r, 100);
        });
      }
    },
  };
}

test('events that arrive batched in one frame are delivered one by one, in order', async (t) => {
  const log = h.eventLog();
  const { url, feed } = await h.feed({ eventLog: log });
  const got = collector();
  const client = new FeedClient({ url: baseUrl(url), channels: ['job'], onEvent: got.onEvent });
  t.after(() => client.close());
  await client.start();
  assert.equal([...feed.sessions][0]!.outbox.batching, true, 'the CLI asks for events frames');
  const published = await h.publishTogether(log, Array.from({ length: 10 }, (_, i) => jobEvent('A', 'job.progress', { percent: i * 10 })));
  await got.until(published.at(-1)!);
  assert.deepEqual(got.events.map((e) => e.id), published);
  assert.equal(client.lastEventId, published.at(-1));
});

test('starts from the moment it connects, then resumes after a dropped connection with exactly the missed events', async (t) => {
  const log = h.eventLog();
  const { url, feed } = await h.feed({ eventLog: log });
  await log.publish(jobEvent('old', 'job.waiting'));

  const got = collector();
  const statuses: string[] = [];
  const client = new FeedClient({
    url: baseUrl(url),
    channels: ['job'],
    onEvent: got.onEvent,
    onStatus: (s) => statuses.push(s.state),
    minReconnectDelayMs: 50,
  });
  t.after(() => client.close());
  await client.start();

  const published = [];
  for (let i = 0; i < 5; i++) published.push(await log.publish(jobEvent('A', 'job.progress', { percent: i * 10 })));
  await got.until(published.at(-1)!.id);

  // The server side drops every connection; events published meanwhile must arrive after the reconnect, once each.
  for (const s of feed.sessions) s.ws.terminate();
  for (let i = 5; i < 10; i++) published.push(await log.publish(jobEvent('A', 'job.progress', { percent: i * 10 })));
  published.push(await log.publish(jobEvent('A', 'job.completed', { result: { checkpointId: 'x' } })));
  await got.until(published.at(-1)!.id);

  assert.deepEqual(
    got.events.map((e) => e.id),
    published.map((e) => e.id),
    'every event after connecting, in order, none twice, none from before',
  );
  assert.equal(got.events.at(-1)!.event, 'job.completed');
  assert.ok(statuses.includes('reconnecting'), `statuses: ${statuses.join(',')}`);
  assert.equal(statuses.at(-1), 'connected');
  assert.equal(client.lastEventId, published.at(-1)!.id);
});

test('a filter and an explicit since replay the matching history first', async (t) => {
  const log = h.eventLog();
  const { url } = await h.feed({ eventLog: log });
  const first = await log.publish(jobEvent('B', 'job.waiting'));
  await log.publish(jobEvent('C', 'job.waiting'));
  const second = await log.publish(jobEvent('B', 'job.active'));
  await log.publish(jobEvent('C', 'job.active'));

  const got = collector();
  const client = new FeedClient({ url: baseUrl(url), channels: ['job'], filter: { jobId: 'B' }, since: '0-0', onEvent: got.onEvent });
  t.after(() => client.close());
  await client.start();
  const third = await log.publish(jobEvent('B', 'job.completed'));
  await got.until(third.id);
  assert.deepEqual(
    got.events.map((e) => e.id),
    [first.id, second.id, third.id],
  );
});

test('since older than the retained history gives reset and a snapshot', async (t) => {
  const log = h.eventLog(100);
  const { url, feed } = await h.feed({ eventLog: log, snapshot: async () => ({ jobs: ['now'] }) });
  const early = await log.publish(jobEvent('D', 'job.waiting'));
  // Trim the stream exactly past the first events, as MAXLEN does on a busy server.
  for (let i = 0; i < 20; i++) await log.publish(jobEvent('D', 'job.progress', { percent: i }));
  await h.redis.xtrim(log.key, 'MAXLEN', 5);
  // These are the server's past: the snapshot stands for them.
  await tailedTo(feed, await log.lastId());

  let resets = 0;
  let snapshot: unknown;
  const got = collector();
  const client = new FeedClient({
    url: baseUrl(url),
    since: early.id,
    onEvent: got.onEvent,
    onReset: () => resets++,
    onSnapshot: (data) => (snapshot = data),
  });
  t.after(() => client.close());
  await client.start();
  const live = await log.publish(jobEvent('D', 'job.completed'));
  await got.until(live.id);
  assert.equal(resets, 1);
  assert.deepEqual(snapshot, { jobs: ['now'] });
  assert.deepEqual(
    got.events.map((e) => e.id),
    [live.id],
    'after a reset only live events follow',
  );
});

test('a since from another history (newer than every id here): after the reset, the newer ids still arrive', async (t) => {
  const log = h.eventLog();
  const { url } = await h.feed({ eventLog: log });
  let snapshots = 0;
  const got = collector();
  const client = new FeedClient({ url: baseUrl(url), since: '99999999999999-0', onEvent: got.onEvent, onSnapshot: () => snapshots++ });
  t.after(() => client.close());
  await client.start();
  const live = await log.publish(jobEvent('F', 'job.waiting'));
  await got.until(live.id);
  assert.equal(snapshots, 1);
  assert.equal(client.lastEventId, live.id, 'resumes from this history, not the other one');
});

test('without a token on a server that needs one, start() rejects with the reason (no retry)', async () => {
  const log = h.eventLog();
  const token = 'read-token-0123456789abcdef';
  const { url } = await h.feed({ eventLog: log, auth: { host: '0.0.0.0', tokens: [{ name: 'r', token, role: 'read' }] } });

  const refused = new FeedClient({ url: baseUrl(url), onEvent: () => undefined });
  await assert.rejects(refused.start(), (err: FeedError) => {
    assert.ok(err instanceof FeedError);
    assert.equal(err.code, 'http_401');
    assert.match(err.message, /refused/);
    return true;
  });

  const got = collector();
  const allowed = new FeedClient({ url: baseUrl(url), token, onEvent: got.onEvent });
  await allowed.start();
  const e = await log.publish(jobEvent('E', 'job.waiting'));
  await got.until(e.id);
  allowed.close();
});

test('a server that is not there: start() rejects naming the address', async () => {
  const port = await freePort();
  const client = new FeedClient({ url: `http://127.0.0.1:${port}`, onEvent: () => undefined });
  await assert.rejects(client.start(), new RegExp(`cannot connect to the feed at ws://127\\.0\\.0\\.1:${port}/api/v1/feed: ECONNREFUSED`));
});
