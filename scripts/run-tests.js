// Runs every compiled test file (dist/test/**/*.test.js, or the ones named on the command line) with node's
// built-in test runner. In CI (CI=true) a skipped test is a failure: the CRIU tests must really run there.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const testDir = path.join(root, 'dist', 'test');

function findTests(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return e.name === 'helpers' || e.name === 'fixtures' ? [] : findTests(p);
    return e.name.endsWith('.test.js') ? [p] : [];
  });
}

const files = process.argv.length > 2 ? process.argv.slice(2).map((f) => path.resolve(f)) : findTests(testDir).sort();
const tapDir = mkdtempSync(path.join(os.tmpdir(), 'ckpt-tap-'));
const tapFile = path.join(tapDir, 'report.tap');
console.log(`run-tests: ${files.length} test files${process.env.CI ? ' (CI: skips count as failures)' : ''}`);
const res = spawnSync(
  process.execPath,
  [
    '--test',
    '--test-concurrency=1',
    '--test-timeout=300000',
    '--test-reporter=spec',
    '--test-reporter-destination=stdout',
    '--test-reporter=tap',
    `--test-reporter-destination=${tapFile}`,
    ...files,
  ],
  { stdio: 'inherit', cwd: root },
);
const tap = readFileSync(tapFile, 'utf8');
rmSync(tapDir, { recursive: true, force: true });
const count = (name) => Number(new RegExp(`^# ${name} (\\d+)$`, 'm').exec(tap)?.[1] ?? 0);
const [pass, fail, skipped, todo] = [count('pass'), count('fail'), count('skipped'), count('todo')];
console.log(`${pass} passed, ${fail} failed, ${skipped} skipped`);
if (process.env.CI && skipped + todo > 0) {
  const reasons = [...tap.matchAll(/^\s*(?:not )?ok \d+ - (.*?) # SKIP(.*)$/gm)].map((m) => `  ${m[1]}:${m[2]}`);
  console.error(`run-tests: ${skipped + todo} test(s) skipped in CI, which counts as a failure:\n${reasons.join('\n')}`);
  process.exit(1);
}
process.exit(res.status ?? 1);
