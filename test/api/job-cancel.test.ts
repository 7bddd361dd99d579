import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { runCli } from '../cli/run.js';
import { CapturedLog } from '../helpers/log-lines.js';
import { criuWorkersOf, holdCriuWorkersWhen, waitEnded } from '../helpers/criu.js';
import { startCounter } from '../helpers/targets.js';
import { countsOn } from '../helpers/wait.js';
import { api, FeedRecorder, jobIn, startServiceUnderTest } from './harness.js';

function procState(pid: number): string {
  return /^State:\s+(\S)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]!;
}

test('DELETE aborts an active dump of a big target: the target runs on (not stopped), no attempt folder stays; retry makes the checkpoint; the CLI cancels and retries', async (t) => {
  const log = new CapturedLog();
  const svc = await startServiceUnderTest(t, {}, { log: log.logger });
  if (!svc) return;
  const target = await startCounter(512);
  t.after(() => target.kill());
  const key = `python3-${target.pid}`;
  const feed = await FeedRecorder.open(svc.url);
  t.after(() => feed.close());
  feed.send({ op: 'subscribe', channels: ['job'] });
  await feed.waitFor((m) => m.type === 'subscribed');

  const { jobId } = (await api(svc.url, 'POST', '/api/v1/dumps', { target: { pid: target.pid } })).json;
  // CRIU's worker for this dump (the service forks one per connection) is held still as soon as it appears, so the
  // dump cannot finish before the cancel has reached the ckpt worker, however fast the machine; let go, CRIU finds its
  // connection closed at its next step and ends, leaving the target as it was.
  const servicePid = Number(readFileSync(path.join(svc.config.criu.runtimeDir, 'criu-service.pid'), 'utf8'));
  const releaseCriu = await holdCriuWorkersWhen(servicePid, `CRIU's worker for dump ${jobId}`, async () => true);
  const criuWorkers = criuWorkersOf(servicePid);
  try {
    const res = await api(svc.url, 'DELETE', `/api/v1/jobs/${jobId}`);
    assert.equal(res.status, 202, res.text);
    assert.deepEqual(res.json, { id: jobId, outcome: 'aborting' });
    // The cancel travels by Redis pub/sub to the worker (in this process), which closes its CRIU connection at once
    // and ends the job: its end is seen while CRIU is still held.
    await feed.waitFor((m) => m.type === 'event' && m.jobId === jobId && m.event === 'job.cancelled', 30_000);
  } finally {
    releaseCriu();
  }
  await waitEnded(criuWorkers, "CRIU's worker, let go,");

  const job = await jobIn(svc.url, jobId);
  assert.equal(job.state, 'failed', 'the dump was aborted, not finished');
  assert.equal(job.failedReason, 'cancelled by an operator');
  const events = feed.events(jobId).map((e) => e.event);
  assert.ok(events.includes('job.cancelled'), events.join(' '));
  assert.ok(!events.includes('job.failed'), 'a cancel is not a failure (schedules do not count it)');
  assert.deepEqual(
    log.ofJob(jobId).map((l) => [l.msg, l.target]),
    [['job started', `pid ${target.pid}`], ['job cancelled', key]],
  );

  // CRIU's worker has ended: the target runs, it is not stopped, nothing of the attempt is left.
  assert.ok(target.alive());
  assert.ok(!['T', 't'].includes(procState(target.pid)), `State ${procState(target.pid)}`);
  await countsOn(target);
  const targetDir = path.join(svc.config.storage.root, key);
  assert.ok(!existsSync(targetDir), `no attempt folder, nor the target folder it emptied: ${existsSync(targetDir) && readdirSync(targetDir).join(', ')}`);
  assert.equal((await api(svc.url, 'GET', `/api/v1/checkpoints?target=${key}`)).json.items.length, 0);

  // Cancelling it again is a conflict; the CLI retries it and it completes.
  assert.equal((await api(svc.url, 'DELETE', `/api/v1/jobs/${jobId}`)).status, 409);
  const env = { CKPT_URL: svc.url };
  const retried = await runCli(['job', 'retry', jobId], env);
  assert.equal(retried.code, 0, retried.stderr);
  assert.match(retried.stdout, new RegExp(`job ${jobId} queued again on node test-node`));
  const done = await jobIn(svc.url, jobId);
  assert.equal(done.state, 'completed', done.failedReason);
  assert.equal(done.attemptsMade, 1, 'attempts start again from the first');
  assert.equal((await api(svc.url, 'GET', `/api/v1/checkpoints?target=${key}`)).json.items.length, 1);
  // The retry is announced once, before its run starts; the first run's announcement is not repeated.
  await feed.waitFor((m) => m.type === 'event' && m.jobId === jobId && m.event === 'job.completed', 30_000);
  const starts = feed
    .events(jobId)
    .filter((e) => e.event === 'job.waiting' || e.event === 'job.active')
    .map((e) => (e.event === 'job.waiting' && e.data.retried ? 'job.waiting retried' : e.event));
  assert.deepEqual(starts, ['job.waiting', 'job.active', 'job.waiting retried', 'job.active']);

  const again = await runCli(['job', 'cancel', jobId], env);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /completed already/);
  const unknown = await runCli(['job', 'retry', 'no-such-job'], env);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /not found/);
  const usage = await runCli(['job', 'frobnicate', jobId], env);
  assert.equal(usage.code, 2);
});
