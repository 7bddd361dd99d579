import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ApiError } from '../../src/cli/api-client.js';
import { dumpRequestFrom } from '../../src/cli/commands/jobs.js';
import { scheduleRequestFrom } from '../../src/cli/commands/schedules.js';
import { describeOutcome } from '../../src/cli/enqueue.js';
import { reportError, CliError } from '../../src/cli/errors.js';
import { colors, describeProgress, formatBytes, formatDuration, formatEvent, formatMicros, table } from '../../src/cli/format.js';
import type { Job } from '../../src/cli/api-client.js';
import { freePort } from '../helpers/redis.js';
import { runCli } from './run.js';

// Argument handling and output formatting, without a server; the end-to-end tests are in cli.test.ts.

test('dump flags become the API body: one target, --stop is leaveRunning false, CRIU switches camelCase', () => {
  assert.deepEqual(dumpRequestFrom({ pid: 42 }), { target: { pid: 42 } });
  assert.deepEqual(dumpRequestFrom({ match: 'python.*counter', stop: true, tcpEstablished: true, networkLock: 'nftables' }), {
    target: { match: 'python.*counter' },
    leaveRunning: false,
    criu: { tcpEstablished: true, networkLock: 'nftables' },
  });
  assert.deepEqual(dumpRequestFrom({ pidFile: '/run/x.pid', shellJob: true, fileLocks: true, extUnixSk: true }).criu, {
    shellJob: true,
    fileLocks: true,
    extUnixSk: true,
  });
  assert.throws(() => dumpRequestFrom({}), (e: CliError) => e.exitCode === 2 && /exactly one of --pid, --pid-file, --match/.test(e.message));
  assert.throws(() => dumpRequestFrom({ pid: 1, match: 'x' }), /exactly one/);
});

test('schedule flags become the API body with only what was given', () => {
  assert.deepEqual(scheduleRequestFrom('nightly', { cron: '0 3 * * *', pid: 7 }), { id: 'nightly', cron: '0 3 * * *', target: { pid: 7 } });
  assert.deepEqual(
    scheduleRequestFrom('s', { cron: '*/2 * * * * *', match: 'redis', keepLast: 3, maxAge: '7d', overlap: 'queue', stop: true, timezone: 'Europe/Berlin' }),
    { id: 's', cron: '*/2 * * * * *', target: { match: 'redis' }, timezone: 'Europe/Berlin', leaveRunning: false, overlap: 'queue', retention: { keepLast: 3, maxAge: '7d' } },
  );
});

test('sizes, durations and progress read well', () => {
  assert.equal(formatBytes(0), '0 B');
  assert.equal(formatBytes(1536), '1.50 KiB');
  assert.equal(formatBytes(300 * 1024 * 1024), '300.0 MiB');
  assert.equal(formatDuration(812), '812 ms');
  assert.equal(formatDuration(61_500), '1m 2s');
  assert.equal(formatMicros(950), '950 µs');
  assert.equal(formatMicros(23_400), '23 ms');
  assert.equal(describeProgress({ stage: 'dump', percent: 41.6, bytesWritten: 12 * 1024 * 1024, bytesExpected: 30 * 1024 * 1024 }), 'dump 42% 12.0/30.0 MiB');
});

