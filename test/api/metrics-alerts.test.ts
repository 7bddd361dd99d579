import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { parse } from 'yaml';
import { repoRoot } from '../../src/common/paths.js';
import { sample, sampleNames } from '../helpers/metrics-text.js';
import { metricNamesIn } from '../helpers/promql.js';
import { startCounter, startTcpPair } from '../helpers/targets.js';
import { waitUntil } from '../helpers/wait.js';
import { api, startServiceUnderTest } from './harness.js';

const alerts = parse(readFileSync(path.join(repoRoot(), 'deploy/prometheus/alerts.yml'), 'utf8'));
const dashboard = JSON.parse(readFileSync(path.join(repoRoot(), 'deploy/grafana/ckpt.json'), 'utf8'));

test('metricNamesIn reads metric names, not functions, labels or variables', () => {
  assert.deepEqual(
    metricNamesIn('histogram_quantile(0.95, sum by (target, le) (rate(x_bucket{a="b c"}[$__rate_interval]))) > 2 * y and on(job) z'),
    ['x_bucket', 'y', 'z'],
  );
});

/** Polls a job over the API until it has finished. */
function finished(url: string, jobId: string): Promise<{ state: string; failedReason?: string }> {
  return waitUntil(`job ${jobId} to finish`, async () => {
    const job = (await api(url, 'GET', `/api/v1/jobs/${jobId}`)).json;
    return (job.state === 'completed' || job.state === 'failed') && job;
  }, { timeoutMs: 60_000, pollMs: 50 });
}

/** Scrapes /metrics until `ready` holds for the text. */
function scrapeUntil(url: string, what: string, ready: (text: string) => boolean): Promise<string> {
  return waitUntil(what, async () => {
    const text = (await api(url, 'GET', '/metrics')).text;
    return ready(text) && text;
  }, { timeoutMs: 30_000, pollMs: 50 });
}

