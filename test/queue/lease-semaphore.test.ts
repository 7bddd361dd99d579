import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { LeaseSemaphore } from '../../src/queue/lease-semaphore.js';
import { TestRedis } from '../helpers/redis.js';
import { waitUntil } from '../helpers/wait.js';

async function withRedis(t: { after(fn: () => unknown): void }): Promise<Redis> {
  const server = await TestRedis.start();
  const redis = new Redis(server.url);
  t.after(async () => {
    redis.disconnect();
    await server.stop();
  });
  return redis;
}

test('a lock (capacity 1): one holder at a time, re-entrant for the same holder, free again after release', async (t) => {
  const redis = await withRedis(t);
  const lock = new LeaseSemaphore(redis, { key: 'lock:a' });
  const a = await lock.acquire('job-a');
  assert.ok(a.lease);
  const b = await lock.acquire('job-b');
  assert.equal(b.lease, null);
  assert.deepEqual(b.holders, ['job-a']);
  const again = await lock.acquire('job-a');
  assert.ok(again.lease, 'the holder itself may take it again (a retried job)');
  await a.lease.release();
  assert.ok((await lock.acquire('job-b')).lease);
});

test('a waiting acquire gets the place as soon as it is released, and gives up after waitMs', async (t) => {
  const redis = await withRedis(t);
  const lock = new LeaseSemaphore(redis, { key: 'lock:w' });
  const a = (await lock.acquire('a')).lease!;
  const waiting = lock.acquire('b', { waitMs: 5000, pollMs: 20 });
  await sleep(100);
  await a.release();
  assert.ok((await waiting).lease);
  const late = await lock.acquire('c', { waitMs: 150, pollMs: 20 });
  assert.equal(late.lease, null);
  assert.deepEqual(late.holders, ['b']);
});

test('capacity N admits N holders; a holder that stops renewing (crashed) loses its place after the lease', async (t) => {
  const redis = await withRedis(t);
  const slots = new LeaseSemaphore(redis, { key: 'slots', capacity: 2, leaseMs: 300 });
  const a = (await slots.acquire('a')).lease!;
  const aFirstExpiry = Number(await redis.zscore('slots', 'a'));
  // A holder whose process died: its entry stays, with the expiry of its last renewal (in Redis time).
  const [sec, usec] = await redis.time();
  await redis.zadd('slots', Number(sec) * 1000 + Math.floor(Number(usec) / 1000) + 300, 'crashed');
  const refused = await slots.acquire('c');
  assert.equal(refused.lease, null);
  assert.deepEqual(refused.holders?.sort(), ['a', 'crashed']);
  const c = await slots.acquire('c', { waitMs: 3000, pollMs: 20 });
  assert.ok(c.lease, "the crashed holder's place came free");
  // The lease a took first has run out (in Redis time): only its renewals can have kept its place.
  await waitUntil("a's first lease to run out in Redis time", async () => {
    const [s, us] = await redis.time();
    return Number(s) * 1000 + Math.floor(Number(us) / 1000) > aFirstExpiry;
  });
  assert.ok(!a.lost, 'a renews its lease in the background and keeps its place');
  assert.ok(Number(await redis.zscore('slots', 'a')) > aFirstExpiry, "a's lease was renewed");
  assert.equal((await slots.acquire('d')).lease, null, 'a and c hold both places');
  await a.release();
  await c.lease.release();
  assert.ok((await slots.acquire('d')).lease);
});
