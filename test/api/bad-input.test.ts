import assert from 'node:assert/strict';
import { once } from 'node:events';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import WebSocket from 'ws';
import { ValidationError } from '../../src/common/validation.js';
import { loadConfig } from '../../src/config/load.js';
import { runCli } from '../cli/run.js';
import { api, startServiceUnderTest } from './harness.js';

// Bad input at every edge, one table per edge: each row names the input and the answer a user gets for it (HTTP:
// status, error code, field and message; the feed: error code and field, or the close code; the CLI: exit code and
// message; a config file: a message naming the file and the key, exit code 2). All against the real thing: a real
// service on a real Redis, the real `ckpt` binary, a real WebSocket, real files.

const CHECKPOINT_ID = '20261127T134501Z-1a2b3c4d';

interface HttpRow {
  input: string;
  method: string;
  path: string;
  body?: unknown;
  rawBody?: string;
  status: number;
  error: string;
  /** The field the answer names (400) */
  field?: string;
  message: RegExp;
}

const HTTP: HttpRow[] = [
  { input: 'dump of pid 0', method: 'POST', path: '/api/v1/dumps', body: { target: { pid: 0 } }, status: 400, error: 'validation', field: 'body.target.pid', message: /body\.target\.pid: Too small/ },
  { input: 'dump with two targets', method: 'POST', path: '/api/v1/dumps', body: { target: { pid: 1, match: 'x' } }, status: 400, error: 'validation', field: 'body.target', message: /body\.target/ },
  { input: 'dump with an invalid regex', method: 'POST', path: '/api/v1/dumps', body: { target: { match: '(' } }, status: 400, error: 'validation', field: 'body.target.match', message: /regular expression/ },
  { input: 'dump with an unknown CRIU option', method: 'POST', path: '/api/v1/dumps', body: { target: { pid: 1 }, criu: { imagesDir: '/tmp' } }, status: 400, error: 'validation', field: 'body.criu', message: /imagesDir/ },
  { input: 'body that is not JSON', method: 'POST', path: '/api/v1/dumps', rawBody: '{"target":', status: 400, error: 'bad_request', message: /JSON/ },
  { input: 'restore of a malformed checkpoint id', method: 'POST', path: '/api/v1/restores', body: { checkpointId: 'nope' }, status: 400, error: 'validation', field: 'body.checkpointId', message: /checkpointId/ },
  { input: 'restore of an unknown checkpoint', method: 'POST', path: '/api/v1/restores', body: { checkpointId: CHECKPOINT_ID }, status: 404, error: 'not_found', message: new RegExp(`^checkpoint ${CHECKPOINT_ID} not found$`) },
  { input: 'schedule with a minute of 61', method: 'POST', path: '/api/v1/schedules', body: { id: 'bad-cron', cron: '61 * * * *', target: { pid: 1 } }, status: 400, error: 'validation', field: 'body.cron', message: /minute/i },
  { input: 'schedule in an unknown time zone', method: 'POST', path: '/api/v1/schedules', body: { id: 'bad-tz', cron: '0 3 * * *', timezone: 'Mars/Olympus', target: { pid: 1 } }, status: 400, error: 'validation', field: 'body.timezone', message: /time zone/i },
  { input: 'schedule stopping a {pid} target', method: 'POST', path: '/api/v1/schedules', body: { id: 'stopper', cron: '0 3 * * *', target: { pid: 1 }, leaveRunning: false }, status: 400, error: 'validation', field: 'body.leaveRunning', message: /whichever process has that pid/ },
  { input: 'schedule replaced by one stopping a {pid} target', method: 'PUT', path: '/api/v1/schedules/stopper', body: { cron: '0 3 * * *', target: { pid: 1 }, leaveRunning: false }, status: 400, error: 'validation', field: 'body.leaveRunning', message: /whichever process has that pid/ },
  { input: 'schedule keeping 0 checkpoints', method: 'POST', path: '/api/v1/schedules', body: { id: 'bad-keep', cron: '0 3 * * *', target: { pid: 1 }, retention: { keepLast: 0 } }, status: 400, error: 'validation', field: 'body.retention.keepLast', message: /keepLast/ },
  { input: 'job list with an unknown state', method: 'GET', path: '/api/v1/jobs?state=bogus', status: 400, error: 'validation', field: 'query.state', message: /query\.state/ },
  { input: 'an unknown job', method: 'GET', path: '/api/v1/jobs/no-such-job', status: 404, error: 'not_found', message: /^job no-such-job not found$/ },
  { input: 'an unknown checkpoint', method: 'GET', path: `/api/v1/checkpoints/${CHECKPOINT_ID}`, status: 404, error: 'not_found', message: new RegExp(`^checkpoint ${CHECKPOINT_ID} not found$`) },
  { input: 'delete of an unknown checkpoint', method: 'DELETE', path: `/api/v1/checkpoints/${CHECKPOINT_ID}`, status: 404, error: 'not_found', message: new RegExp(`^checkpoint ${CHECKPOINT_ID} not found$`) },
  { input: 'an unknown schedule', method: 'GET', path: '/api/v1/schedules/no-such', status: 404, error: 'not_found', message: /^schedule no-such not found$/ },
  { input: 'an unknown workload', method: 'GET', path: '/api/v1/workloads/no-such', status: 404, error: 'not_found', message: /^workload no-such not found$/ },
  { input: 'dump of a workload that does not exist', method: 'POST', path: '/api/v1/dumps', body: { target: { workload: 'no-such' } }, status: 422, error: 'target', message: /^workload no-such not found$/ },
];

