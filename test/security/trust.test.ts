// What a root process trusts from disk (key file, config files, storage root, runtime folder), job and manifest
// signatures, and the one allow-list of CRIU options a job may set.
import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { startService } from '../../src/app/start-service.js';
import { ValidationError } from '../../src/common/validation.js';
import { loadConfig } from '../../src/config/load.js';
import { configSchema } from '../../src/config/schema.js';
import { criuOptionsSchema, JOB_CRIU_OPTIONS, jobCriuOptions } from '../../src/criu/options.js';
import { JobRefusedError, openJobData, signJobData } from '../../src/queue/job-signature.js';
import { parseRestoreJob } from '../../src/queue/schemas.js';
import { jobKeyFileOf, loadSigner } from '../../src/security/key-file.js';
import { canonicalJson } from '../../src/security/signer.js';
import { ensurePrivateDir, UntrustedPathError } from '../../src/security/trusted-files.js';
import { throwawaySigner } from '../helpers/signer.js';

const NOBODY = 65534;
const CP = '20261127T134501Z-1a2b3c4d';
const asRoot = process.geteuid?.() === 0;

describe('trusted files and folders', () => {
  let tmp: string;
  before(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'ckpt-trust-'));
  });
  after(() => rm(tmp, { recursive: true, force: true }));

  it('the key file is made 0600 at first start, read back the same by every process, and refused when others can read it', () => {
    const file = path.join(tmp, 'keys', 'job.key');
    const first = loadSigner(file);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.match(readFileSync(file, 'utf8'), /^[0-9a-f]{64}\n$/);
    const again = loadSigner(file);
    assert.equal(again.sign('job', { a: 1 }), first.sign('job', { a: 1 }), 'the same key, not a new one');
    chmodSync(file, 0o644);
    assert.throws(() => loadSigner(file), (e: unknown) => e instanceof UntrustedPathError && /job\.key: mode 0644: a secret must be readable by its owner only/.test(e.message));
    chmodSync(file, 0o600);
    writeFileSync(file, 'short\n');
    assert.throws(() => loadSigner(file), /not a key/);
  });

  it('the key file defaults to job.key next to the storage root', () => {
    assert.equal(jobKeyFileOf(configSchema.parse({})), '/var/lib/ckpt/job.key');
    assert.equal(jobKeyFileOf(configSchema.parse({ storage: { root: '/srv/ckpt/cp' } })), '/srv/ckpt/job.key');
    assert.equal(jobKeyFileOf(configSchema.parse({ security: { jobKeyFile: '/etc/ckpt/job.key' } })), '/etc/ckpt/job.key');
  });

  it('a config file others can write, or a symlink, is refused naming the file and the reason', () => {
    const file = path.join(tmp, 'ckpt.yaml');
    writeFileSync(file, 'node: a\n', { mode: 0o644 });
    assert.equal(loadConfig(file, {}, {}).node, 'a');
    chmodSync(file, 0o664);
    assert.throws(
      () => loadConfig(file, {}, {}),
      (e: unknown) => e instanceof ValidationError && e.message === `invalid config ${file}: not trusted: mode 0664: writable by group or others (chmod go-w)`,
    );
    chmodSync(file, 0o644);
    const link = path.join(tmp, 'link.yaml');
    symlinkSync(file, link);
    assert.throws(() => loadConfig(link, {}, {}), /not trusted: it is a symbolic link/);
  });

  it('a config file owned by another user is refused', { skip: !asRoot && 'needs root to chown' }, () => {
    const file = path.join(tmp, 'theirs.yaml');
    writeFileSync(file, 'node: a\n', { mode: 0o644 });
    chownSync(file, NOBODY, NOBODY);
    assert.throws(() => loadConfig(file, {}, {}), new RegExp(`not trusted: owned by uid ${NOBODY}, not by root`));
  });

  it('a private folder is made 0700, a looser one is fixed and reported, a symlink is refused', () => {
    const dir = path.join(tmp, 'store', 'checkpoints');
    ensurePrivateDir(dir);
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    chmodSync(dir, 0o755);
    const fixed: string[] = [];
    ensurePrivateDir(dir, (m) => fixed.push(m));
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    assert.deepEqual(fixed, [`${dir} had mode 0755; set to 0700 (it must be private to ckpt)`]);
    const link = path.join(tmp, 'store', 'link');
    symlinkSync(dir, link);
    assert.throws(() => ensurePrivateDir(link), /it is a symbolic link/);
  });

  it('a worker does not start on a storage root or runtime folder owned by another user', { skip: !asRoot && 'needs root to chown' }, async () => {
    const root = path.join(tmp, 'theirs', 'checkpoints');
    mkdirSync(root, { recursive: true, mode: 0o700 });
    chownSync(root, NOBODY, NOBODY);
    const config = configSchema.parse({ storage: { root }, redis: { url: 'redis://127.0.0.1:1' } });
    const log = pino({ level: 'silent' });
    await assert.rejects(
      startService({ config, roles: { api: false, worker: true, scheduler: false }, log, version: 'test' }),
      (e: unknown) => e instanceof UntrustedPathError && e.message === `refusing ${root}: owned by uid ${NOBODY}, not by root`,
    );
    const runtimeDir = path.join(tmp, 'theirs', 'run');
    mkdirSync(runtimeDir, { mode: 0o700 });
    chownSync(runtimeDir, NOBODY, NOBODY);
    assert.throws(() => ensurePrivateDir(runtimeDir), new RegExp(`refusing ${runtimeDir}: owned by uid ${NOBODY}`));
  });
});

