// A dump's CRIU log: the whole in the checkpoint folder (dump.log), a bounded part in the job log in Redis, every line
// counted in the feed's job.log events.
import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { startCounter, startTcpPair } from '../helpers/targets.js';
import { startHarness } from './harness.js';

const NOTABLE = /Warn {2}\(|Error \(/;
const POINTER = /^ckpt: (\d+) of CRIU's (\d+) log lines are left out here \(kept: its warning and error lines, and its last (\d+)\); (.*)$/;

test("a level-4 dump's job log holds CRIU's warnings and errors, its last worker.logTailLines lines and where the rest is", async (t) => {
  const h = await startHarness(t, { logTailLines: 100 });
  if (!h) return;
  await h.startWorker();
  const target = await startCounter();
  t.after(() => target.kill());
  const { jobId } = await h.queue.enqueueDump({ target: { pid: target.pid }, criu: { logLevel: 4 } });
  const job = await h.waitFinished(jobId);
  assert.equal(job.state, 'completed', job.failedReason);
  const id = job.result!.checkpointId!;
  const [checkpoint] = await h.catalog.list({ targetKey: `python3-${target.pid}` });
  const whole = (await readFile(path.join(h.store.pathOf(checkpoint!), 'dump.log'), 'utf8')).split('\n').filter((l) => l !== '');
  assert.ok(whole.length > 1000, `a level-4 log is long (${whole.length} lines)`);

  const jobLog = (await h.queue.getJobLog(jobId))!.split('\n');
  const at = jobLog.findIndex((l) => POINTER.test(l));
  assert.ok(at > 0, `the line saying what was left out:\n${jobLog.slice(-3).join('\n')}`);
  const [, leftOut, total, tail, where] = POINTER.exec(jobLog[at]!)!;
  assert.equal(Number(total), whole.length, 'every line of dump.log counted');
  assert.equal(Number(tail), 100);
  assert.equal(where, `the whole log: checkpoint ${id}, GET /api/v1/checkpoints/${id}/log`);
  assert.deepEqual(jobLog.slice(at - 100, at), whole.slice(-100), 'the tail is the end of dump.log, exactly');
  const notable = whole.filter((l) => NOTABLE.test(l));
  assert.ok(notable.length > 0, 'CRIU 4.2.1 warns on every dump here (hardware breakpoints, RLIMIT_NOFILE)');
  for (const line of notable) assert.ok(jobLog.includes(line), `kept: ${line}`);
  const ofCriu = new Set(whole);
  const criuLines = jobLog.filter((l) => ofCriu.has(l));
  const notableBeforeTail = whole.slice(0, -100).filter((l) => NOTABLE.test(l)).length;
  assert.equal(criuLines.length, 100 + notableBeforeTail, 'nothing else of CRIU\'s log');
  assert.equal(Number(leftOut), whole.length - criuLines.length);
  assert.ok(jobLog.length < 100 + notable.length + 10, `bounded: ${jobLog.length} lines`);

  // The feed is told of every line as before: each sent or counted as dropped.
  const events = (await h.eventsOf(jobId)).filter((e) => e.event === 'job.log');
  const told = events.reduce((n, e) => n + (e.data.lines as string[]).length + (e.data.dropped as number), 0);
  assert.equal(told, whole.length);
});

test("a failed dump's job log holds CRIU's error lines and the end of its log, whose folder is gone", async (t) => {
  const h = await startHarness(t, { attempts: 1, logTailLines: 20 });
  if (!h) return;
  await h.startWorker();
  const pair = await startTcpPair();
  t.after(() => pair.kill());
  const { jobId } = await h.queue.enqueueDump({ target: { pid: pair.pid }, criu: { logLevel: 4 } });
  const job = await h.waitFinished(jobId);
  assert.equal(job.state, 'failed');
  const jobLog = (await h.queue.getJobLog(jobId))!.split('\n');
  assert.ok(jobLog.some((l) => /Error \(.*Connected TCP socket/.test(l)), `CRIU's reason is there:\n${jobLog.join('\n')}`);
  const pointer = jobLog.find((l) => POINTER.test(l));
  assert.ok(pointer, 'the line saying what was left out');
  const [, leftOut, total, tail, where] = POINTER.exec(pointer)!;
  assert.equal(where, "the whole log was removed with the failed attempt's folder");
  // A refused dump's log is far below 1 MiB: all of it is kept, whatever logTailLines says.
  assert.equal(leftOut, '0');
  assert.equal(tail, total);
  assert.ok(Number(total) > 20, `more than logTailLines: ${total}`);
});

test('a dump whose commit fails for good leaves no folder behind, and its job log says the whole log is gone', async (t) => {
  const h = await startHarness(t, { attempts: 3 });
  if (!h) return;
  const target = await startCounter();
  t.after(() => target.kill());
  const { jobId } = await h.queue.enqueueDump({ target: { pid: target.pid }, criu: { logLevel: 4 } });
  const { checkpointId } = (await h.queue.getJob(jobId))!.data as { checkpointId: string };
  // The checkpoint's folder is there before the dump is (ECOMMITTED, final): CRIU dumps, the rename is refused.
  const planted = h.store.pathOf({ id: checkpointId, target: { key: `python3-${target.pid}` } });
  await mkdir(planted, { recursive: true });
  await writeFile(path.join(planted, 'mine'), 'not ckpt\'s');
  await h.startWorker();
  const job = await h.waitFinished(jobId);
  assert.equal(job.state, 'failed');
  assert.match(job.failedReason ?? '', /exists already/);
  assert.equal(job.attemptsMade, 1, 'a final error: no retry');
  assert.deepEqual(await readdir(path.dirname(planted)), [checkpointId], 'the dumped attempt folder is gone');
  assert.equal(await readFile(path.join(planted, 'mine'), 'utf8'), "not ckpt's", 'the folder in the way is left alone');
  assert.deepEqual(await h.catalog.list({ targetKey: `python3-${target.pid}` }), []);
  const jobLog = (await h.queue.getJobLog(jobId))!.split('\n');
  const pointer = jobLog.findIndex((l) => l.endsWith(`GET /api/v1/checkpoints/${checkpointId}/log`));
  const taken = jobLog.findIndex((l) => /^checkpoint \S+ was not committed \(.*exists already\): its dump is removed, the whole log with it$/.test(l));
  assert.ok(pointer >= 0 && taken > pointer, `the pointer to the whole log, then what became of it:\n${jobLog.slice(-4).join('\n')}`);
});
