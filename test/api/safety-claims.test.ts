import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { startCounter, type Counter } from '../helpers/targets.js';
import { waitUntil } from '../helpers/wait.js';
import { api, startServiceUnderTest } from './harness.js';

// The README's Safety claims, through the real service: targets that are ckpt's own processes (itself, its CRIU
// service, an ancestor) or pid 1 are refused with 403, and the allow-lists (policy.allowUids, policy.allowCommands)
// refuse what they do not list while what they list is dumped for real.

test('targets ckpt must never dump, and the allow-lists, through the API', async (t) => {
  const svc = await startServiceUnderTest(t, { policy: { allowUids: [0], allowCommands: ['counter\\.py'] } });
  if (!svc) return;
  const started: ChildProcess[] = [];
  const counters: Counter[] = [];
  t.after(async () => {
    for (const c of started) c.kill('SIGKILL');
    for (const c of counters) await c.kill();
  });
  const sleeper = (args: string[], uid?: number) => {
    // Own session, no terminal: only the policy can be why it is refused. `; true` keeps sh from exec-ing sleep.
    const child = spawn('/bin/sh', ['-c', 'sleep 1000; true', ...args], { detached: true, stdio: 'ignore', ...(uid === undefined ? {} : { uid, gid: uid }) });
    started.push(child);
    return child.pid!;
  };
  // The CRIU service ckpt supervises writes its pid next to its socket.
  const criuService = Number(readFileSync(path.join(svc.config.criu.runtimeDir, 'criu-service.pid'), 'utf8'));
  assert.ok(criuService > 1 && existsSync(`/proc/${criuService}`), `the CRIU service runs: ${criuService}`);

  const rows: { input: string; pid: number; reason: RegExp }[] = [
    { input: 'pid 1', pid: 1, reason: /pid 1 \(init\) is never a target/ },
    { input: 'ckpt itself', pid: process.pid, reason: /it is ckpt's own process/ },
    { input: "ckpt's CRIU service", pid: criuService, reason: /it is one of ckpt's own processes/ },
    { input: "an ancestor of ckpt's process", pid: process.ppid, reason: /it is an ancestor of ckpt's own process/ },
    { input: 'a uid not in policy.allowUids', pid: sleeper(['counter.py'], 65534), reason: /uid 65534 is not in policy\.allowUids \(0\)/ },
    { input: 'a command line not in policy.allowCommands', pid: sleeper(['other']), reason: /matches none of policy\.allowCommands/ },
  ];
  const answers = await Promise.all(rows.map((row) => api(svc.url, 'POST', '/api/v1/dumps', { target: { pid: row.pid } })));
  rows.forEach((row, i) => {
    const { status, json } = answers[i]!;
    assert.equal(status, 403, `${row.input}: ${JSON.stringify(json)}`);
    assert.equal(json.error, 'policy', row.input);
    assert.match(json.message, row.reason, row.input);
  });

  // What the lists allow is dumped for real: a root process whose command line names counter.py.
  const allowed = await startCounter();
  counters.push(allowed);
  const res = await api(svc.url, 'POST', '/api/v1/dumps', { target: { pid: allowed.pid } });
  assert.equal(res.status, 202, res.text);
  const job = await waitUntil(`job ${res.json.jobId} to finish`, async () => {
    const { json } = await api(svc.url, 'GET', `/api/v1/jobs/${res.json.jobId}`);
    return (json.state === 'completed' || json.state === 'failed') && json;
  }, { timeoutMs: 120_000, pollMs: 50 });
  assert.equal(job.state, 'completed', job.failedReason);
  assert.ok(allowed.alive(), 'left running');
});
