// Redis high availability: the master dies (SIGKILL) in the middle of a stream of dump jobs, Sentinel promotes the
// replica, and ckpt (API, feed, worker, scheduler, all in one process here) carries on by itself.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import WebSocket from 'ws';
import { startCounter } from '../helpers/targets.js';
import { TestSentinelSet } from '../helpers/sentinel.js';
import { api, FeedRecorder, startServiceUnderTest } from './harness.js';

const JOBS = 100;
/** Jobs enqueued before the master dies; the rest are enqueued while and after it fails over. */
const BEFORE_KILL = 50;
/** The master is killed once this many jobs have completed. */
const KILL_AFTER_COMPLETED = 15;

test(`Sentinel: the master is SIGKILLed during ${JOBS} dump jobs; every job completes exactly once, one checkpoint each; the feed and the API carry on`, async (t) => {
  const set = await TestSentinelSet.start();
  let stopSet: Promise<void> | undefined;
  const svc = await startServiceUnderTest(
    t,
    {
      // Small, quick dumps: the test is about Redis, and 100 of them must fit in a minute on a loaded machine.
      criu: { logLevel: 1 },
      storage: { sync: false },
      worker: { concurrency: 4, attempts: 3, backoff: { baseDelayMs: 200, maxDelayMs: 1000 } },
    },
    { redisConfig: () => set.config },
  ).catch(async (err) => {
    await set.stop();
    throw err;
  });
  // Registered after the service's own cleanup, so Redis outlives the service.
  t.after(() => (stopSet ??= set.stop()));
  if (!svc) return;
  const targets = await Promise.all([startCounter(), startCounter(), startCounter(), startCounter()]);
  t.after(() => Promise.all(targets.map((x) => x.kill())));
  const feed = await FeedRecorder.open(svc.url);
  t.after(() => feed.close());
  feed.send({ op: 'subscribe', channels: ['job'] });
  await feed.waitFor((m) => m.type === 'subscribed');

  const jobIds: string[] = [];
  let refusedWhileFailingOver = 0;
  const enqueue = async (i: number) => {
    for (;;) {
      const res = await api(svc.url, 'POST', '/api/v1/dumps', { target: { pid: targets[i % targets.length]!.pid } });
      if (res.status === 202) return void jobIds.push(res.json.jobId);
      // During the failover the API answers at once that Redis is away; a client tries again.
      assert.equal(res.status, 503, res.text);
      assert.equal(res.json.error, 'unavailable');
      refusedWhileFailingOver++;
      await sleep(100);
    }
  };
  const completed = () => new Set(feed.events().filter((e) => e.event === 'job.completed').map((e) => e.jobId));

  const t0 = Date.now();
  const mark = (what: string) => t.diagnostic(`${what} at ${Date.now() - t0} ms, completed ${completed().size}`);
  for (let i = 0; i < BEFORE_KILL; i++) await enqueue(i);
  mark('enqueued first half');
  while (completed().size < KILL_AFTER_COMPLETED) await sleep(20);
  const oldMaster = await set.masterPort();
  set.killMaster();
  mark('killed');
  for (let i = BEFORE_KILL; i < JOBS; i++) await enqueue(i);
  mark('enqueued second half');
  const newMaster = await set.masterPort();
  assert.notEqual(newMaster, oldMaster, 'Sentinel promoted the replica');
  assert.equal(newMaster, set.replica.port);

  // Every job reaches job.completed on the same WebSocket connection that was open before the failover.
  try {
    await feed.waitFor(() => jobIds.every((id) => completed().has(id)), 240_000);
  } catch (err) {
    const missing = jobIds.filter((id) => !completed().has(id));
    const states = await Promise.all(
      missing.slice(0, 3).map(async (id) => {
        const job = (await api(svc.url, 'GET', `/api/v1/jobs/${id}`)).json;
        const log = (await api(svc.url, 'GET', `/api/v1/jobs/${id}/log`)).text.split('\n').filter((l) => !/^\(\d/.test(l));
        return `${id} ${job.state} attempts ${job.attemptsMade} ${job.failedReason ?? ''}: ${log.join(' | ')}`;
      }),
    );
    throw new Error(`${missing.length} of ${JOBS} jobs not completed; first: ${states.join('\n')}`, { cause: err });
  }
  mark('all completed');
  assert.equal(feed.ws.readyState, WebSocket.OPEN, 'the feed connection survived the failover');

  // The history in the new master: job.completed exactly once per job.
  const admin = new Redis(newMaster, '127.0.0.1');
  const stream = await admin.xrange('ckpt:events', '-', '+');
  admin.disconnect();
  const events = stream.map(([, fields]) => JSON.parse(fields[1]!) as { event: string; jobId?: string });
  const completions = new Map<string, number>();
  const activations = new Map<string, number>();
  for (const e of events) {
    if (e.event === 'job.completed') completions.set(e.jobId!, (completions.get(e.jobId!) ?? 0) + 1);
    if (e.event === 'job.active') activations.set(e.jobId!, (activations.get(e.jobId!) ?? 0) + 1);
  }
  for (const id of jobIds) assert.equal(completions.get(id), 1, `job ${id} completed ${completions.get(id) ?? 0} times`);
  assert.equal(completions.size, JOBS);
  // Also what the live feed delivered: no completion twice.
  const fed = feed.events().filter((e) => e.event === 'job.completed').map((e) => e.jobId);
  assert.equal(fed.length, new Set(fed).size, 'the feed delivered no completion twice');

  // The catalog: one checkpoint per job, each made by its job.
  const list = await api(svc.url, 'GET', '/api/v1/checkpoints?limit=1000');
  assert.equal(list.status, 200, list.text);
  assert.deepEqual(list.json.items.map((c: any) => c.jobId).sort(), [...jobIds].sort());
  const health = await api(svc.url, 'GET', '/healthz');
  assert.equal(health.json.checks.redis.ok, true, health.text);
  const ranTwice = [...activations.values()].filter((n) => n > 1).length;
  t.diagnostic(`503 answers while failing over: ${refusedWhileFailingOver}; jobs that ran more than once (idempotent): ${ranTwice}`);
});
