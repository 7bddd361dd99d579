// Runs every compiled test file (dist/test/**/*.test.js, or the ones named on the command line) with node's
// built-in test runner. In CI (CI=true) a skipped test is a failure: the CRIU tests must really run there. The one
// exception: a test skipped for a missing kernel feature on KERNEL_FEATURE_SKIPS (test/helpers/criu.ts,
// skipForKernelFeature), which the summary names every time, in CI and out.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** Kernel features whose absence CI accepts as a reason to skip (the tests that need them cannot run on such a kernel). */
const KERNEL_FEATURE_SKIPS = ['soft-dirty'];
const KERNEL_SKIP = /^missing kernel feature: ([\w-]+)/;

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const testDir = path.join(root, 'dist', 'test');

function findTests(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return e.name === 'helpers' || e.name === 'fixtures' ? [] : findTests(p);
    return e.name.endsWith('.test.js') ? [p] : [];
  });
}

// Two test files at a time: most of a file's time is spent waiting (for CRIU, Redis, a child process, a tick), and
// each file starts its own Redis, CRIU service and folders on free ports, so two do not meet. CKPT_TEST_CONCURRENCY=1
// runs them one by one (to tell a test's own failure from an interaction).
const concurrency = Number(process.env.CKPT_TEST_CONCURRENCY ?? 2);
if (!Number.isInteger(concurrency) || concurrency < 1) {
  console.error(`run-tests: CKPT_TEST_CONCURRENCY must be a whole number >= 1, not '${process.env.CKPT_TEST_CONCURRENCY}'`);
  process.exit(2);
}
const files = process.argv.length > 2 ? process.argv.slice(2).map((f) => path.resolve(f)) : findTests(testDir).sort();
const tapDir = mkdtempSync(path.join(os.tmpdir(), 'ckpt-tap-'));
const tapFile = path.join(tapDir, 'report.tap');
const ciRule = `CI: skips count as failures, except for a missing kernel feature among: ${KERNEL_FEATURE_SKIPS.join(', ')}`;
console.log(`run-tests: ${files.length} test files, ${concurrency} at a time${process.env.CI ? ` (${ciRule})` : ''}`);
const res = spawnSync(
  process.execPath,
  [
    '--test',
    `--test-concurrency=${concurrency}`,
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
const [pass, fail, todo] = [count('pass'), count('fail'), count('todo')];
const skips = [...tap.matchAll(/^\s*(?:not )?ok \d+ - (.*?) # SKIP ?(.*)$/gm)].map((m) => ({ name: m[1], reason: m[2] }));
const featureOf = (s) => KERNEL_SKIP.exec(s.reason)?.[1];
const accepted = skips.filter((s) => KERNEL_FEATURE_SKIPS.includes(featureOf(s)));
const refused = skips.filter((s) => !accepted.includes(s));
// A skip the line parse missed (the runner's own count is the truth) is never an accepted one.
const unparsed = Math.max(0, count('skipped') - skips.length);
console.log(`${pass} passed, ${fail} failed, ${count('skipped')} skipped`);
if (accepted.length) {
  console.log(
    `run-tests: ${accepted.length} skipped for a missing kernel feature (accepted in CI: ${KERNEL_FEATURE_SKIPS.join(', ')}):\n` +
      accepted.map((s) => `  ${s.name}: ${s.reason}`).join('\n'),
  );
}
if (process.env.CI && refused.length + unparsed + todo > 0) {
  console.error(
    `run-tests: ${refused.length + unparsed + todo} test(s) skipped or todo in CI, which counts as a failure (${ciRule}):\n` +
      refused.map((s) => `  ${s.name}: ${s.reason}`).join('\n'),
  );
  process.exit(1);
}
process.exit(res.status ?? 1);
