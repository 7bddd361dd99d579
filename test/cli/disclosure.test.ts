// Issue 11.4 and the CLI part of 11.5, against a real `ckpt up` with tokens (real Redis, CRIU, processes): what a read
// token, or no token, learns about the host; `ckpt dump --match` never finds ckpt's own processes.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import WebSocket from 'ws';
import { requireCriu } from '../helpers/criu.js';
import { startCounter, type Counter } from '../helpers/targets.js';
import { runCli } from './run.js';
import { startCkptUp } from './server.js';

const tokens = { operate: 'operate-token-0123456789', read: 'read-token-0123456789ab' };

test('disclosure: read tokens and callers without a token learn no command lines, paths or figures of the host', async (t) => {
  if (!(await requireCriu(t))) return;
  const srv = await startCkptUp({ tokens });
  t.after(() => srv.stop());
  const targets: Counter[] = [];
  t.after(() => Promise.all(targets.map((c) => c.kill())));
  const call = async (method: string, pathname: string, token?: string, body?: unknown) => {
    const res = await fetch(srv.url + pathname, {
      method,
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, text, json: res.headers.get('content-type')?.includes('json') ? JSON.parse(text) : undefined };
  };
  const ckpt = (token: string, ...args: string[]) => runCli(args, { CKPT_URL: srv.url, CKPT_TOKEN: token });
  const counter = await startCounter();
  targets.push(counter);

  await t.test('/healthz: bare liveness for anyone, the checks only with a token; /metrics needs a token', async () => {
    const bare = await call('GET', '/healthz');
    assert.equal(bare.status, 200, bare.text);
    assert.deepEqual(bare.json, { status: 'ok' });
    assert.doesNotMatch(bare.text, new RegExp(srv.storageRoot), 'no path without a token');
    const detailed = await call('GET', '/healthz', tokens.read);
    assert.equal(detailed.json.status, 'ok');
    assert.equal(typeof detailed.json.checks.storage.freeBytes, 'number');
    assert.equal((await call('GET', '/metrics')).status, 401);
    const metrics = await call('GET', '/metrics', tokens.read);
    assert.equal(metrics.status, 200);
    assert.match(metrics.text, /ckpt_storage_free_bytes/);
    // `ckpt health` with a token still shows every check.
    const health = await ckpt(tokens.read, 'health');
    assert.equal(health.code, 0, health.stderr);
    assert.match(health.stdout, /storage: +ok/);
  });

  await t.test('a dump of a process: operate sees its command line in the job, read does not (listing, job, feed snapshot)', async () => {
    const dump = await ckpt(tokens.operate, 'dump', '--pid', String(counter.pid), '--wait', '--json');
    assert.equal(dump.code, 0, dump.stderr);
    const jobId = JSON.parse(dump.stdout).id as string;
    const asOperator = await call('GET', `/api/v1/jobs/${jobId}`, tokens.operate);
    assert.match(asOperator.json.data.resolved.cmdline, /counter\.py/);
    const asReader = await call('GET', `/api/v1/jobs/${jobId}`, tokens.read);
    assert.equal(asReader.json.data.resolved.key, `python3-${counter.pid}`);
    assert.equal(asReader.json.data.resolved.cmdline, undefined);
    const listed = await call('GET', '/api/v1/jobs', tokens.read);
    assert.ok(listed.json.items.some((j: any) => j.id === jobId));
    assert.doesNotMatch(listed.text, /counter\.py/);
    // A since from "another history" (newer than any event) makes the feed send its snapshot of the jobs.
    const ws = new WebSocket(`${srv.url.replace('http', 'ws')}/api/v1/feed?token=${tokens.read}`);
    const snapshot = await new Promise<any>((resolve, reject) => {
      ws.on('message', (raw) => {
        const m = JSON.parse(raw.toString());
        if (m.type === 'hello') ws.send(JSON.stringify({ op: 'subscribe', channels: ['job'], since: '99999999999999-0' }));
        if (m.type === 'snapshot') resolve(m.data);
      });
      ws.on('error', reject);
    });
    ws.close();
    const fed = snapshot.jobs.find((j: any) => j.id === jobId);
    assert.ok(fed, 'the job is in the snapshot');
    assert.equal(fed.data.resolved.cmdline, undefined);
    assert.doesNotMatch(JSON.stringify(snapshot.jobs), /counter\.py/);
  });

  await t.test('{match: "."} answers 422 with a count and at most 3 pids, commands cut short', async () => {
    const res = await call('POST', '/api/v1/dumps', tokens.operate, { target: { match: '.' } });
    assert.equal(res.status, 422, res.text);
    const count = Number(/matches (\d+) processes/.exec(res.json.message)?.[1]);
    assert.ok(count > 3, res.json.message);
    assert.match(res.json.message, new RegExp(`, and ${count - 3} more$`));
    assert.ok(res.json.message.length < 400, `${res.json.message.length} characters`);
    assert.ok(!res.json.message.includes(counter.dir), 'no whole command line');
  });

  await t.test('pidFile: a missing file, a file too long and a file with no pid get the same answer', async () => {
    const long = path.join(counter.dir, 'long.pid');
    await writeFile(long, 'x'.repeat(200));
    const junk = path.join(counter.dir, 'junk.pid');
    await writeFile(junk, 'secret\n');
    const answers = new Set<string>();
    for (const file of [path.join(counter.dir, 'missing.pid'), long, junk, '/etc/shadow']) {
      const res = await call('POST', '/api/v1/dumps', tokens.operate, { target: { pidFile: file } });
      assert.equal(res.status, 422, res.text);
      answers.add(res.json.message.replace(file, 'FILE'));
    }
    assert.equal(answers.size, 1, [...answers].join(' | '));
  });

  await t.test('ckpt dump --match never finds ckpt itself: the CLI, the service, its CRIU service', async () => {
    // The counter's folder name is in its command line, and in the CLI's (as the regex): the CLI is not a candidate.
    const unique = path.basename(counter.dir);
    const dump = await ckpt(tokens.operate, 'dump', '--match', unique, '--wait', '--json');
    assert.equal(dump.code, 0, dump.stderr);
    assert.equal(JSON.parse(dump.stdout).data.resolved.pid, counter.pid);
    // This instance's CRIU service has its runtime folder in its command line: no process of ckpt's matches.
    const runtimeDir = path.join(path.dirname(srv.storageRoot), 'run');
    const own = await ckpt(tokens.operate, 'dump', '--match', `${runtimeDir}/`);
    assert.equal(own.code, 1);
    assert.match(own.stderr, /no process's command line matches/);
  });
});