describe('job signatures', () => {
  const signer = throwawaySigner();
  const identity = { type: 'restore', jobId: 'j1', node: 'node-a' };
  const data = { checkpointId: CP, node: 'node-a', target: 'python3-42' };

  it('verify whatever order the keys come back in, and only with the same key', () => {
    const signed = signJobData(signer, identity, data);
    const reordered = { target: data.target, signature: signed.signature, node: data.node, checkpointId: CP };
    assert.deepEqual(openJobData(signer, identity, reordered), data);
    assert.equal(canonicalJson({ b: [{ d: 1, c: undefined }], a: 2 }), '{"a":2,"b":[{"d":1}]}');
    assert.throws(() => openJobData(throwawaySigner(), identity, signed), (e: unknown) => e instanceof JobRefusedError && e.code === 'EJOB_SIGNATURE');
  });

  it('are bound to the job id, type and node', () => {
    const signed = signJobData(signer, identity, data);
    for (const other of [{ jobId: 'j2' }, { type: 'dump' }, { node: 'node-b' }]) {
      assert.throws(() => openJobData(signer, { ...identity, ...other }, signed), /signature does not verify/, JSON.stringify(other));
    }
  });

  it('a manifest signature is not a job signature', () => {
    const signed = { ...data, signature: signer.sign('manifest', { ...identity, data }) };
    assert.throws(() => openJobData(signer, identity, signed), /signature does not verify/);
  });
});

describe('CRIU options a job may set', () => {
  const NAMING_FILES_OR_COMMANDS = [
    'execCmd', 'root', 'external', 'configFile', 'logFile', 'inheritFd', 'workDirFd', 'parentImg', 'ps', 'cgRoot', 'extMnt',
    'joinNs', 'cgroupPropsFile', 'cgroupYard', 'freezeCgroup', 'irmapScanPaths', 'skipMnt', 'enableFs', 'statusFd',
    'pidfdStoreSk', 'tlsCacert', 'tlsCacrl', 'tlsCert', 'tlsKey', 'lsmProfile', 'lsmMountContext', 'veths', 'unixSkIno',
  ];

  it('the allow-list names only known options and none that names a file, a folder, a command or a descriptor', () => {
    for (const key of [...JOB_CRIU_OPTIONS.dump, ...JOB_CRIU_OPTIONS.restore]) {
      assert.ok(key in criuOptionsSchema.shape, key);
      assert.ok(!NAMING_FILES_OR_COMMANDS.includes(key), key);
    }
  });

  it('workers hand CRIU only allow-listed options, whatever a job carries', () => {
    const carried = { tcpClose: true, logLevel: 2, execCmd: ['/bin/sh'], root: '/', external: ['x'], tcpSkipInFlight: true };
    assert.deepEqual(jobCriuOptions('restore', carried), { tcpClose: true, logLevel: 2 });
    assert.deepEqual(jobCriuOptions('dump', carried), { logLevel: 2, tcpSkipInFlight: true });
    assert.deepEqual(jobCriuOptions('dump', undefined), {});
  });

  it('the job schemas refuse every other option by name', () => {
    for (const key of NAMING_FILES_OR_COMMANDS) {
      assert.throws(() => parseRestoreJob({ checkpointId: CP, criu: { [key]: 'x' } }), new RegExp(`criu: Unrecognized key: "${key}"`));
    }
  });
});