test('a table pads columns (ignoring color codes) and leaves the last one ragged', () => {
  const c = colors(true);
  assert.equal(table(['ID', 'STATE', 'X'], [['1', c.green('completed'), 'a'], ['22', 'active', 'bb']]).replace(/\x1b\[\d+m/g, ''), 'ID  STATE      X\n1   completed  a\n22  active     bb');
});

test('a finished dump tells its checkpoint, frozen time, pages, size, duration and commit time; a failure its reason', () => {
  const done = {
    id: 'j1',
    type: 'dump',
    state: 'completed',
    attemptsMade: 1,
    result: { checkpointId: '20261127T134501Z-1a2b3c4d', stats: { frozenTime: 23_100, pagesWritten: 1234 }, bytes: 5_000_000, durationMs: 812, commitMs: 640 },
  } as unknown as Job;
  assert.deepEqual(describeOutcome(done), [
    'dump job j1 completed',
    '  checkpoint   20261127T134501Z-1a2b3c4d',
    '  frozen       23 ms',
    '  written      1234 pages, 4.77 MiB',
    '  duration     812 ms',
    '  committed    640 ms after CRIU (flushed, hashed)',
  ]);
  const failed = { id: 'j2', type: 'dump', state: 'failed', attemptsMade: 1, failedReason: 'target pid 999999 is gone\nlast CRIU lines' } as unknown as Job;
  assert.deepEqual(describeOutcome(failed), ['dump job j2 failed after 1 attempt: target pid 999999 is gone', '  last CRIU lines']);
});

test('a 400 from the API prints every field with its reason and is bad usage (exit 2); other refusals exit 1', () => {
  const r = reportError(new ApiError(400, 'validation', 'body.target.pid: too small', [{ field: 'body.target.pid', reason: 'Too small: expected number to be >0' }]));
  assert.deepEqual(r.lines, ['ckpt: invalid request (400):', '  body.target.pid: Too small: expected number to be >0']);
  assert.equal(r.exitCode, 2);
  const missing = reportError(new ApiError(404, 'not_found', 'job nope not found'));
  assert.equal(missing.lines[0], 'ckpt: job nope not found (404 not_found)');
  assert.equal(missing.exitCode, 1);
  assert.equal(reportError(new ApiError(400, 'bad_request', 'body is not valid JSON')).exitCode, 2, 'a 400 without field issues too');
});

test('feed events become one readable line each', () => {
  const c = colors(false);
  const ts = new Date(2026, 10, 27, 13, 45, 1, 234).getTime();
  assert.equal(
    formatEvent({ type: 'event', id: '1-0', event: 'job.progress', ts, jobId: 'j1', jobType: 'dump', data: { stage: 'dump', percent: 50, bytesWritten: 1048576, bytesExpected: 2097152 } }, c),
    '13:45:01.234 job.progress       dump j1 dump 50% 1.0/2.0 MiB',
  );
  assert.equal(
    formatEvent({ type: 'event', id: '1-1', event: 'job.failed', ts, jobId: 'j1', jobType: 'dump', data: { reason: 'ESRCH', attemptsMade: 1, final: true } }, c),
    '13:45:01.234 job.failed         dump j1 ESRCH [attempt 1]',
  );
  assert.equal(formatEvent({ type: 'event', id: '1-2', event: 'schedule.fired', ts, scheduleId: 'nightly', data: { jobId: 'j9' } }, c), '13:45:01.234 schedule.fired     schedule nightly -> job j9');
});

test('usage errors: one line, exit code 2; an unreachable server: exit code 1', async () => {
  const noTarget = await runCli(['dump']);
  assert.equal(noTarget.code, 2);
  assert.equal(noTarget.stderr, 'ckpt: give exactly one of --pid, --pid-file, --match, --workload\n');

  const badPid = await runCli(['dump', '--pid', 'abc']);
  assert.equal(badPid.code, 2);
  assert.match(badPid.stderr, /^ckpt: option '--pid <pid>' argument 'abc' is invalid\. expected a whole number/);

  const unknown = await runCli(['frobnicate', '--json']);
  assert.equal(unknown.code, 2);
  assert.deepEqual(JSON.parse(unknown.stdout), { error: 'usage', message: "unknown command 'frobnicate'" });

  const port = await freePort();
  const down = await runCli(['jobs', '--url', `http://127.0.0.1:${port}`]);
  assert.equal(down.code, 1);
  assert.equal(down.stderr, `ckpt: cannot reach the API at http://127.0.0.1:${port}: ECONNREFUSED\n`);
});

test('ckpt worker offers no API bind flags (it serves no API); ckpt up does', async () => {
  const [worker, up] = await Promise.all([runCli(['worker', '--help']), runCli(['up', '--help'])]);
  assert.equal(worker.code, 0, worker.stderr);
  assert.match(worker.stdout, /--redis-url <url>/);
  assert.doesNotMatch(worker.stdout, /--host|--port/);
  assert.match(up.stdout, /--host <host>[\s\S]*--port <port>/);
});
