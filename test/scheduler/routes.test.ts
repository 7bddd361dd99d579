import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { Authenticator } from '../../src/security/auth.js';
import { scheduleRoutes } from '../../src/api/routes/schedules.js';
import { createApiServer } from '../../src/api/server.js';
import { configSchema } from '../../src/config/schema.js';
import { EventLog } from '../../src/events/event-log.js';
import { JobQueue } from '../../src/queue/job-queue.js';
import type { Scheduler } from '../../src/scheduler/scheduler.js';
import { startSchedulerService, type SchedulerService } from '../../src/scheduler/start-scheduler.js';
import { TestRedis } from '../helpers/redis.js';
import { throwawaySigner } from '../helpers/signer.js';
import { startCounter, type Counter } from '../helpers/targets.js';
import { waitFor } from './harness.js';

let server: TestRedis;
let redis: Redis;
let target: Counter;
let app: FastifyInstance;
let jobs: JobQueue;
let scheduler: Scheduler;
let service: SchedulerService;

before(async () => {
  server = await TestRedis.start();
  redis = new Redis(server.url);
  target = await startCounter();
  const config = configSchema.parse({
    node: 'test-node',
    redis: { url: server.url, prefix: 'r' },
    scheduler: { eventsLeaseMs: 1000 },
    schedules: [{ id: 'from-config', cron: '0 0 1 1 *', target: { match: 'no-such-process-anywhere' } }],
  });
  const eventLog = new EventLog(redis, { key: 'r:events' });
  jobs = new JobQueue({ connection: server.url, prefix: 'r', node: 'test-node', eventLog, defaults: config.worker, signer: throwawaySigner() });
  // As `ckpt up` does it: config schedules validated and seeded, scheduler started.
  service = await startSchedulerService({ config, configFile: 'test.yaml', redis, eventLog, enqueuer: jobs, logger: pino({ level: 'silent' }) });
  scheduler = service.scheduler;
  const store = service.store;
  app = createApiServer({ logger: pino({ level: 'silent' }), auth: new Authenticator({ host: '127.0.0.1', tokens: [] }), bodyLimitBytes: 1 << 20 });
  await app.register(scheduleRoutes, { store, scheduler });
  await app.ready();
});
after(async () => {
  await app.close();
  await service.stop();
  await jobs.close();
  await target.kill();
  redis.disconnect();
  await server.stop();
});

const call = async (method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, payload?: unknown) => {
  const res = await app.inject({ method, url, ...(payload === undefined ? {} : { payload: payload as object }) });
  return { status: res.statusCode, body: res.body ? JSON.parse(res.body) : undefined };
};

