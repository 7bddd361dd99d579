import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EventTailer } from '../../src/feed/tailer.js';
import { summarize } from '../../src/observability/inventory.js';
import { createMetrics } from '../../src/observability/metrics.js';
import { CapturedLog, duplicateKeys } from '../helpers/log-lines.js';
import { sample } from '../helpers/metrics-text.js';
import { startCounter, startTcpPair } from '../helpers/targets.js';
import { waitUntil } from '../helpers/wait.js';
import { startHarness } from './harness.js';

test('after a dump, a retry and a failure: one parsed log line per job transition, and metrics per target counted from events', async (t) => {
  const h = await startHarness(t, { attempts: 10 });
  if (!h) return;
  const log = new CapturedLog();
  await h.startWorker(undefined, log.logger);
  const tailer = new EventTailer({ eventLog: h.eventLog, blockingRedis: h.client.duplicate() });
  await tailer.start();
  h.defer(() => tailer.stop());
  const metrics = createMetrics({
    collectJobCounts: () => h.queue.countsByTypeAndState(),
    collectInventory: async () => summarize(await h.catalog.list({ limit: Infinity }), []),
    defaultMetrics: false,
  });
  metrics.follow(tailer);
  const counter = await startCounter();
  h.defer(() => counter.kill());
  const pair = await startTcpPair();
  h.defer(() => pair.kill());
  const counterKey = `python3-${counter.pid}`;

  // A dump that completes at once.
  const ok = await h.queue.enqueueDump({ target: { pid: counter.pid } });
  assert.equal((await h.waitFinished(ok.jobId)).state, 'completed');

  // A dump that is retried while CRIU is away, then completes.
  await h.criu.stop();
  const retried = await h.queue.enqueueDump({ target: { pid: counter.pid } });
  await waitUntil(`dump ${retried.jobId} to be retried while CRIU is away`, async () => (await h.eventsOf(retried.jobId)).some((e) => e.event === 'job.retrying'));
  await h.criu.start();
  assert.equal((await h.waitFinished(retried.jobId)).state, 'completed');

  // A dump CRIU refuses for good: an established TCP connection without tcpEstablished.
  const refused = await h.queue.enqueueDump({ target: { pid: pair.pid } });
  assert.equal((await h.waitFinished(refused.jobId)).state, 'failed');

  for (const raw of log.raw) assert.deepEqual(duplicateKeys(raw), [], `no key twice in ${raw}`);
  const transitions = log.lines().filter((l) => typeof l.jobId === 'string');
  for (const line of transitions) {
    assert.equal(line.type, 'dump', JSON.stringify(line));
    assert.equal(line.node, 'node-a', JSON.stringify(line));
    assert.equal(typeof line.target, 'string', JSON.stringify(line));
  }

  const okLines = log.ofJob(ok.jobId);
  assert.deepEqual(okLines.map((l) => l.msg), ['job started', 'job completed']);
  // The first attempt has not resolved its target yet: the spec as asked; the completion names the key.
  assert.equal(okLines[0]!.target, `pid ${counter.pid}`);
  assert.equal(okLines[1]!.target, counterKey);
  const okCheckpoint = (await h.catalog.list({ targetKey: counterKey })).find((c) => c.jobId === ok.jobId)!;
  assert.equal(okLines[1]!.checkpointId, okCheckpoint.id);
  assert.equal(okLines[1]!.frozenMs, Number(okCheckpoint.stats.frozenTimeUs) / 1000);
  assert.equal(okLines[1]!.bytes, okCheckpoint.bytes);
  assert.equal(okLines[1]!.level, 30);

  const retriedLines = log.ofJob(retried.jobId);
  const msgs = retriedLines.map((l) => l.msg);
  assert.equal(msgs[0], 'job started');
  assert.equal(msgs.at(-1), 'job completed');
  const retrying = retriedLines.filter((l) => l.msg === 'job retrying');
  assert.ok(retrying.length >= 1);
  assert.equal(msgs.filter((m) => m === 'job started').length, retrying.length + 1, 'one start per attempt');
  assert.match(String(retrying[0]!.reason), /criu/i);
  assert.equal(retrying[0]!.attempt, 2);
  assert.equal(retrying[0]!.level, 40);
  assert.ok(!msgs.includes('job failed'), 'an attempt that is retried is not a failure line');
  assert.equal(typeof retriedLines.at(-1)!.checkpointId, 'string');

  const refusedLines = log.ofJob(refused.jobId);
  assert.deepEqual(refusedLines.map((l) => l.msg), ['job started', 'job failed']);
  assert.equal(refusedLines[1]!.level, 50);
  assert.match(String(refusedLines[1]!.reason), /tcp-established/);
  assert.equal(refusedLines[1]!.target, `python3-${pair.pid}`);

  // Metrics: counted from the events the tailer handed over (wait until it has the last one), state from the catalog.
  const lastId = await h.eventLog.lastId();
  await waitUntil(`the metrics' tailer to reach event ${lastId}`, () => tailer.head === lastId);
  const text = await metrics.metricsText();
  const pairKey = `python3-${pair.pid}`;
  assert.equal(sample(text, 'ckpt_job_outcomes_total{type="dump",outcome="completed"}'), 2);
  assert.equal(sample(text, 'ckpt_job_outcomes_total{type="dump",outcome="failed"}'), 1);
  assert.equal(sample(text, 'ckpt_job_outcomes_total{type="dump",outcome="retried"}'), retrying.length);
  assert.equal(sample(text, 'ckpt_job_duration_seconds_count{type="dump",outcome="failed"}'), 1, 'a final failure has a duration');
  assert.ok(sample(text, 'ckpt_job_duration_seconds_sum{type="dump",outcome="failed"}')! > 0);
  assert.equal(sample(text, `ckpt_target_consecutive_failures{target="${pairKey}"}`), 1);
  assert.equal(sample(text, `ckpt_target_consecutive_failures{target="${counterKey}"}`), 0);
  const kept = await h.catalog.list({ targetKey: counterKey });
  assert.equal(sample(text, `ckpt_target_checkpoints{target="${counterKey}"}`), 2);
  assert.equal(sample(text, `ckpt_target_bytes{target="${counterKey}"}`), kept[0]!.bytes + kept[1]!.bytes);
  assert.equal(sample(text, `ckpt_target_last_success_timestamp_seconds{target="${counterKey}"}`), Date.parse(kept[0]!.created) / 1000);
  assert.ok(sample(text, `ckpt_target_newest_checkpoint_age_seconds{target="${counterKey}"}`)! >= 0);
  assert.equal(sample(text, `ckpt_target_frozen_seconds_count{target="${counterKey}"}`), 2);
  const frozen = kept.reduce((sum, c) => sum + Number(c.stats.frozenTimeUs) / 1e6, 0);
  assert.ok(Math.abs(sample(text, `ckpt_target_frozen_seconds_sum{target="${counterKey}"}`)! - frozen) < 1e-9);
  assert.equal(sample(text, `ckpt_target_checkpoints{target="${pairKey}"}`), undefined, 'no checkpoint, no series');
});
