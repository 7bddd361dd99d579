// Runs the compiled benchmarks (dist/bench/*.js), or those named: `npm run bench -- criu-dump feed`.
// Each prints its own figures and the ratio against a baseline measured in the same run.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const dir = path.join(root, 'dist', 'bench');
const all = readdirSync(dir).filter((f) => f.endsWith('.js')).map((f) => f.slice(0, -3));
const [names, extra] = splitArgs(process.argv.slice(2));
const chosen = names.length ? names : all;
let failed = 0;
for (const name of chosen) {
  if (!all.includes(name)) {
    console.error(`run-bench: no benchmark ${name} (have: ${all.join(', ')})`);
    process.exit(2);
  }
  console.log(`\n=== bench/${name} ===`);
  const r = spawnSync(process.execPath, [path.join(dir, `${name}.js`), ...extra], { stdio: 'inherit', cwd: root });
  if (r.status !== 0) failed++;
}
process.exit(failed ? 1 : 0);

// Benchmark names come first; flags (and what follows them) go to every benchmark.
function splitArgs(args) {
  const i = args.findIndex((a) => a.startsWith('-'));
  return i < 0 ? [args, []] : [args.slice(0, i), args.slice(i)];
}