test('an invalid schedule is refused with 400 naming the field and the reason', async () => {
  const r = await call('POST', '/api/v1/schedules', { id: 'bad', cron: '61 * * * *', target: { pid: target.pid }, timezone: 'Nowhere/Land', dst: 'ignore' });
  assert.equal(r.status, 400);
  assert.equal(r.body.error, 'validation');
  const byField = Object.fromEntries(r.body.issues.map((i: { field: string; reason: string }) => [i.field, i.reason]));
  assert.match(byField['body.cron'], /minute field "61" is not valid \(allowed: 0-59/);
  assert.match(byField['body.timezone'], /unknown time zone "Nowhere\/Land"/);
  assert.match(byField['body.dst'], /"cron"\|"skip"/);
  assert.match(r.body.message, /body\.cron: minute field "61"/);

  const missing = await call('POST', '/api/v1/schedules', { id: 'bad', cron: '* * * * *' });
  assert.equal(missing.status, 400);
  assert.ok(missing.body.issues.some((i: { field: string }) => i.field === 'body.target'));
});

test('create, list, get, replace, pause, resume, trigger, next runs, delete', async () => {
  const created = await call('POST', '/api/v1/schedules', {
    id: 'web',
    cron: '0 9 * * mon-fri',
    timezone: 'Europe/Berlin',
    target: { pid: target.pid },
    retention: { keepLast: 3, maxAge: '2d' },
  });
  assert.equal(created.status, 201);
  assert.equal(created.body.id, 'web');
  assert.equal(created.body.origin, 'api');
  assert.equal(created.body.overlap, 'skip');
  assert.deepEqual(created.body.retention, { keepLast: 3, maxAge: 2 * 86_400_000 });
  assert.equal(created.body.state.paused, false);
  assert.equal(created.body.state.healthy, true);
  assert.ok(created.body.nextRunAt > Date.now());

  assert.equal((await call('POST', '/api/v1/schedules', { id: 'web', cron: '* * * * *', target: { pid: target.pid } })).status, 409);
  const list = await call('GET', '/api/v1/schedules');
  assert.deepEqual(list.body.items.map((s: { id: string; origin: string }) => `${s.id}:${s.origin}`), ['from-config:config', 'web:api']);
  assert.equal((await call('GET', '/api/v1/schedules/web')).body.cron, '0 9 * * mon-fri');
  await waitFor('the scheduler to arm it', async () => scheduler.armedIds().includes('web') || null, 5000);

  const next = await call('GET', '/api/v1/schedules/web/next-runs');
  assert.equal(next.status, 200);
  assert.equal(next.body.items.length, 5);
  for (const run of next.body.items) {
    assert.match(run.local, / 09:00:00$/, 'read in the schedule time zone');
    const weekday = new Date(run.at).getUTCDay();
    assert.ok(weekday >= 1 && weekday <= 5);
  }
  // The schedule's view carries its next 3 runs, the same the next-runs route gives (a weekday 09:00 cron: stable).
  const shown = (await call('GET', '/api/v1/schedules/web')).body;
  assert.deepEqual(shown.nextRuns, next.body.items.slice(0, 3));
  assert.equal(Date.parse(shown.nextRuns[0].at), shown.nextRunAt);
  assert.equal((await call('GET', '/api/v1/schedules/web/next-runs?n=12')).body.items.length, 12);
  assert.equal((await call('GET', '/api/v1/schedules/web/next-runs?n=0')).status, 400);

  const put = await call('PUT', '/api/v1/schedules/web', { cron: '*/10 * * * *', target: { pid: target.pid } });
  assert.equal(put.status, 200);
  assert.equal(put.body.cron, '*/10 * * * *');
  assert.equal(put.body.timezone, 'UTC', 'PUT replaces the whole definition');
  assert.equal((await call('PUT', '/api/v1/schedules/web', { id: 'other', cron: '* * * * *', target: { pid: 1 } })).status, 400);
  const badPut = await call('PUT', '/api/v1/schedules/web', { cron: '* * * * * * *', target: { pid: target.pid } });
  assert.equal(badPut.status, 400);
  assert.match(badPut.body.issues[0].reason, /got 7/);

  const paused = await call('POST', '/api/v1/schedules/web/pause');
  assert.equal(paused.body.state.paused, true);
  assert.equal(paused.body.nextRunAt, null);
  assert.deepEqual(paused.body.nextRuns, []);
  await waitFor('the scheduler to disarm it', async () => !scheduler.armedIds().includes('web') || null, 5000);
  assert.equal((await call('POST', '/api/v1/schedules/web/resume')).body.state.paused, false);

  const trig = await call('POST', '/api/v1/schedules/web/trigger');
  assert.equal(trig.status, 202);
  assert.match(trig.body.jobId, /^sched-web-manual-/);
  assert.ok(await jobs.getJob(trig.body.jobId));

  assert.equal((await call('DELETE', '/api/v1/schedules/web')).status, 200);
  assert.equal((await call('GET', '/api/v1/schedules/web')).status, 404);
});

test('next-runs from a given time shows what DST does: a run moved past the gap, a second pass; dst skip shows neither', async () => {
  const create = async (id: string, cron: string, dst?: string) =>
    assert.equal((await call('POST', '/api/v1/schedules', { id, cron, timezone: 'America/New_York', target: { pid: target.pid }, ...(dst ? { dst } : {}) })).status, 201);
  await create('nightly-ny', '30 2 * * *');
  await create('nightly-ny-skip', '30 2 * * *', 'skip');
  await create('halfhourly-ny', '*/30 * * * *');
  try {
    const spring = await call('GET', '/api/v1/schedules/nightly-ny/next-runs?n=2&from=2027-03-13T12:00:00Z');
    assert.equal(spring.status, 200);
    assert.equal(spring.body.dst, 'cron');
    assert.deepEqual(spring.body.items, [
      { at: '2027-03-14T07:00:00.000Z', local: '2027-03-14 03:00:00', dst: 'moved', due: '2027-03-14 02:30:00' },
      { at: '2027-03-15T06:30:00.000Z', local: '2027-03-15 02:30:00' },
    ]);
    const skipped = await call('GET', '/api/v1/schedules/nightly-ny-skip/next-runs?n=1&from=2027-03-13T12:00:00Z');
    assert.equal(skipped.body.dst, 'skip');
    assert.deepEqual(skipped.body.items, [{ at: '2027-03-15T06:30:00.000Z', local: '2027-03-15 02:30:00' }]);
    const fall = await call('GET', '/api/v1/schedules/halfhourly-ny/next-runs?n=4&from=2027-11-07T05:29:00-04:00');
    assert.deepEqual(fall.body.items, [
      { at: '2027-11-07T09:30:00.000Z', local: '2027-11-07 04:30:00' },
      { at: '2027-11-07T10:00:00.000Z', local: '2027-11-07 05:00:00' },
      { at: '2027-11-07T10:30:00.000Z', local: '2027-11-07 05:30:00' },
      { at: '2027-11-07T11:00:00.000Z', local: '2027-11-07 06:00:00' },
    ], 'from is read with its offset');
    const doubled = await call('GET', '/api/v1/schedules/halfhourly-ny/next-runs?n=4&from=2027-11-07T05:29:00Z');
    assert.deepEqual(doubled.body.items, [
      { at: '2027-11-07T05:30:00.000Z', local: '2027-11-07 01:30:00' },
      { at: '2027-11-07T06:00:00.000Z', local: '2027-11-07 01:00:00', dst: 'repeated' },
      { at: '2027-11-07T06:30:00.000Z', local: '2027-11-07 01:30:00', dst: 'repeated' },
      { at: '2027-11-07T07:00:00.000Z', local: '2027-11-07 02:00:00' },
    ]);
    const bad = await call('GET', '/api/v1/schedules/nightly-ny/next-runs?from=tomorrow');
    assert.equal(bad.status, 400);
    assert.match(bad.body.message, /query\.from: an ISO 8601 date-time/);
  } finally {
    for (const id of ['nightly-ny', 'nightly-ny-skip', 'halfhourly-ny']) await call('DELETE', `/api/v1/schedules/${id}`);
  }
});

test('unknown ids: 404 on every route; a target that does not resolve: trigger answers 422', async () => {
  for (const [method, url] of [
    ['GET', '/api/v1/schedules/nope'],
    ['PUT', '/api/v1/schedules/nope'],
    ['DELETE', '/api/v1/schedules/nope'],
    ['POST', '/api/v1/schedules/nope/pause'],
    ['POST', '/api/v1/schedules/nope/resume'],
    ['POST', '/api/v1/schedules/nope/trigger'],
    ['GET', '/api/v1/schedules/nope/next-runs'],
  ] as const) {
    const r = await call(method, url, method === 'PUT' ? { cron: '* * * * *', target: { pid: 1 } } : undefined);
    assert.equal(r.status, 404, `${method} ${url}`);
    assert.equal(r.body.error, 'not_found');
  }
  await call('POST', '/api/v1/schedules', { id: 'ghost', cron: '0 0 1 1 *', target: { pid: 999_999 } });
  const r = await call('POST', '/api/v1/schedules/ghost/trigger');
  assert.equal(r.status, 422);
  assert.match(r.body.message, /target: pid 999999: no such process/);
});
