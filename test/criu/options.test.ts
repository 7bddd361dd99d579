import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { ValidationError } from '../../src/common/validation.js';
import { protoType } from '../../src/criu/codec.js';
import {
  CriuClient,
  CriuConnectionError,
  CriuError,
  criuOptionsSchema,
  errnoName,
  isRetryableCriuError,
  readLogTail,
  toCriuOpts,
} from '../../src/criu/index.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'ckpt-criu-opts-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The client validates before connecting, so a socket that does not exist shows no connection error first. */
const client = new CriuClient({ socketPath: '/nonexistent/criu.sock' });

async function validationIssues(run: () => Promise<unknown>): Promise<Record<string, string>> {
  const err = await run().then(
    () => assert.fail('expected a ValidationError'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof ValidationError, `expected a ValidationError, got ${String(err)}`);
  return Object.fromEntries(err.issues.map((i) => [i.field, i.reason]));
}

test('every criu_opts field is reachable through a camelCase option (except the ones the client owns)', () => {
  const owned = new Set(['images_dir_fd', 'images_dir', 'pid', 'notify_scripts']);
  const camel = (s: string) => s.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
  const missing = protoType('rpc.proto', 'criu_opts')
    .fieldsArray.map((f) => f.name)
    .filter((name) => !owned.has(name) && !(camel(name) in criuOptionsSchema.shape));
  assert.deepEqual(missing, []);
});

test('options map to criu_opts: snake_case names, CRIU enum names, nested messages', () => {
  assert.deepEqual(
    toCriuOpts({
      leaveRunning: true,
      tcpEstablished: true,
      shellJob: false,
      logLevel: 4,
      logFile: 'dump.log',
      networkLock: 'nftables',
      manageCgroupsMode: 'none',
      preDumpMode: 'vmRead',
      tlsNoCnVerify: true,
      ps: { address: '10.0.0.1', port: 27 },
      joinNs: [{ ns: 'net', nsFile: '/proc/1/ns/net' }],
      veths: [{ ifIn: 'veth0', ifOut: 'eth0' }],
      external: ['unix[42]'],
      workDirFd: 9,
    }),
    {
      leave_running: true,
      tcp_established: true,
      shell_job: false,
      log_level: 4,
      log_file: 'dump.log',
      network_lock: 'NFTABLES',
      manage_cgroups_mode: 'CG_NONE',
      pre_dump_mode: 'VM_READ',
      tls_no_cn_verify: true,
      ps: { address: '10.0.0.1', port: 27 },
      join_ns: [{ ns: 'net', ns_file: '/proc/1/ns/net' }],
      veths: [{ if_in: 'veth0', if_out: 'eth0' }],
      external: ['unix[42]'],
      work_dir_fd: 9,
    },
  );
  assert.deepEqual(toCriuOpts({ manageCgroupsMode: 'soft', networkLock: 'skip', preDumpMode: 'splice' }), {
    manage_cgroups_mode: 'SOFT',
    network_lock: 'SKIP',
    pre_dump_mode: 'SPLICE',
  });
});

test('dump validation: pid required and a positive integer, named in the message', async () => {
  for (const [pid, reason] of [
    [undefined, /is required.*dump the caller itself/],
    [0, /positive integer/],
    [-5, /positive integer/],
    [1.5, /positive integer/],
    ['12', /must be a number/],
  ] as const) {
    const issues = await validationIssues(() => client.dump({ pid: pid as number, imagesDir: dir }));
    assert.match(issues.pid ?? '', reason, `pid ${String(pid)}`);
  }
  const err = await client.dump({ pid: -1, imagesDir: dir }).catch((e: Error) => e);
  assert.match((err as Error).message, /^invalid CRIU dump options: pid: must be a positive integer/);
});

test('logFile must be a bare file name', async () => {
  for (const logFile of ['../dump.log', 'a/b.log', '/tmp/x.log', '..', '']) {
    const issues = await validationIssues(() => client.dump({ pid: 1, imagesDir: dir, logFile }));
    assert.ok(issues.logFile, `logFile ${logFile}`);
  }
  const issues = await validationIssues(() => client.restore({ imagesDir: dir, logFile: 'x/y' }));
  assert.match(issues.logFile!, /bare file name/);
});

test('imagesDir must be an existing directory', async () => {
  const missing = await validationIssues(() => client.restore({ imagesDir: path.join(dir, 'missing') }));
  assert.match(missing.imagesDir!, /does not exist/);
  const file = path.join(dir, 'file');
  await writeFile(file, 'x');
  const notDir = await validationIssues(() => client.dump({ pid: 1, imagesDir: file }));
  assert.match(notDir.imagesDir!, /is not a directory/);
  const unset = await validationIssues(() => client.restore({} as never));
  assert.match(unset.imagesDir!, /is required/);
});

test('bad option values and unknown options are named', async () => {
  const issues = await validationIssues(() =>
    client.dump({ pid: 1, imagesDir: dir, logLevel: 9, networkLock: 'ipchains' as never, leaveRuning: true } as never),
  );
  assert.match(issues.logLevel!, /0-4/);
  assert.ok(issues.networkLock);
  assert.match(issues['']!, /leaveRuning/);
});

test('a raw DUMP request without a pid is refused (CRIU would dump the caller)', async () => {
  const issues = await validationIssues(() => client.request({ type: 'DUMP', opts: { images_dir_fd: -1 } }));
  assert.match(issues['opts.pid']!, /is required/);
});

test('errno names: Node\'s table for this platform (one name per number), CRIU\'s EBADRQC, E<n> for the rest', () => {
  assert.deepEqual(
    [1, 2, 3, 11, 13, 17, 22, 56, 95, 133, 500].map(errnoName),
    ['EPERM', 'ENOENT', 'ESRCH', 'EAGAIN', 'EACCES', 'EEXIST', 'EINVAL', 'EBADRQC', 'EOPNOTSUPP', 'E133', 'E500'],
  );
});

test('retryable: connection trouble and EEXIST on restore; not ESRCH, EBADRQC, validation, access, abort', () => {
  const conn = (code: CriuConnectionError['code']) => new CriuConnectionError(code, code, '/s');
  assert.equal(isRetryableCriuError(conn('ECRIU_NO_SOCKET')), true);
  assert.equal(isRetryableCriuError(conn('ECRIU_DIED')), true);
  assert.equal(isRetryableCriuError(conn('ECRIU_TIMEOUT')), true);
  assert.equal(isRetryableCriuError(conn('ECRIU_ACCESS')), false);
  assert.equal(isRetryableCriuError(conn('ECRIU_ABORTED')), false);
  assert.equal(isRetryableCriuError(conn('ECRIU_DECODE')), false);
  assert.equal(isRetryableCriuError(new CriuError({ requestType: 'RESTORE', errno: 17 })), true);
  assert.equal(isRetryableCriuError(new CriuError({ requestType: 'DUMP', errno: 17 })), false);
  assert.equal(isRetryableCriuError(new CriuError({ requestType: 'DUMP', errno: 3 })), false);
  assert.equal(isRetryableCriuError(new CriuError({ requestType: 'RESTORE', errno: 56 })), false);
  assert.equal(isRetryableCriuError(new ValidationError([{ field: 'pid', reason: 'x' }], 'x')), false);
  assert.equal(isRetryableCriuError(new Error('other')), false);
});

test("CriuError message: errno name and the log's informative error line, not CRIU's rlimit noise", () => {
  const err = new CriuError({
    requestType: 'RESTORE',
    errno: 17,
    criuMessage: "Error (criu/util.c:1534): rlimit: Can't setup RLIMIT_NOFILE for self: Operation not permitted",
    logTail: [
      "(00.001) Error (criu/util.c:1534): rlimit: Can't setup RLIMIT_NOFILE for self: Operation not permitted",
      "(00.278554) Error (criu/cr-restore.c:1237): Can't fork for 15204: File exists",
      '(00.3) Error (criu/cr-restore.c:2331): Restoring FAILED.',
    ],
    logFile: '/x/restore.log',
  });
  assert.equal(
    err.message,
    "CRIU RESTORE failed: EEXIST (a pid the checkpoint needs is taken): Error (criu/cr-restore.c:1237): Can't fork for 15204: File exists; see /x/restore.log",
  );
  assert.equal(err.code, 'ECRIU');
  assert.equal(err.errnoName, 'EEXIST');
  assert.equal(new CriuError({ requestType: 'CHECK' }).message, 'CRIU CHECK failed: no reason given');
});

test('log tail: the "Error (" lines and the last lines, in order; [] for a missing file', async () => {
  const log = path.join(dir, 'x.log');
  const lines = Array.from({ length: 50 }, (_, i) => (i === 10 || i === 30 ? `(0.${i}) Error (a.c:${i}): bad ${i}` : `(0.${i}) line ${i}`));
  await writeFile(log, lines.join('\n') + '\n');
  assert.deepEqual(await readLogTail(log, { lastLines: 3 }), [lines[10], lines[30], lines[47], lines[48], lines[49]]);
  assert.deepEqual(await readLogTail(path.join(dir, 'none.log')), []);
  // Only the end of a big log is read; a cut first line is dropped.
  assert.deepEqual(await readLogTail(log, { maxBytes: 40, lastLines: 5 }), [lines[48], lines[49]]);
});
