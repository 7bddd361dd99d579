import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Redis } from 'ioredis';
import { ScheduleStore, ScheduleStoreError } from '../../src/scheduler/schedule-store.js';
import { scheduleSchema, type ScheduleInput } from '../../src/scheduler/schema.js';
import { TickClaims } from '../../src/scheduler/tick-claims.js';
import { TestRedis } from '../helpers/redis.js';
import { waitUntil } from '../helpers/wait.js';

let server: TestRedis;
let redis: Redis;
let n = 0;

before(async () => {
  server = await TestRedis.start();
  redis = new Redis(server.url);
});
after(async () => {
  redis.disconnect();
  await server.stop();
});

const schedule = (over: Partial<ScheduleInput> = {}) => scheduleSchema.parse({ id: 'one', cron: '*/5 * * * *', target: { pid: 42 }, ...over });
const freshStore = () => new ScheduleStore(redis, `t${++n}`);

test('config seeding: creates, updates config-owned ones, never overrides API changes or brings back API deletions', async () => {
  const store = freshStore();
  const a = schedule({ id: 'a' });
  const b = schedule({ id: 'b' });
  const c = schedule({ id: 'c' });
  assert.deepEqual((await store.seedFromConfig([a, b, c])).created, ['a', 'b', 'c']);
  assert.equal((await store.get('a'))!.origin, 'config');

  // The API changes b and deletes c.
  await store.update(schedule({ id: 'b', cron: '0 * * * *' }));
  await store.delete('c');

  // Next start, with an edited config: a follows the file, b keeps the API's version, c stays deleted.
  const report = await store.seedFromConfig([schedule({ id: 'a', cron: '1 * * * *' }), schedule({ id: 'b', cron: '2 * * * *' }), c]);
  assert.deepEqual(report, { created: [], updated: ['a'], unchanged: [], keptApiVersion: ['b'], keptDeleted: ['c'] });
  assert.equal((await store.get('a'))!.schedule.cron, '1 * * * *');
  assert.equal((await store.get('b'))!.schedule.cron, '0 * * * *');
  assert.equal((await store.get('b'))!.origin, 'api');
  assert.equal(await store.get('c'), null);

  // Same config again: nothing to do. Re-creating c through the API clears its deletion mark.
  assert.deepEqual((await store.seedFromConfig([schedule({ id: 'a', cron: '1 * * * *' })])).unchanged, ['a']);
  await store.create(c, 'api');
  assert.equal((await store.get('c'))!.origin, 'api');
});

test('CRUD errors have codes: EEXISTS on create, ESCHEDULE_NOT_FOUND on update/delete/pause of an unknown id', async () => {
  const store = freshStore();
  await store.create(schedule());
  await assert.rejects(store.create(schedule()), (e: unknown) => e instanceof ScheduleStoreError && e.code === 'EEXISTS');
  for (const op of [() => store.update(schedule({ id: 'nope' })), () => store.delete('nope'), () => store.pause('nope'), () => store.resume('nope')]) {
    await assert.rejects(op(), (e: unknown) => e instanceof ScheduleStoreError && e.code === 'ESCHEDULE_NOT_FOUND');
  }
  assert.deepEqual((await store.list()).map((r) => r.schedule.id), ['one']);
});

test('every write is announced on the change channel', async (t) => {
  const store = freshStore();
  const sub = redis.duplicate();
  t.after(() => sub.disconnect());
  const seen: string[] = [];
  sub.on('message', (_c, m) => seen.push(`${JSON.parse(m).op}:${JSON.parse(m).id}`));
  await sub.subscribe(store.channel);
  await store.create(schedule());
  await store.pause('one');
  await store.resume('one');
  await store.update(schedule({ cron: '0 * * * *' }));
  await store.delete('one');
  await waitUntil('the 5 schedule change messages', () => seen.length >= 5);
  assert.deepEqual(seen, ['put:one', 'pause:one', 'resume:one', 'put:one', 'delete:one']);
});

test('state: pause/resume, lastTickAt only moves forward, failures make it unhealthy once, a checkpoint heals it', async () => {
  const store = freshStore();
  await store.create(schedule());
  assert.equal((await store.pause('one')).paused, true);
  await store.recordTick('one', 2000);
  await store.recordTick('one', 1000);
  assert.equal((await store.getState('one')).lastTickAt, 2000);
  const resumed = await store.resume('one');
  assert.equal(resumed.paused, false);
  assert.ok(resumed.lastTickAt! > 2000, 'resume moves lastTickAt to now: ticks missed while paused are not caught up');

  // A changed definition starts from now too: ticks of the old cron are not "missed" ticks of the new one.
  const beforeUpdate = Date.now();
  await store.update(schedule({ cron: '0 * * * *' }));
  assert.ok((await store.getState('one')).lastTickAt! >= beforeUpdate);

  const r = [];
  for (let i = 0; i < 4; i++) r.push(await store.recordFailure('one', `gone ${i}`, 3));
  assert.deepEqual(r.map((x) => [x.consecutiveFailures, x.becameUnhealthy]), [[1, false], [2, false], [3, true], [4, false]]);
  const sick = await store.getState('one');
  assert.equal(sick.unhealthy, true);
  assert.equal(sick.lastFailure!.reason, 'gone 3');
  await store.recordSuccess('one');
  const healed = await store.getState('one');
  assert.equal(healed.unhealthy, false);
  assert.equal(healed.consecutiveFailures, 0);
});

test('tick claims: one owner per tick; a finished tick is never claimed again; a stale claim is taken over', async () => {
  const claims = new TickClaims(redis, { prefix: `t${++n}`, ttlMs: 60_000 });
  assert.equal(await claims.claim('s', 1000, 'A', 10_000), true);
  assert.equal(await claims.claim('s', 1000, 'B', 10_000), false);
  assert.equal(await claims.finish('s', 1000, 'B', { state: 'enqueued', jobId: 'x' }), false, 'only the owner finishes');
  assert.equal(await claims.finish('s', 1000, 'A', { state: 'enqueued', jobId: 'sched-s-1000' }), true);
  assert.equal(await claims.claim('s', 1000, 'C', 10_000), false, 'finished: the tick stays handled');
  assert.deepEqual(await claims.expired(), []);

  // A owns tick 2000 and "dies": once its lease is over, B takes it over, and A can no longer finish it.
  assert.equal(await claims.claim('s', 2000, 'A', 100), true);
  assert.deepEqual(await claims.expired(), [], 'lease still running');
  assert.equal(await claims.takeOver('s', 2000, 'B', 10_000), null, 'lease still running');
  await waitUntil("A's 100 ms lease on tick 2000 to run out", async () => (await claims.expired()).length > 0);
  assert.deepEqual(await claims.expired(), [{ scheduleId: 's', tickMs: 2000 }]);
  const taken = await claims.takeOver('s', 2000, 'B', 10_000);
  assert.equal(taken?.owner, 'B');
  assert.equal(taken?.previousOwner, 'A');
  assert.equal(taken?.takeovers, 1);
  assert.equal(await claims.takeOver('s', 2000, 'C', 10_000), null, "B's lease runs now");
  assert.equal(await claims.finish('s', 2000, 'A', { state: 'skipped', reason: 'late' }), false);
  assert.equal(await claims.finish('s', 2000, 'B', { state: 'enqueued', jobId: 'sched-s-2000' }), true);
  assert.equal((await claims.get('s', 2000))!.state, 'enqueued');
  assert.ok((await redis.pttl(`t${n}:tick:s:2000`)) > 50_000, 'finished claims keep their TTL');
});
