// Runs the compiled benchmarks (dist/bench/*.js), or those named: `npm run bench -- criu-dump feed`.
// Each prints its own figures and the ratio against a baseline measured in the same run, and hands its figures to
// this runner (bench/lib/report.ts), which writes them all to one JSON file and prints one table at the end.
// `--quick` runs a smaller version of each bench (the whole suite in under 2 minutes); other flags go to every bench.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
// The environment `ckpt up` runs with (libuv's thread pool): a bench's worker commits as the service's does.
const { SERVICE_ENV } = await import(path.join(root, 'dist', 'src', 'app', 'node-flags.js'));
const dir = path.join(root, 'dist', 'bench');
const all = readdirSync(dir).filter((f) => f.endsWith('.js')).map((f) => f.slice(0, -3));
const [names, extra] = splitArgs(process.argv.slice(2));
const chosen = names.length ? names : all;
const unknown = chosen.filter((n) => !all.includes(n));
if (unknown.length) {
  console.error(`run-bench: no benchmark ${unknown.join(', ')} (have: ${all.join(', ')})`);
  process.exit(2);
}

const resultsDir = path.join(root, 'bench', 'results');
mkdirSync(resultsDir, { recursive: true });
const figuresFile = path.join(resultsDir, `.figures-${process.pid}.jsonl`);
rmSync(figuresFile, { force: true });
const started = new Date();
const runs = [];
for (const name of chosen) {
  console.log(`\n=== bench/${name} ===`);
  const t0 = Date.now();
  const r = spawnSync(process.execPath, [path.join(dir, `${name}.js`), ...extra], {
    stdio: 'inherit',
    cwd: root,
    env: { ...SERVICE_ENV, ...process.env, CKPT_BENCH_FIGURES: figuresFile },
  });
  runs.push({ bench: name, exitCode: r.status, seconds: (Date.now() - t0) / 1000 });
}
let figures = [];
try {
  figures = readFileSync(figuresFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
} catch {
  // no bench recorded anything
}
rmSync(figuresFile, { force: true });

const results = {
  startedAt: started.toISOString(),
  seconds: (Date.now() - started.getTime()) / 1000,
  args: process.argv.slice(2),
  machine: {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model,
    memoryBytes: os.totalmem(),
    kernel: os.release(),
    node: process.version,
    loadAverageAtEnd: os.loadavg(),
  },
  runs,
  figures,
};
const out = path.join(resultsDir, 'latest.json');
writeFileSync(out, `${JSON.stringify(results, null, 2)}\n`);
printTable(figures);
console.log(`\n${figures.length} figures from ${runs.length} benches in ${results.seconds.toFixed(0)} s -> ${path.relative(root, out)}`);
const failed = runs.filter((r) => r.exitCode !== 0);
if (failed.length) console.error(`run-bench: failed: ${failed.map((r) => `${r.bench} (exit ${r.exitCode})`).join(', ')}`);
process.exit(failed.length ? 1 : 0);

// Benchmark names come first; flags (and what follows them) go to every benchmark.
function splitArgs(args) {
  const i = args.findIndex((a) => a.startsWith('-'));
  return i < 0 ? [args, []] : [args.slice(0, i), args.slice(i)];
}

function printTable(rows) {
  const fmt = (v) => (v === undefined ? '' : Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 1 ? v.toFixed(2) : v.toFixed(3));
  const goal = (g) => (g === undefined ? '' : 'atMost' in g ? `<= ${g.atMost}` : `>= ${g.atLeast}`);
  const table = rows.map((f) => [
    f.bench,
    f.name,
    `${fmt(f.value)} ${f.unit}`,
    f.baseline ? `${f.baseline.name}: ${fmt(f.baseline.value)}` : '',
    fmt(f.ratio),
    goal(f.goal),
    f.met === undefined ? '' : f.met ? 'yes' : 'NO',
  ]);
  const head = ['bench', 'figure', 'value', 'baseline (same run)', 'ratio', 'goal', 'met'];
  const widths = head.map((h, i) => Math.max(h.length, ...table.map((r) => r[i].length)));
  const line = (r) => r.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd();
  console.log(`\n${line(head)}\n${widths.map((w) => '-'.repeat(w)).join('  ')}`);
  for (const r of table) console.log(line(r));
}
