// What the README promises about the HTTP API and the feed, through a real service (real Redis, CRIU, worker,
// processes): the catalog's delete / force / pin / 409s, list filters and offsets, batch restores, target errors,
// /healthz's 503s and the feed's filters and shutdown close. One service for the file: the parts share its set-up.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { spawn } from 'node:child_process';
import { Redis } from 'ioredis';
import { Catalog } from '../../src/catalog/catalog.js';
import { CheckpointStore } from '../../src/catalog/checkpoint-store.js';
import { EventLog } from '../../src/events/event-log.js';
import { JobQueue } from '../../src/queue/job-queue.js';
import { jobKeyFileOf, loadSigner } from '../../src/security/key-file.js';
import { startCounter, waitGone, type Counter } from '../helpers/targets.js';
import { countsOn, waitUntil } from '../helpers/wait.js';
import { api, FeedRecorder, startServiceUnderTest } from './harness.js';

test('the README claims of the HTTP API and the feed', async (t) => {
  const svc = await startServiceUnderTest(t);
  if (!svc) return;
  const targets: Counter[] = [];
  t.after(() => Promise.all(targets.map((c) => c.kill())));
  const counter = async (mib = 0) => {
    const c = await startCounter(mib);
    targets.push(c);
    return c;
  };
  const finished = (jobId: string) =>
    waitUntil(`job ${jobId} to finish`, async () => {
      const { json } = await api(svc.url, 'GET', `/api/v1/jobs/${jobId}`);
      return (json.state === 'completed' || json.state === 'failed') && json;
    }, { timeoutMs: 60_000, pollMs: 50 });
  const dump = async (body: object) => {
    const res = await api(svc.url, 'POST', '/api/v1/dumps', body);
    assert.equal(res.status, 202, res.text);
    const job = await finished(res.json.jobId);
    assert.equal(job.state, 'completed', job.failedReason);
    return job.result.checkpointId as string;
  };
  const a = await counter();
  const b = await counter();
  const keyOf = (c: Counter) => `python3-${c.pid}`;

  await t.test('checkpoints: list newest first, filtered by target and schedule, paged with limit and offset', async () => {
    const a1 = await dump({ target: { pid: a.pid } });
    const b1 = await dump({ target: { pid: b.pid } });
    const a2 = await dump({ target: { pid: a.pid } });
    const created = await api(svc.url, 'POST', '/api/v1/schedules', { id: 'claims', cron: '0 0 1 1 *', target: { pid: b.pid } });
    assert.equal(created.status, 201, created.text);
    const trigger = await api(svc.url, 'POST', '/api/v1/schedules/claims/trigger');
    assert.equal(trigger.status, 202, trigger.text);
    const scheduled = (await finished(trigger.json.jobId)).result.checkpointId;

    const ids = async (query: string) => (await api(svc.url, 'GET', `/api/v1/checkpoints${query}`)).json.items.map((c: any) => c.id);
    assert.deepEqual(await ids(''), [scheduled, a2, b1, a1]);
    assert.deepEqual(await ids(`?target=${keyOf(a)}`), [a2, a1]);
    assert.deepEqual(await ids(`?target=${keyOf(b)}`), [scheduled, b1]);
    assert.deepEqual(await ids('?schedule=claims'), [scheduled]);
    assert.deepEqual(await ids('?limit=2'), [scheduled, a2]);
    assert.deepEqual(await ids('?limit=2&offset=2'), [b1, a1]);
    assert.deepEqual(await ids('?offset=4'), []);
    assert.deepEqual(await ids(`?target=${keyOf(a)}&offset=1`), [a1]);
  });

  await t.test('checkpoints: pin makes delete 409 until unpinned or forced; delete removes the files', async () => {
    const id = await dump({ target: { pid: a.pid } });
    const manifest = (await api(svc.url, 'GET', `/api/v1/checkpoints/${id}`)).json;
    const folder = path.join(svc.config.storage.root, manifest.target.key, id);
    assert.ok(existsSync(folder), folder);
    assert.equal((await api(svc.url, 'POST', `/api/v1/checkpoints/${id}/pin`)).status, 200);
    assert.equal((await api(svc.url, 'GET', `/api/v1/checkpoints/${id}`)).json.pinned, true);
    const refused = await api(svc.url, 'DELETE', `/api/v1/checkpoints/${id}`);
    assert.equal(refused.status, 409, refused.text);
    assert.match(refused.json.message, /pinned/);
    assert.ok(existsSync(folder), 'a refused delete leaves the files');
    assert.equal((await api(svc.url, 'POST', `/api/v1/checkpoints/${id}/unpin`)).status, 200);
    assert.equal((await api(svc.url, 'GET', `/api/v1/checkpoints/${id}`)).json.pinned, false);
    assert.equal((await api(svc.url, 'POST', `/api/v1/checkpoints/${id}/pin`)).status, 200);
    const forced = await api(svc.url, 'DELETE', `/api/v1/checkpoints/${id}?force=true`);
    assert.equal(forced.status, 200, forced.text);
    assert.equal((await api(svc.url, 'GET', `/api/v1/checkpoints/${id}`)).status, 404);
    assert.equal(existsSync(folder), false, 'the files went with it');

    const plain = await dump({ target: { pid: a.pid } });
    assert.equal((await api(svc.url, 'DELETE', `/api/v1/checkpoints/${plain}`)).status, 200);
    assert.equal((await api(svc.url, 'GET', `/api/v1/checkpoints/${plain}`)).status, 404);
  });

  await t.test('checkpoints: one a waiting restore refers to is 409 on delete, even with force, naming the job', async () => {
    const id = await dump({ target: { pid: b.pid } });
    // A restore for a node no worker serves stays waiting, holding its in-use mark (taken at enqueue).
    const redis = new Redis(svc.redis.url, { maxRetriesPerRequest: null });
    // Signed with the service's own key, as the API would: the worker of another node must be able to trust it.
    const signer = loadSigner(jobKeyFileOf(svc.config));
    const queue = new JobQueue({
      connection: svc.redis.url,
      prefix: svc.config.redis.prefix,
      node: svc.config.node,
      eventLog: new EventLog(redis, { key: `${svc.config.redis.prefix}:events` }),
      defaults: svc.config.worker,
      checkpoints: new Catalog(redis, { prefix: svc.config.redis.prefix, store: new CheckpointStore({ root: svc.config.storage.root, signer }), node: svc.config.node }),
      signer,
    });
    try {
      const { jobId } = await queue.enqueueRestore({ checkpointId: id, node: 'no-worker-here' });
      const refused = await api(svc.url, 'DELETE', `/api/v1/checkpoints/${id}?force=true`);
      assert.equal(refused.status, 409, refused.text);
      assert.ok(refused.json.message.includes(jobId), refused.json.message);
      assert.equal((await api(svc.url, 'GET', `/api/v1/checkpoints/${id}`)).status, 200);
    } finally {
      await queue.close();
      redis.disconnect();
    }
  });

  await t.test('batch restore over HTTP: 202 {batchId, jobIds}, every checkpoint restored and counting on', async () => {
    const [c, d] = [await counter(), await counter()];
    const ids = [await dump({ target: { pid: c.pid }, leaveRunning: false }), await dump({ target: { pid: d.pid }, leaveRunning: false })];
    await Promise.all([waitGone(c.pid), waitGone(d.pid)]);
    const [atC, atD] = [c.read(), d.read()];
    const res = await api(svc.url, 'POST', '/api/v1/restores/batch', { checkpointIds: ids, concurrency: 2 });
    assert.equal(res.status, 202, res.text);
    assert.equal(res.json.jobIds.length, 2);
    const batch = await finished(res.json.batchId);
    assert.equal(batch.state, 'completed', batch.failedReason);
    assert.deepEqual(batch.result.items.map((i: any) => [i.jobId, i.checkpointId, i.state]), [
      [res.json.jobIds[0], ids[0], 'completed'],
      [res.json.jobIds[1], ids[1], 'completed'],
    ]);
    await countsOn(c, atC);
    await countsOn(d, atD);
  });

  await t.test('targets that do not resolve to one process: 422 {error: "target"} with the reason, no job', async () => {
    const before = (await api(svc.url, 'GET', '/api/v1/jobs?limit=1000')).json.items.length;
    // This file's two counters (other processes on the machine may run the same script).
    const ours = `counter\\.py (${escapeRegex(a.dir)}|${escapeRegex(b.dir)})/`;
    const ambiguous = await api(svc.url, 'POST', '/api/v1/dumps', { target: { match: ours } });
    assert.equal(ambiguous.status, 422, ambiguous.text);
    assert.equal(ambiguous.json.error, 'target');
    assert.match(ambiguous.json.message, /matches 2 processes/);
    for (const c of [a, b]) assert.ok(ambiguous.json.message.includes(`${c.pid} (`), ambiguous.json.message);
    const none = await api(svc.url, 'POST', '/api/v1/dumps', { target: { match: `no-such-process-${process.hrtime.bigint()}` } });
    assert.equal(none.status, 422, none.text);
    assert.equal(none.json.error, 'target');
    // A regex that backtracks without end over a command line is stopped at its limit: 422, and the API goes on.
    const victim = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 600_000)', `${'a'.repeat(40)}b`], { stdio: 'ignore' });
    try {
      await waitUntil('the victim to start', () => readFileSync(`/proc/${victim.pid}/cmdline`, 'utf8').includes('aaab'));
      const slow = await api(svc.url, 'POST', '/api/v1/dumps', { target: { match: '(a+)+$' } });
      assert.equal(slow.status, 422, slow.text);
      assert.match(slow.json.message, /took longer than 2000 ms/);
    } finally {
      victim.kill('SIGKILL');
    }
    assert.equal((await api(svc.url, 'GET', '/healthz')).status, 200, 'the service still answers');
    assert.equal((await api(svc.url, 'GET', '/api/v1/jobs?limit=1000')).json.items.length, before, 'no job was made');
  });

  await t.test('feed filters: by target only that target’s events; by schedule only that schedule’s', async () => {
    const byTarget = await FeedRecorder.open(svc.url);
    const bySchedule = await FeedRecorder.open(svc.url);
    t.after(() => Promise.all([byTarget.close(), bySchedule.close()]));
    byTarget.send({ op: 'subscribe', channels: ['job', 'checkpoint'], filter: { target: keyOf(a) } });
    bySchedule.send({ op: 'subscribe', channels: ['job', 'schedule', 'checkpoint'], filter: { scheduleId: 'claims' } });
    await byTarget.waitFor((m) => m.type === 'subscribed');
    await bySchedule.waitFor((m) => m.type === 'subscribed');
    // b first, then a, then the schedule: each client's last expected event comes after every one it must not get.
    await dump({ target: { pid: b.pid } });
    const aId = await dump({ target: { pid: a.pid } });
    const trigger = await api(svc.url, 'POST', '/api/v1/schedules/claims/trigger');
    await finished(trigger.json.jobId);
    await byTarget.waitFor((m) => m.type === 'event' && m.event === 'job.completed' && m.data.result.checkpointId === aId);
    await bySchedule.waitFor((m) => m.type === 'event' && m.event === 'job.completed' && m.jobId === trigger.json.jobId);
    const targetEvents = byTarget.events();
    assert.ok(targetEvents.length > 0);
    for (const e of targetEvents) assert.equal(e.target, keyOf(a), JSON.stringify(e));
    const scheduleEvents = bySchedule.events();
    assert.ok(scheduleEvents.some((e) => e.event === 'schedule.fired'));
    for (const e of scheduleEvents) assert.equal(e.scheduleId, 'claims', JSON.stringify(e));
  });

  await t.test('/healthz: 503 naming the check when storage is low or CRIU is not there; the feed closes 1001 on shutdown', async () => {
    const low = await svc.startAnother({ storage: { root: svc.config.storage.root, minFreeBytes: 2 ** 52 } });
    const lowHealth = await api(low.url, 'GET', '/healthz');
    assert.equal(lowHealth.status, 503, lowHealth.text);
    assert.equal(lowHealth.json.status, 'unhealthy');
    assert.equal(lowHealth.json.checks.storage.ok, false);
    assert.equal(lowHealth.json.checks.redis.ok, true);

    const noCriu = await svc.startAnother({ criu: { socket: path.join(svc.config.storage.root, 'no-criu-here.sock') } });
    const criuHealth = await api(noCriu.url, 'GET', '/healthz');
    assert.equal(criuHealth.status, 503, criuHealth.text);
    assert.equal(criuHealth.json.checks.criu.ok, false);
    assert.match(criuHealth.json.checks.criu.error, /no CRIU service socket/);
    assert.equal(criuHealth.json.checks.storage.ok, true);

    const feed = await FeedRecorder.open(noCriu.url);
    const closed = new Promise<number>((resolve) => feed.ws.once('close', (code) => resolve(code)));
    await noCriu.close();
    assert.equal(await closed, 1001, 'going away');
    await low.close();
  });
});

function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
