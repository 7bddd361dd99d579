import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { parseOrThrow, ValidationError } from '../../src/common/validation.js';
import { isSameProcess } from '../../src/common/proc.js';
import { isSafeTargetKey, resolveTarget, TargetError, targetKey, targetSpecSchema } from '../../src/targets/index.js';
import { startCounter, type Counter } from '../helpers/targets.js';
import { waitUntil } from '../helpers/wait.js';

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** A pid that existed a moment ago and is gone now. */
function exitedPid(): number {
  const res = spawnSync('true');
  return res.pid!;
}

async function rejectsWith(promise: Promise<unknown>, code: string): Promise<TargetError> {
  const err = await promise.then(
    () => assert.fail(`expected ${code}`),
    (e: unknown) => e,
  );
  assert.ok(err instanceof TargetError, String(err));
  assert.equal(err.code, code, err.message);
  return err;
}

describe('targetSpecSchema', () => {
  const fieldsOf = (input: unknown) => {
    try {
      parseOrThrow(z.object({ target: targetSpecSchema }), { target: input }, 'request body');
      return [];
    } catch (e) {
      assert.ok(e instanceof ValidationError);
      return e.issues.map((i) => i.field);
    }
  };

  it('accepts exactly one of pid, pidFile, match', () => {
    assert.deepEqual(fieldsOf({ pid: 42 }), []);
    assert.deepEqual(fieldsOf({ pidFile: '/run/x.pid' }), []);
    assert.deepEqual(fieldsOf({ match: 'python3 .*server' }), []);
  });

  it('refuses none, two, unknown keys, and bad values, naming the field', () => {
    assert.deepEqual(fieldsOf({}), ['target']);
    assert.deepEqual(fieldsOf({ pid: 4, match: 'x' }), ['target']);
    assert.ok(fieldsOf({ pid: 4, pwd: '/' }).includes('target'));
    assert.deepEqual(fieldsOf({ pid: 0 }), ['target.pid']);
    assert.deepEqual(fieldsOf({ pid: 1.5 }), ['target.pid']);
    assert.deepEqual(fieldsOf({ pidFile: 'run/x.pid' }), ['target.pidFile']);
    assert.deepEqual(fieldsOf({ match: '(' }), ['target.match']);
    assert.deepEqual(fieldsOf({ match: '' }), ['target.match']);
  });

  it('says why a regex is invalid', () => {
    assert.throws(
      () => parseOrThrow(z.object({ target: targetSpecSchema }), { target: { match: 'a[' } }, 'request body'),
      /target\.match: not a valid regular expression/,
    );
  });
});

describe('targetKey', () => {
  it('is <sanitized comm>-<pid> and safe as one path component', () => {
    assert.equal(targetKey({ comm: 'python3', pid: 4242 }), 'python3-4242');
    assert.equal(targetKey({ comm: 'kworker/0:1 H', pid: 7 }), 'kworker_0_1_H-7');
    assert.equal(targetKey({ comm: '..', pid: 9 }), '_.-9');
    assert.equal(targetKey({ comm: '', pid: 9 }), 'proc-9');
    for (const comm of ['..', '.tmp-x', 'a/b', '../../etc', 'ü']) assert.ok(isSafeTargetKey(targetKey({ comm, pid: 3 })), comm);
  });

  it('isSafeTargetKey refuses traversal, hidden names and keys without a pid', () => {
    for (const key of ['', '..', '.', '../x-1', 'a/b-1', '.tmp-1', 'python3', 'python3-0', 'a-1/..', 'x\0-1', 42]) {
      assert.equal(isSafeTargetKey(key), false, String(key));
    }
  });
});

