import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { EventLog } from '../../src/events/event-log.js';
import { JobReporter } from '../../workers/job-reporter.js';
import { splitLines } from '../../workers/criu-log-tailer.js';
import { TestRedis } from '../helpers/redis.js';

async function setup(t: { after(fn: () => unknown): void }) {
  const server = await TestRedis.start();
  const redis = new Redis(server.url, { maxRetriesPerRequest: null });
  const queue = new Queue('jobs.test', { connection: redis, prefix: 'ckpt' });
  t.after(async () => {
    await queue.close();
    redis.disconnect();
    await server.stop();
  });
  const eventLog = new EventLog(redis, { key: 'ckpt:events' });
  const job = await queue.add('restore', { checkpointId: 'x', node: 'n', target: 'python3-42' }, { jobId: 'job-1' });
  const reporter = new JobReporter({ job, eventLog, maxLinesPerEvent: 10, progressIntervalMs: 100 });
  return { queue, eventLog, reporter };
}

/** Lines as the tailer hands them over. */
const batch = (lines: string[]) => splitLines(Buffer.from(lines.join('\n') + '\n')).lines;

test('log lines: all into the job log; events carry at most N, error lines first, the rest counted as dropped', async (t) => {
  const { queue, eventLog, reporter } = await setup(t);
  const lines = Array.from({ length: 100 }, (_, i) => (i === 3 ? `(0.${i}) Error (criu/x.c:1): boom` : `(0.${i}) line`));
  await reporter.logLines(batch(lines.slice(0, 5)));
  await reporter.logLines(batch(lines.slice(5)));
  const { logs } = await queue.getJobLogs('job-1');
  assert.deepEqual(logs.join('\n').split('\n'), lines);
  const events = await eventLog.readAfter('0');
  assert.deepEqual(events.map((e) => [e.event, e.jobId, e.jobType, e.target]), [
    ['job.log', 'job-1', 'restore', 'python3-42'],
    ['job.log', 'job-1', 'restore', 'python3-42'],
  ]);
  assert.deepEqual(events[0]!.data, { lines: lines.slice(0, 5), dropped: 0 });
  assert.deepEqual(events[1]!.data, { lines: lines.slice(90), dropped: 85 });

  const flood = Array.from({ length: 50 }, (_, i) => (i % 10 === 0 ? `Error (${i})` : `line ${i}`));
  await reporter.logLines(batch(flood));
  const last = (await eventLog.readAfter(events[1]!.id)).at(-1)!;
  assert.deepEqual(last.data.lines, ['Error (0)', 'Error (10)', 'Error (20)', 'Error (30)', 'Error (40)', 'line 45', 'line 46', 'line 47', 'line 48', 'line 49']);
});

test('progress: a new stage is written at once, other updates at most every interval (latest wins), percent never goes back', async (t) => {
  const { queue, eventLog, reporter } = await setup(t);
  // The 100 ms interval runs on a mocked clock: what goes out does not depend on how fast this loop runs.
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'] });
  reporter.progress({ stage: 'dumping', bytesExpected: 2000 });
  for (let i = 1; i <= 150; i++) {
    reporter.progress({ bytesWritten: i * 10, percent: i / 2 }); // update i at 0 + (i - 1) ms
    t.mock.timers.tick(1);
  }
  reporter.progress({ percent: 10 });
  reporter.progress({ stage: 'post-dump' });
  await reporter.flush();
  const events = (await eventLog.readAfter('0')).filter((e) => e.event === 'job.progress');
  assert.deepEqual(
    events.map((e) => [e.data.stage, e.data.percent, e.data.bytesWritten]),
    [
      ['dumping', 0, 0],
      ['dumping', 50, 1000], // at 100 ms: the latest update then (the 100th)
      ['post-dump', 75, 1500], // the next stage at once, with the latest figures; percent did not go back to 10
    ],
    '152 updates in 150 ms: the stage, the latest one after the interval, the next stage',
  );
  const last = events.at(-1)!.data;
  assert.deepEqual(last, { stage: 'post-dump', percent: 75, bytesWritten: 1500, bytesExpected: 2000 });
  assert.deepEqual((await queue.getJob('job-1'))!.progress, last);
});

test('progress: an update that changes nothing (page images not written yet) is not written', async (t) => {
  const { eventLog, reporter } = await setup(t);
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'] });
  reporter.progress({ stage: 'dumping', bytesExpected: 2000 });
  for (let i = 0; i < 5; i++) {
    t.mock.timers.tick(100); // past the interval each time: a changed sample would be written now
    reporter.progress({ bytesWritten: 0, percent: 0 });
  }
  reporter.progress({ stage: 'post-dump' });
  // flush() sends whatever is pending: an unchanged sample kept back would show up here, before post-dump.
  await reporter.flush();
  const events = (await eventLog.readAfter('0')).filter((e) => e.event === 'job.progress');
  assert.deepEqual(events.map((e) => e.data.stage), ['dumping', 'post-dump'], 'five unchanged samples wrote no job.progress');
});