interface FeedRow {
  input: string;
  /** Sent as is. */
  frame: string;
  /** The error message the feed answers with (the connection stays), or the code it closes with. */
  expect: { code: string; field?: string; message: RegExp } | { close: number };
}

const FEED: FeedRow[] = [
  { input: 'not JSON', frame: 'subscribe me', expect: { code: 'invalid_json', message: /^not JSON/ } },
  { input: 'an unknown op', frame: JSON.stringify({ op: 'frobnicate' }), expect: { code: 'unknown_op', field: 'op', message: /unknown op 'frobnicate'; expected one of subscribe, unsubscribe, ping/ } },
  { input: 'no channel', frame: JSON.stringify({ op: 'subscribe', channels: [] }), expect: { code: 'invalid_message', field: 'channels', message: /pick at least one channel/ } },
  { input: 'an unknown channel', frame: JSON.stringify({ op: 'subscribe', channels: ['nope'] }), expect: { code: 'invalid_message', field: 'channels.0', message: /^channels\.0: / } },
  { input: 'a since that is no event id', frame: JSON.stringify({ op: 'subscribe', channels: ['job'], since: 'yesterday' }), expect: { code: 'invalid_message', field: 'since', message: /^since: / } },
  { input: 'an unknown key', frame: JSON.stringify({ op: 'ping', extra: 1 }), expect: { code: 'invalid_message', message: /extra/ } },
  { input: 'a message over feed.maxPayloadBytes', frame: JSON.stringify({ op: 'ping', pad: 'x'.repeat(70 * 1024) }), expect: { close: 1009 } },
];

interface CliRow {
  input: string;
  args: string[];
  exit: number;
  /** The whole of stderr's first line. */
  stderr: RegExp;
}

const CLI: CliRow[] = [
  { input: 'dump without a target', args: ['dump'], exit: 2, stderr: /^ckpt: give exactly one of --pid, --pid-file, --match, --workload$/ },
  { input: 'a pid that is no number', args: ['dump', '--pid', 'abc'], exit: 2, stderr: /^ckpt: option '--pid <pid>' argument 'abc' is invalid\. expected a whole number, got "abc"$/ },
  { input: 'a pid the server refuses (400)', args: ['dump', '--pid', '0'], exit: 2, stderr: /^ckpt: invalid request \(400\):$/ },
  { input: 'a malformed checkpoint id (400)', args: ['restore', 'nope'], exit: 2, stderr: /^ckpt: invalid request \(400\):$/ },
  { input: 'a size with an unknown unit', args: ['schedules', 'add', 's', '--cron', '0 3 * * *', '--pid', '1', '--max-total-bytes', '2X'], exit: 2, stderr: /^ckpt: option '--max-total-bytes <size>' argument '2X' is invalid\. expected a size like 500M, 2G/ },
  { input: 'an unknown command', args: ['frobnicate'], exit: 2, stderr: /^ckpt: unknown command 'frobnicate'$/ },
  { input: 'a URL that is not http', args: ['--url', 'ftp://x', 'jobs'], exit: 2, stderr: /^ckpt: option '--url <url>' argument 'ftp:\/\/x' is invalid\. expected an http\(s\) URL/ },
  { input: 'an unknown job', args: ['job', 'no-such-job'], exit: 1, stderr: /^ckpt: job no-such-job not found \(404 not_found\)$/ },
  { input: 'an unknown checkpoint', args: ['checkpoints', 'show', CHECKPOINT_ID], exit: 1, stderr: new RegExp(`^ckpt: checkpoint ${CHECKPOINT_ID} not found \\(404 not_found\\)$`) },
  { input: 'an unknown schedule', args: ['schedules', 'show', 'no-such'], exit: 1, stderr: /^ckpt: schedule no-such not found \(404 not_found\)$/ },
];

interface ConfigRow {
  input: string;
  /** The file's text. */
  yaml: string;
  mode?: number;
  /** After `invalid config <file>: `. */
  message: RegExp;
}