describe('resolveTarget', () => {
  let a: Counter;
  let b: Counter;
  let tmp: string;
  before(async () => {
    [a, b] = await Promise.all([startCounter(8), startCounter()]);
    tmp = await mkdtemp(path.join(os.tmpdir(), 'ckpt-resolve-'));
  });
  after(async () => {
    await Promise.all([a?.kill(), b?.kill()]);
    // startCounter's folders are left to the caller.
    await Promise.all([a?.dir, b?.dir, tmp].map((d) => d && rm(d, { recursive: true, force: true })));
  });

  it('by pid: everything /proc says about the process', async () => {
    const info = await resolveTarget({ pid: a.pid });
    assert.equal(info.pid, a.pid);
    assert.equal(info.ppid, process.pid);
    assert.equal(info.uid, process.getuid!());
    assert.match(info.comm, /^python3/);
    assert.match(info.cmdline, /^\S*python3\S* \S+\/test\/fixtures\/counter\.py \S+\/count 8$/);
    assert.match(info.exe, /python3/);
    assert.ok(info.startTime > 0);
    assert.ok(info.rssBytes >= 8 * 1024 * 1024, `rss ${info.rssBytes}`);
    assert.equal(info.kernelThread, false);
    assert.equal(info.targetKey, `${info.comm}-${a.pid}`);
  });

  it('isSameProcess tells the resolved process from a gone one or a reused pid', async () => {
    const info = await resolveTarget({ pid: b.pid });
    assert.equal(await isSameProcess(info), true);
    assert.equal(await isSameProcess({ ...info, startTime: info.startTime + 1 }), false);
    assert.equal(await isSameProcess({ pid: exitedPid(), startTime: info.startTime }), false);
  });

  it('by pid: a gone pid is ETARGET_GONE naming it', async () => {
    const pid = exitedPid();
    const err = await rejectsWith(resolveTarget({ pid }), 'ETARGET_GONE');
    assert.match(err.message, new RegExp(`pid ${pid}\\b`));
  });

  it('by pid file', async () => {
    const file = path.join(tmp, 'a.pid');
    await writeFile(file, `${a.pid}\n`);
    assert.equal((await resolveTarget({ pidFile: file })).pid, a.pid);
  });

  it('pid file problems are ETARGET_PIDFILE with one answer whatever was found (missing, junk, too long, a FIFO, a folder), or ETARGET_GONE for a dead pid', async () => {
    const junk = path.join(tmp, 'junk.pid');
    await writeFile(junk, 'root:x:0:0\n');
    const long = path.join(tmp, 'long.pid');
    await writeFile(long, `${a.pid}${' '.repeat(100)}\n`);
    const fifo = path.join(tmp, 'fifo.pid');
    assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
    const answers = new Set<string>();
    for (const file of [path.join(tmp, 'missing.pid'), junk, long, fifo, tmp]) {
      const err = await rejectsWith(resolveTarget({ pidFile: file }), 'ETARGET_PIDFILE');
      assert.doesNotMatch(err.message, /root:x/, 'the file contents never show up in the error');
      answers.add(err.message.replace(file, 'FILE'));
    }
    // An operate caller must not learn whether a file it cannot read exists, or how long it is.
    assert.deepEqual([...answers], ['pid file FILE: not a readable pid file (a regular file holding one pid)']);
    const dead = path.join(tmp, 'dead.pid');
    await writeFile(dead, String(exitedPid()));
    await rejectsWith(resolveTarget({ pidFile: dead }), 'ETARGET_GONE');
  });

  it('by match: exactly one process', async () => {
    const info = await resolveTarget({ match: `counter\\.py ${escape(a.dir)}/` });
    assert.equal(info.pid, a.pid);
  });

  it('by match: several matches are ETARGET_AMBIGUOUS listing each pid and command line', async () => {
    const err = await rejectsWith(
      resolveTarget({ match: `counter\\.py (${escape(a.dir)}|${escape(b.dir)})/` }),
      'ETARGET_AMBIGUOUS',
    );
    assert.deepEqual(err.matches.map((m) => m.pid).sort(), [a.pid, b.pid].sort());
    assert.match(err.message, /matches 2 processes/);
    for (const c of [a, b]) assert.ok(err.message.includes(`${c.pid} (`), err.message);
  });

  it('by match: "." gives a count and at most 3 pids, each command line cut short, never the host\'s command lines', async () => {
    const err = await rejectsWith(resolveTarget({ match: '.' }), 'ETARGET_AMBIGUOUS');
    const count = Number(/matches (\d+) processes/.exec(err.message)?.[1]);
    assert.ok(count > 3, err.message);
    assert.equal(err.matches.length, 3);
    assert.match(err.message, new RegExp(`, and ${count - 3} more$`));
    for (const m of err.matches) assert.ok(m.cmdline.length <= 40, m.cmdline);
    // The counters' command lines hold their folder (a stand-in for a secret argument): cut off before it.
    for (const c of [a, b]) assert.ok(!err.message.includes(c.dir), err.message);
  });

  it('by match: nothing matching is ETARGET_NONE', async () => {
    await rejectsWith(resolveTarget({ match: `no-such-process-${process.hrtime.bigint()}` }), 'ETARGET_NONE');
  });

  it('by match: a regex that backtracks without end is stopped at its time limit, and the process goes on', async () => {
    // A process whose command line makes /(a+)+$/ try every split of 40 a's before the final "b".
    const victim = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 600_000)', `${'a'.repeat(40)}b`], { stdio: 'ignore' });
    try {
      await waitUntil(`pid ${victim.pid} to show its command line`, async () => (await readFile(`/proc/${victim.pid}/cmdline`, 'utf8')).includes('aaab'), { pollMs: 5 });
      const ticks: number[] = [];
      const ticker = setInterval(() => ticks.push(Date.now()), 50);
      const err = await rejectsWith(resolveTarget({ match: '(a+)+$' }), 'ETARGET_MATCH_TIMEOUT');
      clearInterval(ticker);
      assert.match(err.message, /^\/\(a\+\)\+\$\/ took longer than 2000 ms over the \d+ command lines/);
      // A regex run on this thread would block it for the whole 2 s: the ticker could fire once at most, afterwards.
      assert.ok(ticks.length >= 2, `this thread kept running meanwhile (${ticks.length} ticks of 50 ms)`);
      // The stopped thread is replaced: the next match works.
      assert.equal((await resolveTarget({ match: `counter\\.py ${escape(a.dir)}/` })).pid, a.pid);
    } finally {
      victim.kill('SIGKILL');
    }
  });

  it('by match: never the current process or its ancestors, nor excluded pids', async () => {
    // This file's name is on the command line of this test process and of the runner that started it.
    const thisFile = escape(path.basename(fileURLToPath(import.meta.url)));
    await rejectsWith(resolveTarget({ match: thisFile }), 'ETARGET_NONE');
    await rejectsWith(resolveTarget({ match: `counter\\.py ${escape(a.dir)}/` }, { exclude: [a.pid] }), 'ETARGET_NONE');
  });
});
