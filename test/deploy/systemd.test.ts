import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { repoRoot } from '../../src/common/paths.js';
import { configSchema } from '../../src/config/schema.js';

// The example systemd units in deploy/systemd/: valid for systemd itself, and consistent with ckpt's shutdown.

const UNITS = ['ckpt.service', 'ckpt-worker.service'];

/** `Key=value` lines of a unit file (the last one wins, as in systemd). */
function settings(unit: string): Map<string, string> {
  const map = new Map<string, string>();
  for (const line of unit.split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (m) map.set(m[1]!, m[2]!);
  }
  return map;
}

test('the systemd units pass systemd-analyze verify', async (t) => {
  const which = await promisify(execFile)('sh', ['-c', 'command -v systemd-analyze']).catch(() => null);
  if (!which) return t.skip('systemd-analyze is not installed');
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ckpt-units-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  // verify checks that ExecStart's program exists: point it at this node, wherever it is installed.
  const files = [];
  for (const name of UNITS) {
    const text = await readFile(path.join(repoRoot(), 'deploy', 'systemd', name), 'utf8');
    const file = path.join(dir, name);
    await writeFile(file, text.replace(/^ExecStart=\/usr\/bin\/node /m, `ExecStart=${process.execPath} `));
    files.push(file);
  }
  const { stdout, stderr } = await promisify(execFile)('systemd-analyze', ['verify', ...files]);
  // Warnings about other units (the host's own) are not ours; none may name ours.
  for (const name of UNITS) assert.doesNotMatch(stdout + stderr, new RegExp(name.replace('.', '\\.')), stdout + stderr);
});

test("the units start ckpt with a config, give it longer than its shutdown grace to stop, and kill only ckpt's own process", async () => {
  const grace = configSchema.parse({}).worker.shutdownGraceMs;
  for (const name of UNITS) {
    const unit = settings(await readFile(path.join(repoRoot(), 'deploy', 'systemd', name), 'utf8'));
    const command = name === 'ckpt.service' ? 'up' : 'worker';
    assert.match(unit.get('ExecStart') ?? '', new RegExp(`bin/ckpt\\.js ${command} --config /etc/ckpt/ckpt\\.yaml$`), name);
    assert.ok(Number(unit.get('TimeoutStopSec')) * 1000 > grace, `${name}: TimeoutStopSec ${unit.get('TimeoutStopSec')} s > worker.shutdownGraceMs ${grace} ms`);
    // Restored processes and workloads are ckpt's children: a restart of ckpt must leave them running.
    assert.equal(unit.get('KillMode'), 'process', name);
    assert.equal(unit.get('RuntimeDirectoryMode'), '0700', name);
    assert.equal(unit.get('User'), 'root', name);
  }
});
