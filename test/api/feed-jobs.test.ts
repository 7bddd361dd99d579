// The feed carrying real jobs end to end: HTTP enqueue -> worker -> CRIU -> events -> WebSocket.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EventId } from '../../src/events/event-id.js';
import { startCounter, waitGone } from '../helpers/targets.js';
import { countsOn } from '../helpers/wait.js';
import { api, FeedRecorder, serviceWithTcpPair, startServiceUnderTest } from './harness.js';

const ALL = ['job', 'schedule', 'checkpoint'];

function assertOrderedOnce(events: { id: string }[]): void {
  const ids = events.map((e) => e.id);
  assert.equal(new Set(ids).size, ids.length, 'no event twice');
  for (let i = 1; i < ids.length; i++) assert.ok(EventId.compare(ids[i - 1]!, ids[i]!) < 0, `ids in order: ${ids[i - 1]} < ${ids[i]}`);
}

test('a dump enqueued over HTTP streams waiting -> active -> progress -> completed, in order, once, with stats; the restore brings the process back', async (t) => {
  const svc = await startServiceUnderTest(t);
  if (!svc) return;
  const target = await startCounter(32);
  t.after(() => target.kill());
  const feed = await FeedRecorder.open(svc.url);
  t.after(() => feed.close());
  feed.send({ op: 'subscribe', channels: ALL });
  await feed.waitFor((m) => m.type === 'subscribed');

  const atEnqueue = target.read();
  const enq = await api(svc.url, 'POST', '/api/v1/dumps', { target: { pid: target.pid } });
  assert.equal(enq.status, 202, enq.text);
  const { jobId } = enq.json;
  const done = await feed.waitFor((m) => m.type === 'event' && m.jobId === jobId && (m.event === 'job.completed' || m.event === 'job.failed'));
  assert.equal(done.event, 'job.completed', JSON.stringify(done.data));
  const events = feed.events(jobId);
  const names = events.map((e) => e.event);
  assert.equal(names[0], 'job.waiting');
  assert.equal(names[1], 'job.active');
  assert.equal(names.at(-1), 'job.completed');
  assert.ok(names.includes('job.progress'), `progress events: ${names.join(', ')}`);
  assert.ok(names.includes('job.log'), 'CRIU log lines streamed');
  assert.ok(names.indexOf('checkpoint.created') < names.indexOf('job.completed'));
  assertOrderedOnce(events);
  // CRIU's NOTIFY stages reach the feed each once, in CRIU's order, and all before the checkpoint and the completion.
  const criuStages = events.filter((e) => e.event === 'job.progress' && ['pre-dump', 'post-dump'].includes(e.data.stage));
  assert.deepEqual(criuStages.map((e) => e.data.stage), ['pre-dump', 'post-dump'], `CRIU stages in progress: ${names.join(', ')}`);
  assert.ok(events.indexOf(criuStages[1]!) < names.indexOf('checkpoint.created'), 'post-dump before checkpoint.created');
  const result = done.data.result;
  assert.ok(result.stats.pagesWritten > 0, 'CRIU stats in the result');
  assert.ok(result.bytes > 32 * 1024 * 1024, `checkpoint bytes ${result.bytes}`);
  assert.ok(target.alive(), 'leaveRunning is the default: the target still runs');

  // The job and the checkpoint as the API shows them.
  const job = await api(svc.url, 'GET', `/api/v1/jobs/${jobId}`);
  assert.equal(job.json.state, 'completed');
  assert.equal(job.json.result.checkpointId, result.checkpointId);
  const cp = await api(svc.url, 'GET', `/api/v1/checkpoints/${result.checkpointId}`);
  assert.equal(cp.status, 200);
  assert.equal(cp.json.target.pid, target.pid);
  const log = await api(svc.url, 'GET', `/api/v1/jobs/${jobId}/log`);
  assert.match(log.text, /Dumping finished successfully/);
  const metrics = (await api(svc.url, 'GET', '/metrics')).text;
  assert.match(metrics, /^ckpt_jobs\{type="dump",state="completed"\} 1$/m);
  assert.match(metrics, /^ckpt_criu_frozen_seconds_count\{type="dump"\} 1$/m);
  assert.match(metrics, /^ckpt_bytes_written_total [1-9]/m);
  assert.match(metrics, /^ckpt_feed_clients 1$/m);
  const health = await api(svc.url, 'GET', '/healthz');
  assert.equal(health.status, 200, health.text);
  assert.equal(health.json.checks.criu.ok, true);

  // Restore: the process is killed, restored from the checkpoint, alive with the same pid, counting on.
  const before = target.read();
  process.kill(target.pid, 'SIGKILL');
  const restore = await api(svc.url, 'POST', '/api/v1/restores', { checkpointId: result.checkpointId });
  assert.equal(restore.status, 202, restore.text);
  const rdone = await feed.waitFor((m) => m.type === 'event' && m.jobId === restore.json.jobId && (m.event === 'job.completed' || m.event === 'job.failed'));
  assert.equal(rdone.event, 'job.completed', JSON.stringify(rdone.data));
  assert.equal(rdone.data.result.restoredPid, target.pid);
  const resumedAt = target.read();
  await countsOn(target, resumedAt);
  assert.ok(target.alive());
  // The worker went on to the restore and finished it: anything about the dump after its completion would be here by now.
  assert.equal(feed.events(jobId).at(-1).id, done.id, 'no event of the dump after job.completed');
  // Resumed from the checkpoint: at least where it was when the dump was asked for, and not from where it was killed.
  assert.ok(resumedAt >= atEnqueue, `resumed at ${resumedAt}, dumped at >= ${atEnqueue}`);
  assert.ok(resumedAt < before + 25, `resumed at ${resumedAt}, killed at ${before}`);
});