const CONFIG: ConfigRow[] = [
  { input: 'a port out of range', yaml: 'api:\n  port: 70000\n', message: /^api\.port: Too big: expected number to be <=65535/ },
  { input: 'a Redis URL that is no URL', yaml: 'redis:\n  url: not a url\n', message: /^redis\.url: must be a redis:\/\/ or rediss:\/\/ URL/ },
  { input: 'no worker concurrency', yaml: 'worker:\n  concurrency: 0\n', message: /^worker\.concurrency: Too small/ },
  { input: 'an allow-list regex that does not compile', yaml: 'policy:\n  allowCommands: ["("]\n', message: /^policy\.allowCommands\.0: not a valid regular expression/ },
  { input: 'a claim TTL shorter than the missed-tick tolerance', yaml: 'scheduler:\n  tickClaimTtlMs: 1000\n', message: /^scheduler\.tickClaimTtlMs: tickClaimTtlMs must be longer than missedTickToleranceMs/ },
  { input: 'YAML that does not parse', yaml: 'api: [port\n', message: /^not valid YAML/ },
  { input: 'a file others may write', yaml: 'node: a\n', mode: 0o664, message: /^not trusted: mode 0664: writable by group or others/ },
];

test('bad input at every edge: each row gets the answer it names', async (t) => {
  const svc = await startServiceUnderTest(t);
  if (!svc) return;

  await t.test('HTTP', async () => {
    const answers = await Promise.all(
      HTTP.map(async (row) => {
        if (row.rawBody === undefined) return api(svc.url, row.method, row.path, row.body);
        const res = await fetch(svc.url + row.path, { method: row.method, headers: { 'content-type': 'application/json' }, body: row.rawBody });
        return { status: res.status, json: (await res.json()) as any };
      }),
    );
    HTTP.forEach((row, i) => {
      const { status, json } = answers[i]!;
      const what = `${row.input}: ${JSON.stringify(json)}`;
      assert.equal(status, row.status, what);
      assert.equal(json.error, row.error, what);
      assert.match(json.message, row.message, what);
      if (row.field) assert.ok(json.issues.some((issue: { field: string }) => issue.field === row.field), what);
    });
  });

  await t.test('the feed', async () => {
    for (const row of FEED) {
      const ws: WebSocket = new WebSocket(svc.url.replace(/^http/, 'ws') + '/api/v1/feed');
      const messages: any[] = [];
      ws.on('message', (data: WebSocket.RawData) => messages.push(JSON.parse(data.toString())));
      const closed = once(ws, 'close');
      await once(ws, 'open');
      ws.send(row.frame);
      if ('close' in row.expect) {
        const [code] = (await closed) as [number];
        assert.equal(code, row.expect.close, row.input);
        continue;
      }
      // A ping after the bad frame: its pong proves the bad frame was answered (answers keep order) and the connection stays.
      ws.send(JSON.stringify({ op: 'ping' }));
      const deadline = Date.now() + 10_000;
      while (!messages.some((m) => m.type === 'pong')) {
        assert.ok(Date.now() < deadline, `${row.input}: no pong within 10 s; got ${JSON.stringify(messages)}`);
        await new Promise((r) => setTimeout(r, 20));
      }
      const error = messages.find((m) => m.type === 'error');
      assert.ok(error, `${row.input}: an error before the pong; got ${JSON.stringify(messages)}`);
      assert.equal(error.code, row.expect.code, row.input);
      assert.match(error.message, row.expect.message, row.input);
      if (row.expect.field) assert.equal(error.field, row.expect.field, row.input);
      assert.equal(ws.readyState, WebSocket.OPEN, `${row.input}: the connection stays`);
      ws.close();
      await closed;
    }
  });

  await t.test('the CLI', async () => {
    const results = await Promise.all(CLI.map((row) => runCli(row.args, { CKPT_URL: svc.url })));
    CLI.forEach((row, i) => {
      const r = results[i]!;
      assert.equal(r.code, row.exit, `${row.input}: exit ${r.code}\n${r.stderr}`);
      assert.match(r.stderr.split('\n')[0]!, row.stderr, row.input);
    });
  });

  await t.test('a config file', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'ckpt-bad-config-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const files = await Promise.all(
      CONFIG.map(async (row, i) => {
        const file = path.join(dir, `bad-${i}.yaml`);
        await writeFile(file, row.yaml);
        await chmod(file, row.mode ?? 0o600);
        return file;
      }),
    );
    // Every row through the loader `ckpt up` and `ckpt worker` use (starting the binary loads the whole service: seconds each)...
    CONFIG.forEach((row, i) => {
      const prefix = `invalid config ${files[i]}: `;
      assert.throws(
        () => loadConfig(files[i], {}, {}),
        (err: Error) => err instanceof ValidationError && err.message.startsWith(prefix) && row.message.test(err.message.slice(prefix.length)),
        row.input,
      );
    });
    // ...and one through the binary: the same line, exit code 2 (bad usage), before anything starts.
    const result = await runCli(['up', '--config', files[0]!]);
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, new RegExp(`^ckpt: invalid config ${files[0]}: api\\.port: Too big: expected number to be <=65535\n$`));
  });
});
