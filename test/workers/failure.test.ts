// The fate of a failed attempt, decided in one place (classifyFailure): one row per kind of error a processor throws.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DelayedError, WaitingError } from 'bullmq';
import { CatalogError } from '../../src/catalog/errors.js';
import { ValidationError } from '../../src/common/validation.js';
import { CriuConnectionError, CriuError, CriuUnsupportedError } from '../../src/criu/errors.js';
import { CriuStatsError } from '../../src/criu/stats.js';
import { PolicyError, TargetError } from '../../src/targets/errors.js';
import { classifyFailure, FinalJobError, isLastFailure, RetryableJobError, runsAgain } from '../../workers/failure.js';
import { CancelAbort, ShutdownAbort } from '../../workers/worker-context.js';

const connection = (code: 'ECRIU_DIED' | 'ECRIU_NO_SOCKET' | 'ECRIU_TIMEOUT' | 'ECRIU_ABORTED' | 'ECRIU_ACCESS') =>
  new CriuConnectionError(code, `${code} happened`, '/run/criu.sock', 'DUMP');

interface Row {
  name: string;
  error: unknown;
  abortReason?: unknown;
  fate: 'moved' | 'hand-back' | 'final' | 'retry';
  code?: string;
}

const TABLE: Row[] = [
  { name: 'the processor moved the job to delayed (batch place taken)', error: new DelayedError(), fate: 'moved' },
  { name: 'the job was moved back to wait', error: new WaitingError(), fate: 'moved' },
  { name: 'an operator cancelled (whatever the abort made CRIU throw)', error: connection('ECRIU_ABORTED'), abortReason: new CancelAbort(), fate: 'final', code: 'ECANCELLED' },
  { name: 'the worker shuts down', error: connection('ECRIU_ABORTED'), abortReason: new ShutdownAbort(), fate: 'hand-back' },
  { name: 'a processor said final (damaged checkpoint)', error: new FinalJobError('damaged', 'ECHECKPOINT_DAMAGED'), fate: 'final', code: 'ECHECKPOINT_DAMAGED' },
  { name: 'the target is gone', error: new TargetError('ETARGET_GONE', 'pid 4242 exited'), fate: 'final', code: 'ETARGET_GONE' },
  { name: 'the policy refuses the target', error: new PolicyError(1, 'pid 1 (init) is never a target'), fate: 'final', code: 'EPOLICY' },
  { name: 'bad job data', error: new ValidationError([{ field: 'pid', reason: 'too small' }], 'job data'), fate: 'final', code: 'EVALIDATION' },
  { name: 'the checkpoint is unknown', error: new CatalogError('ECHECKPOINT_NOT_FOUND', 'no checkpoint x'), fate: 'final', code: 'ECHECKPOINT_NOT_FOUND' },
  { name: 'CRIU refused the dump (ESRCH)', error: new CriuError({ requestType: 'DUMP', errno: 3 }), fate: 'final', code: 'ECRIU' },
  { name: 'a restore found its pid still taken (EEXIST: a zombie lingers)', error: new CriuError({ requestType: 'RESTORE', errno: 17 }), fate: 'retry', code: 'ECRIU' },
  { name: 'the CRIU service died', error: connection('ECRIU_DIED'), fate: 'retry', code: 'ECRIU_DIED' },
  { name: 'the CRIU service socket is missing', error: connection('ECRIU_NO_SOCKET'), fate: 'retry', code: 'ECRIU_NO_SOCKET' },
  { name: 'CRIU was too slow', error: connection('ECRIU_TIMEOUT'), fate: 'retry', code: 'ECRIU_TIMEOUT' },
  { name: 'CRIU was aborted with no cancel or shutdown', error: connection('ECRIU_ABORTED'), fate: 'final', code: 'ECRIU_ABORTED' },
  { name: 'the CRIU socket is not ours to use', error: connection('ECRIU_ACCESS'), fate: 'final', code: 'ECRIU_ACCESS' },
  { name: 'a feature this kernel lacks', error: new CriuUnsupportedError('memTrack', 'no soft-dirty'), fate: 'final', code: 'ECRIU_UNSUPPORTED' },
  { name: 'unreadable CRIU stats', error: new CriuStatsError('stats-dump', 'truncated'), fate: 'final', code: 'ECRIU_STATS' },
  { name: 'the target is busy (another dump holds its lock)', error: new RetryableJobError('ETARGET_BUSY', 'busy'), fate: 'retry', code: 'ETARGET_BUSY' },
  { name: 'anything else (a Redis hiccup)', error: new Error('Connection is closed.'), fate: 'retry', code: 'EFAILED' },
  { name: 'a thrown non-error', error: 'weird', fate: 'retry', code: 'EFAILED' },
];

for (const row of TABLE) {
  test(`classifyFailure: ${row.name} -> ${row.fate}${row.code ? ` (${row.code})` : ''}`, () => {
    const got = classifyFailure(row.error, row.abortReason);
    assert.equal(got.fate, row.fate);
    if (got.fate === 'final' || got.fate === 'retry') {
      assert.equal(got.code, row.code);
      assert.ok(got.reason.length > 0, 'a reason the user can read');
    }
  });
}

test('a failure is the last one when final, finished by BullMQ, or out of attempts', () => {
  const retryable = new Error('busy');
  assert.equal(isLastFailure(retryable, { attemptsMade: 1, opts: { attempts: 3 } }), false);
  assert.equal(isLastFailure(retryable, { attemptsMade: 3, opts: { attempts: 3 } }), true);
  assert.equal(isLastFailure(retryable, { attemptsMade: 1, finishedOn: Date.now(), opts: { attempts: 3 } }), true);
  assert.equal(isLastFailure(new FinalJobError('gone', 'ETARGET_GONE'), { attemptsMade: 1, opts: { attempts: 3 } }), true);
});

test("a failed attempt's job runs again when its error is retried with attempts left, or the job is handed back", () => {
  const job = (attemptsMade: number) => ({ attemptsMade, opts: { attempts: 3 } });
  const ioError = Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
  assert.equal(runsAgain(ioError, undefined, job(0)), true, 'first of 3 attempts');
  assert.equal(runsAgain(ioError, undefined, job(1)), true, 'second of 3');
  assert.equal(runsAgain(ioError, undefined, job(2)), false, 'the third is the last');
  assert.equal(runsAgain(ioError, undefined, { attemptsMade: 0, opts: {} }), false, 'one attempt when none is set');
  const planted = new CatalogError('ECOMMITTED', 'checkpoint folder exists already');
  assert.equal(runsAgain(planted, undefined, job(0)), false, 'a final error, attempts or not');
  assert.equal(runsAgain(ioError, new CancelAbort(), job(0)), false, 'cancelled');
  assert.equal(runsAgain(ioError, new ShutdownAbort(), job(2)), true, 'handed back at shutdown, even on its last attempt');
});
