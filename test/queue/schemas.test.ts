import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ValidationError } from '../../src/common/validation.js';
import { jobIdSchema, parseBatchRestoreJob, parseDumpJob, parseRestoreJob } from '../../src/queue/schemas.js';

const CP = '20261127T134501Z-1a2b3c4d';

function fields(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ValidationError, String(err));
    return err.issues.map((i) => i.field);
  }
  assert.fail('expected a ValidationError');
}

test('dump: defaults leaveRunning true and ifBusy wait; the target must name exactly one way', () => {
  assert.deepEqual(parseDumpJob({ target: { pid: 42 } }), { target: { pid: 42 }, leaveRunning: true, ifBusy: 'wait' });
  assert.deepEqual(
    parseDumpJob({ target: { match: 'python3 train.py' }, leaveRunning: false, criu: { tcpEstablished: true, networkLock: 'nftables' }, scheduleId: 'nightly', node: 'h1', ifBusy: 'skip' }),
    { target: { match: 'python3 train.py' }, leaveRunning: false, criu: { tcpEstablished: true, networkLock: 'nftables' }, scheduleId: 'nightly', node: 'h1', ifBusy: 'skip' },
  );
  assert.deepEqual(fields(() => parseDumpJob({})), ['target']);
  assert.deepEqual(fields(() => parseDumpJob({ target: { pid: 1, match: 'x' } })), ['target']);
  assert.deepEqual(fields(() => parseDumpJob({ target: { pid: -3 } })), ['target.pid']);
  assert.deepEqual(fields(() => parseDumpJob({ target: { pid: 3 }, ifBusy: 'later' })), ['ifBusy']);
  assert.deepEqual(fields(() => parseDumpJob({ target: { pid: 3 }, node: 'a:b' })), ['node']);
});

test('CRIU options: only a safe subset; paths, commands and unknown keys are refused by name', () => {
  for (const key of ['imagesDir', 'logFile', 'root', 'execCmd', 'workDirFd', 'external', 'parentImg', 'configFile', 'leaveStopped']) {
    const err = fields(() => parseDumpJob({ target: { pid: 3 }, criu: { [key]: 'x' } }));
    assert.deepEqual(err, ['criu'], key);
  }
  assert.deepEqual(fields(() => parseDumpJob({ target: { pid: 3 }, criu: { logLevel: 9 } })), ['criu.logLevel']);
  assert.deepEqual(fields(() => parseRestoreJob({ checkpointId: CP, criu: { tcpSkipInFlight: true } })), ['criu']);
  assert.deepEqual(parseRestoreJob({ checkpointId: CP, criu: { tcpClose: true } }), { checkpointId: CP, criu: { tcpClose: true } });
});

test('restore and batch restore: checkpoint ids checked for shape; batches of 1-100 unique ids, concurrency 1-16 (default 2)', () => {
  assert.deepEqual(fields(() => parseRestoreJob({ checkpointId: '../etc' })), ['checkpointId']);
  assert.deepEqual(parseBatchRestoreJob({ checkpointIds: [CP] }), { checkpointIds: [CP], concurrency: 2 });
  assert.deepEqual(fields(() => parseBatchRestoreJob({ checkpointIds: [] })), ['checkpointIds']);
  assert.deepEqual(fields(() => parseBatchRestoreJob({ checkpointIds: [CP, CP] })), ['checkpointIds']);
  assert.deepEqual(fields(() => parseBatchRestoreJob({ checkpointIds: [CP, 'nope'] })), ['checkpointIds.1']);
  assert.deepEqual(fields(() => parseBatchRestoreJob({ checkpointIds: [CP], concurrency: 17 })), ['concurrency']);
  const many = Array.from({ length: 101 }, (_, i) => `20261127T134501Z-${i.toString(16).padStart(8, '0')}`);
  assert.deepEqual(fields(() => parseBatchRestoreJob({ checkpointIds: many })), ['checkpointIds']);
});

test('job ids: no ":" and not all digits (BullMQ refuses both), one safe path component', () => {
  assert.ok(jobIdSchema.safeParse('sched-nightly-20261127T0000Z').success);
  for (const bad of ['a:b', '12345', '', '../x', '.hidden', 'x'.repeat(129)]) assert.ok(!jobIdSchema.safeParse(bad).success, bad);
});

test("a job's scheduleId follows the schedules' own id rule: what a schedule may not be called, no job may name", () => {
  for (const scheduleId of ['Nightly', 'nightly.v2', '_nightly', 'a:b', '']) {
    assert.deepEqual(fields(() => parseDumpJob({ target: { pid: 42 }, scheduleId })), ['scheduleId'], scheduleId);
  }
  assert.equal(parseDumpJob({ target: { pid: 42 }, scheduleId: 'nightly_v2-1' }).scheduleId, 'nightly_v2-1');
});
