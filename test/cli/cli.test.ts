import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { requireCriu } from '../helpers/criu.js';
import { killAndReap, startCounter, waitGone, type Counter } from '../helpers/targets.js';
import { ApiClient } from '../../src/cli/api-client.js';
import { EventId } from '../../src/events/event-id.js';
import { runCli, spawnCli } from './run.js';
import { startCkptUp } from './server.js';

// `ckpt` as a user runs it: a child process talking to a real `ckpt up` (real Redis, real CRIU, real processes).

const CHECKPOINT_ID = /^\d{8}T\d{6}Z-[0-9a-f]{8}$/;
const MiB = 1024 * 1024;

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 30_000, detail = () => ''): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${detail()}`);
    await sleep(25);
  }
}

test('ckpt against a running ckpt up', async (t) => {
  if (!(await requireCriu(t))) return;
  // With tokens: every command below authenticates (CKPT_TOKEN), and the refusals are checked too.
  const tokens = { operate: randomBytes(16).toString('hex'), read: randomBytes(16).toString('hex') };
  const srv = await startCkptUp({ tokens });
  t.after(() => srv.stop());
  const asOperator = { CKPT_URL: srv.url, CKPT_TOKEN: tokens.operate };
  const ckpt = (...args: string[]) => runCli(args, asOperator);
  const counters: Counter[] = [];
  const counter = async (ballastMiB = 0, options: { ignoreTerm?: boolean } = {}) => {
    const c = await startCounter(ballastMiB, options);
    counters.push(c);
    return c;
  };
  t.after(async () => {
    for (const c of counters) await c.kill();
  });

  await t.test('dump --wait --json completes with a checkpoint id; the target keeps running', async () => {
    const c = await counter(16);
    const r = await ckpt('dump', '--pid', String(c.pid), '--wait', '--json');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '', 'no progress output with --json');
    const job = JSON.parse(r.stdout);
    assert.equal(job.type, 'dump');
    assert.equal(job.state, 'completed');
    assert.match(job.result.checkpointId, CHECKPOINT_ID);
    assert.ok(job.result.bytes > 16 * MiB, `checkpoint holds the ballast: ${job.result.bytes} bytes`);
    assert.ok(job.result.stats.pagesWritten > 4096, JSON.stringify(job.result.stats));
    assert.ok(c.alive(), 'leaveRunning is the default');

    const [list, jobs, shown, health] = await Promise.all([
      ckpt('checkpoints', '--json'),
      ckpt('jobs', '--type', 'dump', '--json'),
      ckpt('job', job.id),
      ckpt('health'),
    ]);
    assert.equal(health.code, 0, health.stderr);
    assert.match(health.stdout, /^ok {2}http:\S+\n {2}redis: +ok .*\n {2}criu: +ok +version=4\./);
    assert.equal(list.code, 0, list.stderr);
    assert.ok(JSON.parse(list.stdout).items.some((cp: { id: string }) => cp.id === job.result.checkpointId));
    assert.ok(JSON.parse(jobs.stdout).items.some((j: { id: string }) => j.id === job.id));
    assert.match(shown.stdout, new RegExp(`^id: +${job.id}\ntype: +dump\nstate: +completed\ntarget: +pid ${c.pid}\n`));
    assert.match(shown.stdout, new RegExp(`\nresult: +checkpoint ${job.result.checkpointId}, frozen `));
  });

  await t.test('dump --stop --wait, then restore --wait: the process is back and counts on', async () => {
    const c = await counter();
    const dump = await ckpt('dump', '--pid', String(c.pid), '--stop', '--wait');
    assert.equal(dump.code, 0, dump.stderr);
    const id = /checkpoint\s+(\S+)/.exec(dump.stdout)?.[1];
    assert.match(id ?? '', CHECKPOINT_ID, dump.stdout);
    assert.match(dump.stdout, /^dump job \S+ completed\n/);
    assert.match(dump.stdout, /\n {2}frozen +\d/);
    assert.match(dump.stdout, /\n {2}written +\d+ pages, [\d.]+ MiB/);
    // Not a terminal: stage lines instead of bars.
    assert.match(dump.stderr, new RegExp(`^queued dump job \\S+: pid ${c.pid}\n`));
    assert.match(dump.stderr, new RegExp(`^dump pid ${c.pid}: active$`, 'm'));
    assert.match(dump.stderr, new RegExp(`^dump pid ${c.pid}: stage \\S+`, 'm'));
    assert.match(dump.stderr, new RegExp(`^dump pid ${c.pid}: completed$`, 'm'));
    assert.doesNotMatch(dump.stderr, /\x1b\[/, 'no escape sequences when not a TTY');
    await waitGone(c.pid);
    const dumpedAt = c.read();

    const restore = await ckpt('restore', id!, '--wait');
    assert.equal(restore.code, 0, restore.stderr);
    assert.match(restore.stdout, new RegExp(`^restore job \\S+ completed\\n {2}restored pid +${c.pid}\\n`));
    await until('the restored counter to count on', () => c.alive() && c.read() > dumpedAt + 5);
  });

  await t.test("bad input: the API's 400 field by field; unknown ids 404; a read token 403; no token 401", async () => {
    // Independent requests: run them side by side.
    const [badPid, badSchedule, json, missing, reader, nobody] = await Promise.all([
      ckpt('dump', '--pid', '0'),
      ckpt('schedules', 'add', 'nightly', '--cron', '61 * * * *', '--pid', '1', '--keep-last', '0'),
      ckpt('restore', 'not-a-checkpoint', '--json'),
      ckpt('job', 'no-such-job'),
      runCli(['--url', srv.url, '--token', tokens.read, 'dump', '--pid', '1']),
      runCli(['--url', srv.url, 'jobs']),
    ]);
    assert.equal(reader.code, 1);
    assert.equal(reader.stderr, "ckpt: token 'reader' has role read; this needs role operate (403 forbidden)\n");
    assert.equal(nobody.code, 1);
    assert.match(nobody.stderr, /^ckpt: .+ \(401 unauthorized\)\n$/);
    assert.equal(badPid.code, 2, 'a request the server refuses as malformed (400) is bad usage');
    assert.match(badPid.stderr, /^ckpt: invalid request \(400\):\n {2}body\.target\.pid: .+\n$/);

    assert.equal(badSchedule.code, 2);
    assert.match(badSchedule.stderr, /^ckpt: invalid request \(400\):\n/);
    assert.match(badSchedule.stderr, /\n {2}body\.cron: .*minute/i);
    assert.match(badSchedule.stderr, /\n {2}body\.retention\.keepLast: /);

    assert.equal(json.code, 2);
    const err = JSON.parse(json.stdout);
    assert.equal(err.status, 400);
    assert.deepEqual(
      err.issues.map((i: { field: string }) => i.field),
      ['body.checkpointId'],
    );

    assert.equal(missing.code, 1);
    assert.equal(missing.stderr, 'ckpt: job no-such-job not found (404 not_found)\n');
  });

  await t.test('a dump of a process that is gone fails with the pid in the reason, exit code 1', async () => {
    const c = await counter();
    const pid = c.pid;
    await killAndReap(pid);
    const r = await ckpt('dump', '--pid', String(pid), '--wait');
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`^ckpt: .*\\b${pid}\\b`, 'm'));
  });

  await t.test('watch prints the events of a dump as readable lines, in order', async () => {
    const watch = spawnCli(['watch'], asOperator);
    let out = '';
    let err = '';
    watch.stdout!.setEncoding('utf8').on('data', (s: string) => (out += s));
    watch.stderr!.setEncoding('utf8').on('data', (s: string) => (err += s));
    t.after(() => watch.kill('SIGKILL'));
    const output = () => `exit: ${watch.exitCode}\nstdout: ${out}\nstderr: ${err}`;
    await until('watch to connect', () => /watching ws:\/\/127\.0\.0\.1:\d+\/api\/v1\/feed/.test(err), 30_000, output);

    const c = await counter(8);
    const dump = await ckpt('dump', '--pid', String(c.pid), '--wait', '--json');
    assert.equal(dump.code, 0, dump.stderr);
    const job = JSON.parse(dump.stdout);
    await until('job.completed in the watch output', () => out.includes(`job.completed`) && out.includes(job.result.checkpointId), 30_000, output);
    watch.kill('SIGINT');
    const [code] = await once(watch, 'exit');
    assert.equal(code, 0, err);

    const mine = new RegExp(`\\bdump ${job.id}\\b`);
    const lines = out.split('\n').filter((l) => mine.test(l));
    const names = lines.map((l) => l.split(/\s+/)[1]);
    assert.equal(names[0], 'job.waiting', out);
    assert.ok(names.indexOf('job.active') > 0, out);
    assert.ok(names.includes('job.progress'), out);
    assert.ok(names.indexOf('job.completed') > names.lastIndexOf('job.progress'), out);
    assert.ok(names.includes('checkpoint.created'), out);
    const completed = lines.find((l) => l.includes('job.completed'))!;
    assert.match(completed, /^\d\d:\d\d:\d\d\.\d{3} job\.completed +dump \S+ checkpoint \S+, frozen .+, \d+ pages, .*MiB, took /);
  });

  await t.test('watch options: --target/--type/--channel filter, --since replays exactly once in order, --job, --logs', async () => {
    // Runs `ckpt watch` until `done` is true of its output, then interrupts it (exit 0).
    const watchUntil = async (args: string[], what: string, done: (out: string) => boolean) => {
      const watch = spawnCli(['watch', ...args], asOperator);
      let out = '';
      let err = '';
      watch.stdout!.setEncoding('utf8').on('data', (s: string) => (out += s));
      watch.stderr!.setEncoding('utf8').on('data', (s: string) => (err += s));
      t.after(() => watch.kill('SIGKILL'));
      await until(what, () => done(out), 30_000, () => `args: ${args.join(' ')}\nstdout: ${out}\nstderr: ${err}`);
      watch.kill('SIGINT');
      const [code] = await once(watch, 'exit');
      assert.equal(code, 0, err);
      return out;
    };
    type Event = { id: string; event: string; jobId?: string; jobType?: string; target?: string; data?: { lines?: string[] } };
    const parse = (out: string): Event[] => out.trim().split('\n').map((l) => JSON.parse(l) as Event);
    const api = new ApiClient({ url: srv.url, token: tokens.operate });
    const before = (await api.request<{ items: Event[] }>('GET', '/api/v1/events', { query: { limit: 1 } })).items.at(-1)!.id;

    const [a, b] = [await counter(), await counter()];
    const dump = (c: Counter) => ckpt('dump', '--pid', String(c.pid), '--wait', '--json');
    const [dumpA, dumpB] = await Promise.all([dump(a), dump(b)]);
    assert.equal(dumpA.code, 0, dumpA.stderr);
    assert.equal(dumpB.code, 0, dumpB.stderr);
    const [jobA, jobB] = [JSON.parse(dumpA.stdout), JSON.parse(dumpB.stdout)];
    const keyA = (await api.getCheckpoint(jobA.result.checkpointId)).target.key;
    const completedA = (out: string) => out.includes('"job.completed"') && out.includes(jobA.id);

    // Replayed from before both dumps: only A's dump job's job-channel events, each once, in order.
    const filtered = parse(await watchUntil(['--json', '--since', before, '--target', keyA, '--type', 'dump', '--channel', 'job'], "A's job.completed", completedA));
    assert.ok(filtered.length >= 4, JSON.stringify(filtered));
    for (const e of filtered) {
      assert.ok(e.event.startsWith('job.'), `--channel job let through ${e.event}`);
      assert.equal(e.target, keyA, `--target let through ${JSON.stringify(e)}`);
      assert.equal(e.jobType, 'dump');
      assert.notEqual(e.jobId, jobB.id, 'B is another target');
    }
    const ids = filtered.map((e) => e.id);
    assert.deepEqual(ids, [...new Set(ids)], 'each event once');
    assert.deepEqual([...ids].sort(EventId.compare), ids, 'in the order of the stream');
    // A dump's target is known once a worker resolved it: its events carry it from its first progress on.
    assert.equal(filtered[0]!.event, 'job.progress', JSON.stringify(filtered.map((e) => e.event)));
    assert.equal(filtered.at(-1)!.event, 'job.completed');

    // From the middle of the job: exactly the events after that id (the job's channel as above, plus its checkpoint).
    const active = filtered[0]!;
    const rest = parse(await watchUntil(['--json', '--since', active.id, '--job', jobA.id], "A's job.completed", completedA));
    assert.ok(rest.every((e) => e.jobId === jobA.id), 'only the job given with --job');
    assert.deepEqual(
      rest.filter((e) => e.event.startsWith('job.')).map((e) => e.id),
      ids.slice(ids.indexOf(active.id) + 1),
    );
    assert.ok(rest.some((e) => e.event === 'checkpoint.created'), 'all channels without --channel');

    // --logs prints CRIU's lines under the count; without it, only the count.
    const logLines = rest.filter((e) => e.event === 'job.log').flatMap((e) => e.data?.lines ?? []);
    assert.ok(logLines.length > 0, "the dump's CRIU log reached the feed");
    const readable = (logs: string[]) => watchUntil(['--since', before, '--job', jobA.id, ...logs], 'job.completed', (out) => /job\.completed/.test(out));
    const [withLogs, withoutLogs] = await Promise.all([readable(['--logs']), readable([])]);
    assert.ok(withLogs.includes(`    ${logLines[0]}`), withLogs);
    assert.match(withoutLogs, /job\.log +dump \S+ \d+ log lines?/);
    assert.ok(!withoutLogs.includes(`    ${logLines[0]}`), 'no log lines without --logs');
  });

  await t.test('logs --follow streams the CRIU log of a running job until it ends; logs prints it afterwards', async () => {
    // A restore that replaces a running original which ignores SIGTERM waits (replaceGraceMs) for it to exit: time to
    // start following it. (Set up through the API directly: the commands for that are tested above.)
    const c = await counter(0, { ignoreTerm: true });
    const api = new ApiClient({ url: srv.url, token: tokens.operate });
    const dumped = await api.createDump({ target: { pid: c.pid } });
    let dumpJob = await api.getJob(dumped.jobId);
    await until('the dump to complete', async () => (dumpJob = await api.getJob(dumped.jobId)).state === 'completed');
    const { jobId } = await api.createRestore({ checkpointId: dumpJob.result!.checkpointId!, replace: true });

    const follow = spawnCli(['logs', jobId, '--follow'], asOperator);
    let out = '';
    let err = '';
    follow.stdout!.setEncoding('utf8').on('data', (s: string) => (out += s));
    follow.stderr!.setEncoding('utf8').on('data', (s: string) => (err += s));
    t.after(() => follow.kill('SIGKILL'));
    const output = () => `exit: ${follow.exitCode}\nstdout: ${out.slice(-3000)}\nstderr: ${err}`;
    // The job log starts with the attempt's header line; following has begun while the job waits.
    await until('the first log line', () => out.includes('--- attempt 1'), 30_000, output);
    assert.equal(follow.exitCode, null, 'still following while the job runs');
    await killAndReap(c.pid); // the process only: its folder holds files the restore reopens
    const [code] = await once(follow, 'exit');
    assert.equal(code, 0, output());
    assert.equal(err, `restore job ${jobId} completed\n`);
    assert.ok(out.includes('Restore finished successfully'), output());

    const afterwards = await ckpt('logs', jobId);
    assert.equal(afterwards.code, 0, afterwards.stderr);
    assert.equal(out, afterwards.stdout, 'followed live: every line, once, in order');
  });

  await t.test('schedules next-runs --from shows a run DST moves and one it repeats', async () => {
    const add = (id: string, cron: string) =>
      ckpt('schedules', 'add', id, '--cron', cron, '--timezone', 'America/New_York', '--dst', 'cron', '--pid', '1', '--disabled');
    for (const r of await Promise.all([add('ny-nightly', '30 2 * * *'), add('ny-halfhourly', '*/30 * * * *')])) assert.equal(r.code, 0, r.stderr);
    const [spring, fall] = await Promise.all([
      ckpt('schedules', 'next-runs', 'ny-nightly', '--from', '2027-03-13T12:00:00Z', '--count', '2'),
      ckpt('schedules', 'next-runs', 'ny-halfhourly', '--from', '2027-11-07T05:59:00Z', '--count', '2'),
    ]);
    assert.equal(spring.stdout, [
      '2027-03-14 03:00:00 America/New_York  (2027-03-14T07:00:00.000Z)  moved: 02:30:00 skipped by DST',
      '2027-03-15 02:30:00 America/New_York  (2027-03-15T06:30:00.000Z)',
      '',
    ].join('\n'), spring.stderr);
    assert.equal(fall.stdout, [
      '2027-11-07 01:00:00 America/New_York  (2027-11-07T06:00:00.000Z)  repeated: 2nd pass (DST)',
      '2027-11-07 01:30:00 America/New_York  (2027-11-07T06:30:00.000Z)  repeated: 2nd pass (DST)',
      '',
    ].join('\n'), fall.stderr);
  });

  await t.test('schedules ls shows each schedule\'s time zone; --max-total-bytes takes units', async () => {
    const added = await ckpt('schedules', 'add', 'sized', '--cron', '0 3 * * *', '--pid', '1', '--disabled', '--max-total-bytes', '2G');
    assert.equal(added.code, 0, added.stderr);
    const [ls, shown, badSize] = await Promise.all([
      ckpt('schedules', 'ls'),
      ckpt('schedules', 'show', 'sized', '--json'),
      ckpt('schedules', 'add', 'badsize', '--cron', '0 3 * * *', '--pid', '1', '--max-total-bytes', '2X'),
    ]);
    assert.equal(ls.code, 0, ls.stderr);
    const header = ls.stdout.split('\n')[0]!;
    assert.match(header, /^ID +CRON +TIME ZONE +TARGET /);
    const column = header.indexOf('TIME ZONE');
    const rowOf = (id: string) => ls.stdout.split('\n').find((l) => l.startsWith(id + ' '));
    assert.equal(rowOf('ny-nightly')?.slice(column).split(/\s+/)[0], 'America/New_York', ls.stdout);
    assert.equal(rowOf('sized')?.slice(column).split(/\s+/)[0], 'UTC', ls.stdout);
    assert.equal(JSON.parse(shown.stdout).retention.maxTotalBytes, 2 * 1024 ** 3);
    assert.equal(badSize.code, 2);
    assert.match(badSize.stderr, /^ckpt: option '--max-total-bytes <size>' argument '2X' is invalid\. expected a size like 500M, 2G/);
  });
});
