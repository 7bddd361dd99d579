// README claims about a busy target and a slow CRIU, through the real service (API, scheduler, workers, CRIU): a dump
// that finds its target busy waits (ifBusy wait) or completes as skipped (ifBusy skip); a schedule with overlap: queue
// queues a tick while the previous dump runs, and that job runs after it; a node's criu.bin and criu.env make its CRIU
// service; a CRIU request past criu.timeoutMs fails the job with the timeout as the reason and leaves the target running. A target is held busy, for as long as the test
// needs, by a tracer (a dump waits until nobody traces its target), not by a dump slower than some duration.
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { loggingCriu, requireCriu } from '../helpers/criu.js';
import { holdTraced, processState, startCounter, startUnfreezable, tracerOf, type Counter } from '../helpers/targets.js';
import { countsOn, waitUntil } from '../helpers/wait.js';
import { api, FeedRecorder, startServiceUnderTest } from './harness.js';

test('a busy target and a slow CRIU, through the service', async (t) => {
  // Room for every job the parts hold at once (a dump held by a tracer, one waiting for it, the one that skips), and
  // one attempt per job: a dump past criu.timeoutMs is not tried again here.
  const svc = await startServiceUnderTest(t, { worker: { concurrency: 4, attempts: 1 } });
  if (!svc) return;
  const feed = await FeedRecorder.subscribed(svc.url, ['job', 'schedule', 'checkpoint']);
  t.after(() => feed.close());
  const targets: Counter[] = [];
  t.after(() => Promise.all(targets.map((c) => c.kill())));
  const finished = (jobId: string, timeoutMs = 60_000) =>
    waitUntil(`job ${jobId} to finish`, async () => {
      const { json } = await api(svc.url, 'GET', `/api/v1/jobs/${jobId}`);
      return (json.state === 'completed' || json.state === 'failed') && json;
    }, { timeoutMs, pollMs: 50 });
  const postDump = async (body: object): Promise<string> => {
    const res = await api(svc.url, 'POST', '/api/v1/dumps', body);
    assert.equal(res.status, 202, res.text);
    return res.json.jobId;
  };
  /** Position in the feed (stream order) of the first event matching. */
  const at = (what: string, pred: (m: any) => boolean): number => {
    const i = feed.messages.findIndex((m) => m.type === 'event' && pred(m));
    assert.ok(i >= 0, `no ${what} in the feed`);
    return i;
  };
  const stageAt = (jobId: string, stage: string) => at(`${stage} of ${jobId}`, (m) => m.jobId === jobId && m.event === 'job.progress' && m.data.stage === stage);
  const createdAt = (jobId: string) => at(`checkpoint of ${jobId}`, (m) => m.jobId === jobId && m.event === 'checkpoint.created');

  await t.test('POST /dumps ifBusy: wait (the default) runs after the dump holding the target; skip completes at once as skipped', async (st) => {
    const target = await startCounter();
    targets.push(target);
    const tracer = await holdTraced(target.pid);
    st.after(() => tracer.release());
    // Both go for the target's lock; the one that gets it waits for the tracer, the other for the lock.
    const [a, b] = [await postDump({ target: { pid: target.pid } }), await postDump({ target: { pid: target.pid } })];
    const waiter = (await feed.waitFor((m) => [a, b].includes(m.jobId) && m.event === 'job.progress' && m.data.stage === 'waiting-target')).jobId;
    const holder = waiter === a ? b : a;

    const skipper = await postDump({ target: { pid: target.pid }, ifBusy: 'skip' });
    const skipped = await finished(skipper);
    assert.equal(skipped.state, 'completed', skipped.failedReason);
    assert.equal(skipped.result.skipped, true);
    assert.equal(skipped.result.reason, `another dump of python3-${target.pid} is running (job ${holder})`);
    assert.equal(skipped.result.checkpointId, undefined, 'no checkpoint');
    assert.equal(skipped.attemptsMade, 1);

    await tracer.release();
    const [first, second] = [await finished(holder), await finished(waiter)];
    assert.equal(first.state, 'completed', first.failedReason);
    assert.equal(second.state, 'completed', second.failedReason);
    assert.ok(createdAt(holder) < stageAt(waiter, 'dumping'), 'the waiting dump ran after the first one made its checkpoint');
    const listed = (await api(svc.url, 'GET', `/api/v1/checkpoints?target=python3-${target.pid}`)).json.items.map((c: any) => c.id);
    assert.deepEqual(listed.sort(), [first.result.checkpointId, second.result.checkpointId].sort(), 'two checkpoints, none from the skipped job');
    const folder = path.join(svc.config.storage.root, `python3-${target.pid}`);
    assert.deepEqual(readdirSync(folder).sort(), listed.sort(), 'the folders of the two checkpoints, no attempt folder of the skipped job');
  });

  await t.test('overlap: queue: a tick while the previous dump runs is queued, not skipped, and its dump runs after', async (st) => {
    const target = await startCounter();
    targets.push(target);
    const tracer = await holdTraced(target.pid);
    st.after(() => tracer.release());
    const created = await api(svc.url, 'POST', '/api/v1/schedules', { id: 'queued', cron: '* * * * * *', target: { pid: target.pid }, overlap: 'queue' });
    assert.equal(created.status, 201, created.text);
    const fired = () => feed.messages.filter((m) => m.type === 'event' && m.event === 'schedule.fired' && m.scheduleId === 'queued');
    // The first tick's dump holds the target (it waits for the tracer); a later tick's job waits for that dump.
    const first = (await feed.waitFor((m) => m.event === 'schedule.fired' && m.scheduleId === 'queued')).jobId;
    await waitUntil('a second tick', () => fired().length >= 2, { timeoutMs: 30_000 });
    const second = fired()[1].jobId;
    const next = await feed.waitFor((m) => m.jobId === second && (m.event === 'job.completed' || (m.event === 'job.progress' && m.data.stage === 'waiting-target')));
    assert.equal(next.event, 'job.progress', `the queued tick's job waits for the target: ${JSON.stringify(next)}`);
    assert.equal((await api(svc.url, 'POST', '/api/v1/schedules/queued/pause')).status, 200);
    const ticked = fired().map((m) => m.jobId);

    await tracer.release();
    for (const jobId of ticked) {
      const job = await finished(jobId);
      assert.equal(job.state, 'completed', job.failedReason);
      assert.ok(job.result.checkpointId, `tick job ${jobId} made a checkpoint: ${JSON.stringify(job.result)}`);
    }
    assert.ok(createdAt(first) < stageAt(second, 'dumping'), 'the queued tick dumped after the first tick’s checkpoint');
    const skips = feed.messages.filter((m) => m.type === 'event' && m.event === 'schedule.skipped' && m.scheduleId === 'queued');
    assert.deepEqual(skips, [], 'no tick was dropped');
  });

  await t.test('a node\'s criu.bin runs its CRIU service with criu.env; a dump CRIU does not finish within criu.timeoutMs fails with the timeout, the target runs on untraced', async (st) => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'ckpt-slow-node-'));
    st.after(() => rm(dir, { recursive: true, force: true }));
    // A node of its own with a short CRIU limit, its own criu.bin and criu.env; the rest of the service keeps the defaults.
    const criu = (await requireCriu(st))!;
    const logging = await loggingCriu(st, criu.bin);
    const runtimeDir = path.join(dir, 'run');
    const slow = await svc.startWorker({
      node: 'slow-node',
      criu: { runtimeDir, timeoutMs: 1500, bin: logging.bin, env: { CRIU_TEST_MARK: 'from-criu-env' } },
    });
    st.after(() => slow.close());
    // Its CRIU service is that binary, run with that environment.
    assert.ok((await logging.calls()).includes(`from-criu-env service --address ${path.join(runtimeDir, 'criu.sock')} -v2 -o ${path.join(runtimeDir, 'criu-service.log')}`), (await logging.calls()).join('\n'));
    // CRIU cannot freeze this tree: it waits for its own freeze timeout (10 s), far past criu.timeoutMs.
    const target = await startUnfreezable();
    targets.push(target);
    const jobId = await postDump({ target: { pid: target.pid }, node: 'slow-node' });
    const job = await finished(jobId);
    assert.equal(job.state, 'failed');
    assert.match(job.failedReason, /CRIU DUMP took longer than 1500 ms/);
    stageAt(jobId, 'pre-dump'); // CRIU had begun: it was the dump that ran out of time, not the way to it
    // The worker hands the job back only once CRIU let the target go: it is not traced, not stopped, and counts on.
    assert.equal(tracerOf(target.pid), 0);
    assert.notEqual(processState(target.pid), 't');
    await countsOn(target);
    assert.deepEqual((await api(svc.url, 'GET', `/api/v1/checkpoints?target=python3-${target.pid}`)).json.items, [], 'no checkpoint');
    // The attempt folder is gone too.
    const folder = path.join(svc.config.storage.root, `python3-${target.pid}`);
    assert.deepEqual(existsSync(folder) ? readdirSync(folder) : [], []);
    target.release();
  });
});

