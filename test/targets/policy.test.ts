import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { ValidationError } from '../../src/common/validation.js';
import { PolicyError, readProcessSnapshot, TargetPolicy, type ProcessSnapshot } from '../../src/targets/index.js';
import { killAndReap, startCounter, type Counter } from '../helpers/targets.js';
import { waitUntil } from '../helpers/wait.js';

async function info(pid: number): Promise<ProcessSnapshot> {
  const found = await readProcessSnapshot(pid);
  assert.ok(found, `pid ${pid} exists`);
  return found;
}

async function refusal(policy: TargetPolicy, pid: number): Promise<string> {
  const err = await policy.check(await info(pid)).then(
    () => assert.fail(`pid ${pid} should be refused`),
    (e: unknown) => e,
  );
  assert.ok(err instanceof PolicyError, String(err));
  assert.equal(err.code, 'EPOLICY');
  assert.equal(err.pid, pid);
  return err.reason;
}

describe('TargetPolicy', () => {
  let counter: Counter;
  before(async () => {
    counter = await startCounter();
  });
  after(async () => {
    await counter?.kill();
    if (counter) await rm(counter.dir, { recursive: true, force: true });
  });

  it('allows an ordinary process', async () => {
    await new TargetPolicy().check(await info(counter.pid));
  });

  it('refuses pid 1', async () => {
    assert.match(await refusal(new TargetPolicy(), 1), /pid 1/);
  });

  it('refuses a kernel thread (kthreadd, pid 2)', async () => {
    const kthreadd = await info(2);
    assert.equal(kthreadd.kernelThread, true);
    assert.match(await refusal(new TargetPolicy(), 2), /kernel thread/);
  });

  it('refuses the current process and every ancestor of it', async () => {
    const policy = new TargetPolicy();
    assert.match(await refusal(policy, process.pid), /ckpt's own process/);
    assert.match(await refusal(policy, process.ppid), /ancestor of ckpt's own process/);
  });

  it('refuses protected pids and their ancestors, asking for them at each check', async () => {
    // A shell with a child: protecting the child must protect the shell too (dumping it would dump the child).
    const shell = spawn('sh', ['-c', 'sleep 600 & wait'], { detached: true, stdio: 'ignore' });
    const shellPid = shell.pid!;
    try {
      const child = await waitUntil('the shell to start its child', async () => {
        const children = (await readFile(`/proc/${shellPid}/task/${shellPid}/children`, 'utf8')).trim();
        return children ? Number(children.split(' ')[0]) : undefined;
      });
      let protectedPids: number[] = [];
      const policy = new TargetPolicy({ protectedPids: () => protectedPids });
      await policy.check(await info(shellPid));
      protectedPids = [child];
      assert.match(await refusal(policy, child), /ckpt's own processes/);
      assert.match(await refusal(policy, shellPid), new RegExp(`ancestor of ckpt's own process ${child}`));
      await policy.check(await info(counter.pid));
    } finally {
      await killAndReap(-shellPid);
      await killAndReap(shellPid);
    }
  });

  it('applies the uid allow-list', async () => {
    const uid = process.getuid!();
    await new TargetPolicy({ allowUids: [uid] }).check(await info(counter.pid));
    assert.match(await refusal(new TargetPolicy({ allowUids: [uid + 4242] }), counter.pid), /uid \d+ is not in policy\.allowUids/);
  });

  it('applies the command-line allow-list', async () => {
    await new TargetPolicy({ allowCommands: ['^nginx', 'counter\\.py'] }).check(await info(counter.pid));
    assert.match(await refusal(new TargetPolicy({ allowCommands: ['^nginx'] }), counter.pid), /policy\.allowCommands/);
  });

  it('rejects an invalid allow-list regex, naming it', () => {
    assert.throws(
      () => new TargetPolicy({ allowCommands: ['ok', '(['] }),
      (e: unknown) => e instanceof ValidationError && e.issues[0]?.field === 'policy.allowCommands.1',
    );
  });
});
