// Packaging (issue 11.8), checked without a Docker engine: what goes into the image, how it installs, how long Docker
// waits on stop; and scripts/setup.sh run for real against apt configurations and Node versions made for the test.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { parse } from 'yaml';
import { SERVICE_ENV, SERVICE_NODE_FLAGS } from '../../src/app/node-flags.js';
import { repoRoot } from '../../src/common/paths.js';
import { loadConfig } from '../../src/config/load.js';

const root = repoRoot();
const read = (f: string) => readFileSync(path.join(root, f), 'utf8');
const scratch = mkdtempSync(path.join(os.tmpdir(), 'ckpt-packaging-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

test('.dockerignore keeps host installs, build output, history and logs out of the image', () => {
  const ignored = read('.dockerignore').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  for (const entry of ['node_modules', '.data', 'dist', '.git', '*.log']) assert.ok(ignored.includes(entry), `${entry} is ignored`);
});

test('the image is built in a stage of its own and installs only production dependencies, as locked', () => {
  const dockerfile = read('Dockerfile');
  const stages = [...dockerfile.matchAll(/^FROM\s+(\S+)(?:\s+AS\s+(\S+))?$/gim)];
  assert.equal(stages.length, 2, 'a build stage and the runtime image');
  const [build, runtime] = dockerfile.split(/^FROM .*$/m).slice(1) as [string, string];
  assert.match(build, /npm ci\b/, 'the build stage installs as locked');
  assert.match(build, /npm run -s build/);
  assert.match(runtime, /^RUN npm ci --omit=dev\b/m, 'the runtime installs without dev dependencies');
  assert.doesNotMatch(runtime, /npm (install|i)\b/, 'nothing installed past the lock file');
  assert.match(runtime, new RegExp(`^COPY --from=${stages[0]![2]} /opt/ckpt/dist dist$`, 'm'), 'the compiled code comes from the build stage');
  assert.doesNotMatch(runtime, /^COPY \. /m, 'no wholesale copy of the build context');
  assert.match(runtime, /scripts\/setup\.sh --no-node-modules/, 'setup leaves the production modules alone');
  // What the code reads at run time besides dist/: the protocol files and the dashboard's static files.
  for (const dir of ['bin', 'proto', 'config', 'src/dashboard/static']) assert.match(runtime, new RegExp(`^COPY ${dir} ${dir}$`, 'm'), dir);
});

test("docker compose waits longer than ckpt's shutdown grace before it kills the container", () => {
  const compose = parse(read('docker-compose.yml'), { merge: true });
  const ckpt = compose.services.ckpt;
  const config = loadConfig(path.join(root, ckpt.command[2]), {}, { ...ckpt.environment });
  const m = /^(\d+)(ms|s|m)$/.exec(String(ckpt.stop_grace_period));
  assert.ok(m, `stop_grace_period set as a duration: ${ckpt.stop_grace_period}`);
  const graceMs = Number(m[1]) * { ms: 1, s: 1000, m: 60_000 }[m[2] as 'ms' | 's' | 'm'];
  // Beyond the jobs' grace: the CRIU service's stop (up to 3 s) and closing the rest.
  assert.ok(graceMs >= config.worker.shutdownGraceMs + 5000, `${graceMs} ms > worker.shutdownGraceMs ${config.worker.shutdownGraceMs} ms + 5 s`);
});

/** Runs setup.sh with `args` against an apt configuration folder holding `files`, with `node` first on PATH when given. */
function setup(files: Record<string, string>, args: string[] = ['--print-debian-mirror'], node?: string) {
  const etc = mkdtempSync(path.join(scratch, 'apt-'));
  mkdirSync(path.join(etc, 'sources.list.d'));
  for (const [name, text] of Object.entries(files)) writeFileSync(path.join(etc, name), text);
  const bin = mkdtempSync(path.join(scratch, 'bin-'));
  if (node) {
    writeFileSync(path.join(bin, 'node'), `#!/bin/sh\necho ${node}\n`);
    chmodSync(path.join(bin, 'node'), 0o755);
  }
  const env = { ...process.env, PATH: `${bin}:${path.dirname(process.execPath)}:${process.env.PATH}` };
  const res = spawnSync('bash', [path.join(root, 'scripts', 'setup.sh'), ...args, '--apt-etc', etc], { env, encoding: 'utf8' });
  return { code: res.status, stdout: res.stdout.trim(), stderr: res.stderr.trim() };
}

test("setup takes the Debian mirror from the host's apt configuration, one-line and deb822 alike", () => {
  const rows: { input: string; files: Record<string, string>; mirror: string }[] = [
    {
      input: 'sources.list, one-line, with options and a security line first',
      files: {
        'sources.list': '# a comment http://example.invalid/debian\ndeb http://security.debian.org/debian-security bookworm-security main\ndeb [arch=amd64 signed-by=/usr/share/keyrings/k.gpg] http://mirror.example.net/debian/ bookworm main\n',
      },
      mirror: 'http://mirror.example.net/debian',
    },
    {
      input: 'deb822 .sources',
      files: {
        'sources.list.d/debian.sources':
          'Types: deb\nURIs: https://ftp.example.org/debian\nSuites: bookworm\nComponents: main\n\nTypes: deb\nURIs: https://ftp.example.org/debian-security\nSuites: bookworm-security\n',
      },
      mirror: 'https://ftp.example.org/debian',
    },
    { input: 'a .list in sources.list.d', files: { 'sources.list.d/local.list': 'deb http://10.0.0.5/debian bookworm main\n' }, mirror: 'http://10.0.0.5/debian' },
  ];
  for (const row of rows) {
    const res = setup(row.files);
    assert.equal(res.code, 0, `${row.input}: ${res.stderr}`);
    assert.equal(res.stdout, row.mirror, row.input);
  }
});

test('setup fails clearly when the host names no Debian mirror, instead of using one of its own', () => {
  const noMirror: Record<string, string>[] = [{}, { 'sources.list': 'deb http://security.debian.org/debian-security bookworm-security main\n# deb http://deb.debian.org/debian bookworm main\n' }];
  for (const files of noMirror) {
    const res = setup(files);
    assert.equal(res.code, 1);
    assert.match(res.stderr, /setup: error: no Debian mirror in the apt configuration under \S+ \(sources\.list, sources\.list\.d\/\*\.list, \*\.sources\)/);
    assert.equal(res.stdout, '');
  }
  assert.doesNotMatch(read('scripts/setup.sh'), /deb\.debian\.org/, 'no mirror address of its own');
});

test("setup checks Node's version and says which are needed and tested", () => {
  const old = setup({ 'sources.list': 'deb http://deb.example/debian bookworm main\n' }, ['--print-debian-mirror'], 'v18.19.0');
  assert.equal(old.code, 1);
  assert.equal(old.stderr, 'setup: error: Node.js v18.19.0 is too old: ckpt needs Node.js >= 20 (tested: 20, 22 and 24)');
  const current = setup({ 'sources.list': 'deb http://deb.example/debian bookworm main\n' }, ['--print-debian-mirror'], 'v24.1.0');
  assert.equal(current.code, 0, current.stderr);
});

test("every way of starting `ckpt up` gives node the service's flags (src/app/node-flags.ts)", () => {
  const flags = SERVICE_NODE_FLAGS.join(' ');
  assert.match(read('deploy/systemd/ckpt.service'), new RegExp(`^ExecStart=/usr/bin/node ${flags} /opt/ckpt/bin/ckpt\\.js up `, 'm'), 'the service unit');
  const entrypoint = /^ENTRYPOINT (\[.*\])$/m.exec(read('Dockerfile'))?.[1];
  assert.deepEqual(JSON.parse(entrypoint ?? '[]'), ['node', ...SERVICE_NODE_FLAGS, 'bin/ckpt.js'], 'the image');
  const start = (JSON.parse(read('package.json')) as { scripts: { start: string } }).scripts.start;
  assert.match(start, new RegExp(`\\bnode ${flags} bin/ckpt\\.js up\\b`), 'npm start');
});

test("every way of starting `ckpt up` gives node the service's environment (src/app/node-flags.ts)", () => {
  const start = (JSON.parse(read('package.json')) as { scripts: { start: string } }).scripts.start;
  for (const [name, value] of Object.entries(SERVICE_ENV)) {
    assert.match(read('deploy/systemd/ckpt.service'), new RegExp(`^Environment=${name}=${value}$`, 'm'), `the service unit: ${name}`);
    assert.match(read('Dockerfile'), new RegExp(`^ENV ${name}=${value}$`, 'm'), `the image: ${name}`);
    assert.match(start, new RegExp(`\\b${name}=${value} node `), `npm start: ${name}`);
  }
});
