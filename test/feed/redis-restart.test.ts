import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import { FeedHarness, jobEvent } from './harness.js';

let h: FeedHarness;
before(async () => {
  h = await FeedHarness.start();
});
after(async () => {
  await h?.stop();
});

test('the feed keeps its clients through a Redis restart and delivers what comes after', async () => {
  const log = h.eventLog();
  const { url, feed } = await h.feed({ eventLog: log });
  const c = await h.client(url);
  await c.expect('hello');
  await c.subscribe({ channels: ['job'] });
  const first = await log.publish(jobEvent('A', 'job.active'));
  assert.equal((await c.expect('event')).id, first.id);

  await h.redisServer.pause();
  await sleep(300);
  await h.redisServer.resume();

  // Publishing retries until the connection is back; the tailer resumes from where it was.
  let next;
  for (let i = 0; !next; i++) {
    try {
      next = await log.publish(jobEvent('A', 'job.completed'));
    } catch {
      assert.ok(i < 100, 'redis came back');
      await sleep(100);
    }
  }
  assert.equal((await c.expect('event', 20_000)).id, next.id);
  assert.equal(feed.clientCount, 1);
});
