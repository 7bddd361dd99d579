// Redis high availability: the master dies (SIGKILL) in the middle of a stream of dump jobs, Sentinel promotes the
// replica, and ckpt (API, feed, worker, scheduler, all in one process here) carries on by itself. Real redis-server
// processes (a master, a replica, three sentinels) on loopback, real CRIU dumps of real processes.
import assert from 'node:assert/strict';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import WebSocket from 'ws';
import { startCounter } from '../helpers/targets.js';
import { TestSentinelSet } from '../helpers/sentinel.js';
import { waitUntil } from '../helpers/wait.js';
import { api, FeedRecorder, startServiceUnderTest } from './harness.js';

const JOBS = 100;
/** Jobs enqueued before the master dies; the rest are enqueued while and after it fails over. */
const BEFORE_KILL = 50;
/** The master is killed once this many jobs have completed. */
const KILL_AFTER_COMPLETED = 15;
/**
 * "None hangs": the test fails when no job has finished for this long while some are still open. Not a speed
 * limit (a loaded machine may take minutes for the whole stream), a sign of life.
 */
const NO_PROGRESS_LIMIT_MS = 120_000;

test(`Sentinel: the master is SIGKILLed during ${JOBS} dump jobs; every accepted job completes exactly once, one checkpoint each; the feed and the API carry on`, async (t) => {
  const set = await TestSentinelSet.start();
  let stopSet: Promise<void> | undefined;
  const svc = await startServiceUnderTest(
    t,
    {
      // Small, quick dumps: the test is about Redis.
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
  // How late this process's event loop (the service's) runs, per phase: the machine's load shows there.
  const loopDelay = monitorEventLoopDelay({ resolution: 20 });
  loopDelay.enable();
  t.after(() => loopDelay.disable());

  const jobIds: string[] = [];
  let refusedWhileFailingOver = 0;
  let firstAcceptedAfterKill: number | undefined;
  let killedAt = 0;
  const enqueue = async (i: number) => {
    for (const deadline = Date.now() + 60_000; ; ) {
      const res = await api(svc.url, 'POST', '/api/v1/dumps', { target: { pid: targets[i % targets.length]!.pid } });
      if (res.status === 202) {
        if (killedAt && firstAcceptedAfterKill === undefined) firstAcceptedAfterKill = Date.now();
        return void jobIds.push(res.json.jobId);
      }
      // During the failover the API answers that Redis is away; a client tries again.
      assert.equal(res.status, 503, res.text);
      assert.equal(res.json.error, 'unavailable');
      refusedWhileFailingOver++;
      if (Date.now() > deadline) throw new Error(`dump ${i} still refused (503) 60 s after the first try: the API never found the new master`);
      await sleep(100);
    }
  };
  const finals = () => feed.events().filter((e) => e.event === 'job.completed' || (e.event === 'job.failed' && e.data.final));
  const completed = () => new Set(feed.events().filter((e) => e.event === 'job.completed').map((e) => e.jobId));

  const t0 = Date.now();
  const phase = (what: string) => {
    t.diagnostic(
      `${what} at ${Date.now() - t0} ms, completed ${completed().size}; event loop delay p50 ${Math.round(loopDelay.percentile(50) / 1e6)} ms, ` +
        `p99 ${Math.round(loopDelay.percentile(99) / 1e6)} ms, max ${Math.round(loopDelay.max / 1e6)} ms`,
    );
    loopDelay.reset();
  };
  for (let i = 0; i < BEFORE_KILL; i++) await enqueue(i);
  phase('enqueued first half');
  await waitUntil(`${KILL_AFTER_COMPLETED} jobs to complete before the master is killed`, () => completed().size >= KILL_AFTER_COMPLETED, { timeoutMs: 120_000 });
  const oldMaster = await set.masterPort();
  phase('killing the master');
  set.killMaster();
  killedAt = Date.now();
  const promoted = waitUntil('Sentinel to promote the replica', async () => (await set.masterPort()) !== oldMaster && Date.now(), { timeoutMs: 60_000 });
  for (let i = BEFORE_KILL; i < JOBS; i++) await enqueue(i);
  phase('enqueued second half');
  const promotedAt = await promoted;
  assert.equal(await set.masterPort(), set.replica.port, 'Sentinel promoted the replica');

  // Every accepted job reaches a final event (completed, or failed for good) on the WebSocket connection that was open
  // before the failover; the wait ends early only when nothing has finished for NO_PROGRESS_LIMIT_MS (a hang).
  let lastCount = 0;
  let lastProgressAt = Date.now();
  for (;;) {
    const done = new Set(finals().map((e) => e.jobId));
    if (jobIds.every((id) => done.has(id))) break;
    if (done.size !== lastCount) [lastCount, lastProgressAt] = [done.size, Date.now()];
    if (Date.now() - lastProgressAt > NO_PROGRESS_LIMIT_MS) {
      const open = jobIds.filter((id) => !done.has(id));
      const states: string[] = await Promise.all(
        open.slice(0, 3).map(async (id): Promise<string> => {
          const job: any = (await api(svc.url, 'GET', `/api/v1/jobs/${id}`)).json;
          const log = (await api(svc.url, 'GET', `/api/v1/jobs/${id}/log`)).text.split('\n').filter((l) => !/^\(\d/.test(l));
          return `${id} ${job?.state} attempts ${job?.attemptsMade} ${job?.failedReason ?? ''}: ${log.join(' | ')}`;
        }),
      );
      assert.fail(`${open.length} of ${JOBS} jobs hang (nothing finished for ${NO_PROGRESS_LIMIT_MS} ms); first: ${states.join('\n')}`);
    }
    await sleep(50);
  }
  phase('all finished');
  assert.equal(feed.ws.readyState, WebSocket.OPEN, 'the feed connection survived the failover');

  // The history in the new master: one final event per job, job.completed at most once.
  const admin = new Redis(set.replica.port, '127.0.0.1');
  const stream = await admin.xrange('ckpt:events', '-', '+');
  admin.disconnect();
  const events = stream.map(([id, fields]) => ({ ...(JSON.parse(fields[1]!) as { event: string; jobId?: string; data: any }), landedAt: Number(id.split('-')[0]) }));
  // Recovery as the new master saw it (stream ids are its clock): the first event written after the kill, and the
  // first job that was taken (job.active) after the kill and then completed.
  const firstWriteAfterKill = events.find((e) => e.landedAt > killedAt)!.landedAt;
  const startedAfterKill = new Set(events.filter((e) => e.event === 'job.active' && e.landedAt > killedAt).map((e) => e.jobId));
  const firstRunAfterKill = events.find((e) => e.event === 'job.completed' && startedAfterKill.has(e.jobId))!.landedAt;
  const count = (name: string, final?: boolean) => {
    const n = new Map<string, number>();
    for (const e of events) if (e.event === name && (final === undefined || e.data.final === final)) n.set(e.jobId!, (n.get(e.jobId!) ?? 0) + 1);
    return n;
  };
  const completions = count('job.completed');
  const failures = count('job.failed', true);
  for (const id of jobIds) {
    assert.equal((completions.get(id) ?? 0) + (failures.get(id) ?? 0), 1, `job ${id}: completed ${completions.get(id) ?? 0}, failed ${failures.get(id) ?? 0} times`);
  }
  // Also what the live feed delivered: no event twice.
  const fed = feed.events().map((e) => e.id);
  assert.equal(fed.length, new Set(fed).size, 'the feed delivered no event twice');

  // The catalog: one checkpoint per completed job, each made by its job.
  const list = await api(svc.url, 'GET', '/api/v1/checkpoints?limit=1000');
  assert.equal(list.status, 200, list.text);
  const completedIds = jobIds.filter((id) => completions.has(id));
  assert.deepEqual(list.json.items.map((c: any) => c.jobId).sort(), completedIds.sort());
  const health = await api(svc.url, 'GET', '/healthz');
  assert.equal(health.json.checks.redis.ok, true, health.text);
  const ranTwice = [...count('job.active').values()].filter((n) => n > 1).length;
  t.diagnostic(
    `figures: after the kill, Sentinel named the replica master at ${promotedAt - killedAt} ms, the first event was written at ` +
      `${firstWriteAfterKill - killedAt} ms, the first dump was accepted (202) at ${firstAcceptedAfterKill! - killedAt} ms, the first job ` +
      `taken after the kill completed at ${firstRunAfterKill - killedAt} ms; 503 answers while failing over: ${refusedWhileFailingOver}; ` +
      `jobs completed ${completedIds.length}, failed ${failures.size}, run more than once (idempotent) ${ranTwice}`,
  );
});