test('after a real scheduled dump, /metrics has series per schedule and target, and every alert rule and dashboard panel reads metrics that exist', async (t) => {
  const svc = await startServiceUnderTest(t);
  if (!svc) return;
  const target = await startCounter();
  t.after(() => target.kill());
  const key = `python3-${target.pid}`;

  assert.equal((await api(svc.url, 'POST', '/api/v1/schedules', { id: 'counter', cron: '0 3 * * *', target: { pid: target.pid } })).status, 201);
  const { jobId } = (await api(svc.url, 'POST', '/api/v1/schedules/counter/trigger')).json;
  assert.equal((await finished(svc.url, jobId)).state, 'completed');
  // The metrics learn of the completion from the event stream: scrape until they have it.
  let text = await scrapeUntil(svc.url, 'the metrics to see job.completed', (m) => sample(m, `ckpt_schedule_frozen_seconds_count{schedule="counter"}`) !== undefined);
  const checkpoint = (await api(svc.url, 'GET', '/api/v1/checkpoints?schedule=counter')).json.items[0];
  assert.equal(sample(text, 'ckpt_schedule_checkpoints{schedule="counter"}'), 1);
  assert.equal(sample(text, 'ckpt_schedule_bytes{schedule="counter"}'), checkpoint.bytes);
  assert.equal(sample(text, 'ckpt_schedule_interval_seconds{schedule="counter"}'), 86400);
  assert.equal(sample(text, 'ckpt_schedule_healthy{schedule="counter"}'), 1);
  assert.equal(sample(text, 'ckpt_schedule_consecutive_failures{schedule="counter"}'), 0);
  assert.equal(sample(text, 'ckpt_schedule_last_success_timestamp_seconds{schedule="counter"}'), Date.parse(checkpoint.created) / 1000);
  assert.ok(sample(text, 'ckpt_schedule_newest_checkpoint_age_seconds{schedule="counter"}')! < 86400);
  assert.equal(sample(text, `ckpt_target_checkpoints{target="${key}"}`), 1);
  assert.equal(sample(text, `ckpt_target_frozen_seconds_count{target="${key}"}`), 1);
  assert.equal(sample(text, 'ckpt_dependency_up{dependency="criu"}'), 1);
  assert.equal(sample(text, 'ckpt_dependency_up{dependency="redis"}'), 1);
  assert.ok(sample(text, 'ckpt_storage_free_bytes')! > 0);

  const exposed = sampleNames(text);
  const rules = alerts.groups.flatMap((g: any) => g.rules);
  assert.ok(rules.length >= 3);
  for (const name of ['CkptNoGoodCheckpoint', 'CkptFrozenTimeHigh', 'CkptCriuDown']) {
    assert.ok(rules.some((r: any) => r.alert === name), `alert ${name}`);
  }
  const exprs = [
    ...rules.map((r: any) => [`alert ${r.alert}`, String(r.expr)]),
    ...dashboard.panels.flatMap((p: any) => p.targets.map((q: any) => [`panel ${p.title}`, String(q.expr)])),
  ];
  for (const [where, expr] of exprs) {
    const names = metricNamesIn(expr);
    assert.ok(names.length > 0, `${where} reads a metric`);
    for (const name of names) assert.ok(exposed.has(name), `${where}: ${name} is not in /metrics`);
  }

  // A schedule that really ticks (its lag is measured from the tick), and a dump CRIU refuses for good (an established
  // TCP connection without tcpEstablished): lag, job durations of both outcomes and the failure are in /metrics.
  const ticking = await startCounter();
  t.after(() => ticking.kill());
  assert.equal((await api(svc.url, 'POST', '/api/v1/schedules', { id: 'ticking', cron: '* * * * * *', target: { pid: ticking.pid } })).status, 201);
  const pair = await startTcpPair();
  t.after(() => pair.kill());
  const refused = (await api(svc.url, 'POST', '/api/v1/dumps', { target: { pid: pair.pid } })).json;
  assert.equal((await finished(svc.url, refused.jobId)).state, 'failed');
  const tickJob = await waitUntil('a job of the ticking schedule', async () => (await api(svc.url, 'GET', '/api/v1/jobs?schedule=ticking')).json.items.at(-1));
  assert.equal((await api(svc.url, 'POST', '/api/v1/schedules/ticking/pause')).status, 200);
  assert.equal((await finished(svc.url, tickJob.id)).state, 'completed');
  text = await scrapeUntil(
    svc.url,
    'the metrics to see the tick, the failure and the completions',
    (m) =>
      sample(m, 'ckpt_job_outcomes_total{type="dump",outcome="failed"}') === 1 &&
      sample(m, 'ckpt_job_duration_seconds_count{type="dump",outcome="completed"}')! >= 2 &&
      sample(m, 'ckpt_schedule_lag_seconds_count')! >= 1,
  );
  assert.equal(sample(text, 'ckpt_job_duration_seconds_count{type="dump",outcome="failed"}'), 1, 'the failure has a duration');
  assert.ok(sample(text, 'ckpt_job_duration_seconds_sum{type="dump",outcome="failed"}')! > 0);
  assert.ok(sample(text, 'ckpt_job_duration_seconds_sum{type="dump",outcome="completed"}')! > 0);
  assert.equal(
    sample(text, 'ckpt_job_duration_seconds_count{type="dump",outcome="completed"}'),
    sample(text, 'ckpt_job_outcomes_total{type="dump",outcome="completed"}'),
    'one duration per completed dump',
  );
  assert.ok(sample(text, 'ckpt_schedule_lag_seconds_sum')! >= 0);
  assert.equal(sample(text, `ckpt_target_consecutive_failures{target="python3-${pair.pid}"}`), 1);

  // Deleting the schedule takes its series away at the next scrape: the label set follows the schedules.
  assert.equal((await api(svc.url, 'DELETE', '/api/v1/schedules/counter')).status, 200);
  const after = (await api(svc.url, 'GET', '/metrics')).text;
  assert.ok(!after.includes('schedule="counter"'), 'no series of a deleted schedule');
});
