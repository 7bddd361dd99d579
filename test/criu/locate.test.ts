// Which CRIU ckpt runs (README, criu.bin): the configured binary and only it; else a criu >= 4.2 on PATH that passes
// `criu check`; else the private install in .data/criu. Real CRIU throughout; an old criu is a script that says it is
// 3.17 (an old release can't be installed beside the new one on demand), and criu.env reaches each CRIU run.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { dataDir } from '../../src/common/paths.js';
import { CriuNotFoundError, locateCriu } from '../../src/criu/locate.js';
import { criuScript, loggingCriu, requireCriu } from '../helpers/criu.js';

const PRIVATE_CRIU = path.join(dataDir(), 'criu', 'bin', 'criu');

/** Runs `fn` with PATH set to `dirs` (locateCriu reads the process's PATH). */
async function withPath<T>(dirs: string[], fn: () => Promise<T>): Promise<T> {
  const saved = process.env.PATH;
  process.env.PATH = [...dirs, '/usr/bin', '/bin'].join(':');
  try {
    return await fn();
  } finally {
    process.env.PATH = saved;
  }
}

test('criu.bin: that binary, with criu.env; a broken one is refused by name, never replaced by another', async (t) => {
  const criu = await requireCriu(t);
  if (!criu) return;
  const logging = await loggingCriu(t, criu.bin);
  const found = await locateCriu(logging.bin, { CRIU_TEST_MARK: 'from-criu-env' });
  assert.deepEqual(found, { bin: logging.bin, version: criu.version });
  assert.deepEqual(await logging.calls(), ['from-criu-env --version', 'from-criu-env check']);

  const missing = path.join(path.dirname(logging.bin), 'no-such-criu');
  const err = await locateCriu(missing).catch((e: unknown) => e);
  assert.ok(err instanceof CriuNotFoundError, String(err));
  assert.match(err.message, new RegExp(`\\(tried: ${missing}: cannot run it \\(ENOENT\\)\\)`));
});

test('no criu.bin: a criu >= 4.2 on PATH that passes check; an older one on PATH is passed over for .data/criu', async (t) => {
  const criu = await requireCriu(t);
  if (!criu) return;
  const onPath = await loggingCriu(t, criu.bin);
  assert.deepEqual(await withPath([path.dirname(onPath.bin)], () => locateCriu()), { bin: onPath.bin, version: criu.version });

  const old = await criuScript(t, 'echo "Version: 3.17.1"');
  const privateOne = await withPath([path.dirname(old)], () => locateCriu());
  assert.equal(privateOne.bin, PRIVATE_CRIU, 'the private install, not the old one first on PATH');

  // Nothing usable at all: the error lists what was tried and why.
  const emptyData = await mkdtemp(path.join(os.tmpdir(), 'ckpt-locate-data-'));
  t.after(() => rm(emptyData, { recursive: true, force: true }));
  await mkdir(path.join(emptyData, 'criu'));
  const saved = process.env.CKPT_DATA_DIR;
  process.env.CKPT_DATA_DIR = emptyData;
  try {
    const err = await withPath([path.dirname(old)], () => locateCriu()).catch((e: unknown) => e);
    assert.ok(err instanceof CriuNotFoundError, String(err));
    assert.match(err.message, new RegExp(`tried: ${old}: version 3\\.17\\.1 is older than 4\\.2\\)`));
  } finally {
    if (saved === undefined) delete process.env.CKPT_DATA_DIR;
    else process.env.CKPT_DATA_DIR = saved;
  }
});
