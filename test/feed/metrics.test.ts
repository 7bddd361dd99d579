import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import { createMetrics } from '../../src/observability/metrics.js';
import { sample } from '../helpers/metrics-text.js';
import { FeedHarness, jobEvent } from './harness.js';

let h: FeedHarness;
before(async () => {
  h = await FeedHarness.start();
});
after(async () => {
  await h?.stop();
});


test('metrics follow the event stream and read job counts and feed clients at scrape time', async () => {
  const log = h.eventLog();
  const { url, feed } = await h.feed({ eventLog: log });
  let counts = [{ type: 'dump', state: 'active', count: 2 }];
  const metrics = createMetrics({ collectJobCounts: async () => counts, countFeedClients: () => feed.clientCount });
  metrics.follow(feed.tailer);
  const client = await h.client(url);
  await client.expect('hello');

  await log.publish(jobEvent('d1', 'job.completed', { result: { checkpointId: 'c1', bytes: 1000, durationMs: 1500, stats: { frozenTimeUs: 20_000 } } }));
  await log.publish(jobEvent('d2', 'job.completed', { result: { checkpointId: 'c2', bytes: 500, durationMs: 700, stats: { frozenTimeUs: 5_000 } } }));
  await log.publish(jobEvent('r1', 'job.completed', { result: { restoredPid: 4242, bytes: 9999, durationMs: 300, stats: {} } }, 'restore'));
  await log.publish(jobEvent('d3', 'job.failed', { reason: 'boom', attemptsMade: 1, final: false, durationMs: 100 }));
  await log.publish(jobEvent('d3', 'job.failed', { reason: 'boom', attemptsMade: 5, final: true, durationMs: 200 }));
  await log.publish(jobEvent('d4', 'job.completed', { result: 'not an object', bytes: 'many' }));
  const last = await log.publish({ event: 'schedule.fired', scheduleId: 's1', data: { tickAt: 0, jobId: 'j', lagMs: 40 } });
  for (let i = 0; feed.tailer.head !== last.id; i++) {
    assert.ok(i < 500, 'tailer caught up');
    await sleep(10);
  }

  const text = await metrics.metricsText();
  assert.equal(sample(text, 'ckpt_jobs{type="dump",state="active"}'), 2);
  assert.equal(sample(text, 'ckpt_feed_clients'), 1);
  assert.equal(sample(text, 'ckpt_bytes_written_total'), 1500, 'dumps only');
  assert.equal(sample(text, 'ckpt_job_duration_seconds_count{type="dump",outcome="completed"}'), 2);
  assert.equal(sample(text, 'ckpt_job_duration_seconds_sum{type="dump",outcome="completed"}'), 2.2);
  assert.equal(sample(text, 'ckpt_job_duration_seconds_count{type="restore",outcome="completed"}'), 1);
  assert.equal(sample(text, 'ckpt_job_duration_seconds_count{type="dump",outcome="failed"}'), 1, 'final failures only');
  assert.equal(sample(text, 'ckpt_criu_frozen_seconds_count{type="dump"}'), 2);
  assert.equal(sample(text, 'ckpt_criu_frozen_seconds_bucket{le="0.005",type="dump"}'), 1);
  assert.equal(sample(text, 'ckpt_schedule_lag_seconds_sum'), 0.04);
  assert.equal(sample(text, 'ckpt_events_total{event="job.completed"}'), 4);
  assert.ok(sample(text, 'process_resident_memory_bytes')! > 0);

  // Job counts are re-read at every scrape; states that disappeared disappear.
  counts = [{ type: 'restore', state: 'waiting', count: 1 }];
  const again = await metrics.metricsText();
  assert.equal(sample(again, 'ckpt_jobs{type="dump",state="active"}'), undefined);
  assert.equal(sample(again, 'ckpt_jobs{type="restore",state="waiting"}'), 1);

  // A failing count source does not break the scrape; it is reported.
  const errors: string[] = [];
  const broken = createMetrics({
    collectJobCounts: async () => Promise.reject(new Error('redis down')),
    defaultMetrics: false,
    onError: (err) => errors.push(err.message),
  });
  const brokenText = await broken.metricsText();
  assert.match(brokenText, /# TYPE ckpt_jobs gauge/);
  assert.ok(!/^ckpt_jobs\{/m.test(brokenText));
  assert.deepEqual(errors, ['redis down']);
});

test('target labels stay bounded: past maxTargets the least recently seen target loses its event-derived series', async () => {
  const metrics = createMetrics({ collectJobCounts: async () => [], defaultMetrics: false, maxTargets: 2 });
  const failed = (target: string, id: string) => ({ ...jobEvent(id, 'job.failed', { final: true, reason: 'x', durationMs: 5 }), target, id, ts: 0 });
  metrics.observe([failed('a-1', '1-0'), failed('b-2', '2-0'), failed('a-1', '3-0'), failed('c-3', '4-0')]);
  const text = await metrics.metricsText();
  assert.equal(sample(text, 'ckpt_target_consecutive_failures{target="a-1"}'), 2);
  assert.equal(sample(text, 'ckpt_target_consecutive_failures{target="c-3"}'), 1);
  assert.equal(sample(text, 'ckpt_target_consecutive_failures{target="b-2"}'), undefined, 'b-2 was seen least recently');
});