test('a client that disconnects mid-job and reconnects with since gets exactly the events it missed; a second API process delivers the same events', async (t) => {
  const svc = await startServiceUnderTest(t);
  if (!svc) return;
  const other = await svc.startAnother({ node: 'api-only' });
  const target = await startCounter(64);
  t.after(() => target.kill());
  const steady = await FeedRecorder.open(svc.url);
  const onOther = await FeedRecorder.open(other.url);
  const flaky = await FeedRecorder.open(svc.url);
  t.after(() => Promise.all([steady.close(), onOther.close(), flaky.close()]));
  for (const f of [steady, onOther, flaky]) {
    f.send({ op: 'subscribe', channels: ['job'] });
    await f.waitFor((m) => m.type === 'subscribed');
  }
  const { json } = await api(svc.url, 'POST', '/api/v1/dumps', { target: { pid: target.pid } });
  const jobId: string = json.jobId;
  // Leave as soon as the job is running; the rest happens while we are away.
  const active = await flaky.waitFor((m) => m.type === 'event' && m.jobId === jobId && m.event === 'job.active');
  await flaky.close();
  const seen = flaky.events(jobId);
  const lastSeen = seen.at(-1)!.id;
  assert.ok(seen.some((e) => e.id === active.id));
  await steady.waitFor((m) => m.type === 'event' && m.jobId === jobId && m.event === 'job.completed');
  await onOther.waitFor((m) => m.type === 'event' && m.jobId === jobId && m.event === 'job.completed');

  const back = await FeedRecorder.open(svc.url);
  t.after(() => back.close());
  back.send({ op: 'subscribe', channels: ['job'], since: lastSeen });
  await back.waitFor((m) => m.type === 'live');
  const missed = steady.events().filter((e) => EventId.compare(e.id, lastSeen) > 0);
  assert.deepEqual(
    back.events().map((e) => e.id),
    missed.map((e) => e.id),
    'the replay is exactly the events after since, in order',
  );
  assert.ok(missed.some((e) => e.event === 'job.completed'));
  assertOrderedOnce(back.events());
  // The other API process, on the same Redis, saw the same events with the same ids.
  assert.deepEqual(
    onOther.events(jobId).map((e) => [e.id, e.event]),
    steady.events(jobId).map((e) => [e.id, e.event]),
  );
});

test('a process tree with an established TCP connection is dumped and restored through the queue and keeps talking', async (t) => {
  const scene = await serviceWithTcpPair(t);
  if (!scene) return;
  const { svc, pair, feed } = scene;
  // The outcome: completed, or failed for good (a failed attempt that will be retried is not the end).
  const finished = (jobId: string) =>
    feed.waitFor((m) => m.type === 'event' && m.jobId === jobId && (m.event === 'job.completed' || (m.event === 'job.failed' && m.data.final)));

  // Without tcpEstablished CRIU refuses, and the job says why.
  const refused = await api(svc.url, 'POST', '/api/v1/dumps', { target: { pid: pair.pid }, leaveRunning: false });
  const refusal = await finished(refused.json.jobId);
  assert.equal(refusal.event, 'job.failed');
  assert.match(refusal.data.reason, /tcp-established/);
  assert.equal(refusal.data.attemptsMade, 1, 'a refusal that retrying cannot change fails at once, not after every attempt');
  assert.equal((await api(svc.url, 'GET', `/api/v1/jobs/${refused.json.jobId}`)).json.attemptsMade, 1);
  assert.ok(pair.alive(), 'a refused dump leaves the process running');

  const dump = await api(svc.url, 'POST', '/api/v1/dumps', { target: { pid: pair.pid }, leaveRunning: false, criu: { tcpEstablished: true } });
  const dumped = await finished(dump.json.jobId);
  assert.equal(dumped.event, 'job.completed', JSON.stringify(dumped.data));
  await waitGone(pair.pid);
  const atDump = pair.read();

  const restore = await api(svc.url, 'POST', '/api/v1/restores', { checkpointId: dumped.data.result.checkpointId, criu: { tcpEstablished: true } });
  const restored = await finished(restore.json.jobId);
  assert.equal(restored.event, 'job.completed', JSON.stringify(restored.data));
  assert.equal(restored.data.result.restoredPid, pair.pid);
  // The parent counts what its child sends: counting on means the restored connection carries data again.
  await countsOn(pair, atDump + 10);
});
