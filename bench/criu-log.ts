// Benchmark: the worker's CPU for following a flood of CRIU log (a big dump at log level 4), no Redis.
//
//   node --import tsx bench/criu-log.ts [--lines N] [--rounds N] [--quick]
//
// A CRIU-like log of --lines lines (a warning every 5,000) is written once; each round follows it to its end twice,
// alternating the order: with the CriuLogTailer and what a dump keeps of each batch (CriuLogDigest: warnings, errors and
// the last 200 lines; a job.log event's 50 lines), against the baseline of what a dump did before the job log was
// bounded: every line decoded to a string and split out, all of them joined for the job log, 50 picked for the event.
// Prints the CPU time of this process per log for each, and the ratio.
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { parseArgs } from 'node:util';
import { CriuLogDigest } from '../workers/bounded-criu-log.js';
import { CRIU_ERROR, CriuLogTailer } from '../workers/criu-log-tailer.js';
import { median } from './lib/figures.js';
import { record } from './lib/report.js';

const { values } = parseArgs({
  options: { lines: { type: 'string' }, rounds: { type: 'string' }, quick: { type: 'boolean', default: false } },
});
const lineCount = Number(values.lines ?? 200_000);
const rounds = Number(values.rounds ?? (values.quick ? 4 : 10));
if (!(lineCount >= 1 && rounds >= 1)) throw new Error('usage: criu-log.ts [--lines N>=1] [--rounds N>=1]');

const dir = await mkdtemp(path.join(os.tmpdir(), 'ckpt-bench-log-'));
const file = path.join(dir, 'dump.log');
const text = Array.from({ length: lineCount }, (_, i) =>
  i % 5000 === 7 ? `(00.${i}) Warn  (criu/kerndat.c:1): a warning ${i}` : `(00.${String(i).padStart(6, '0')}) pie: 1: Dumping page at 0x7f${i.toString(16)} of 4096`,
).join('\n');
await writeFile(file, text + '\n');
const MiB = (Buffer.byteLength(text) / 2 ** 20).toFixed(1);
/** Keeps results alive so no work is optimized away. */
let sink = 0;

/** The tailer and what a dump keeps now. */
async function bounded(): Promise<void> {
  const digest = new CriuLogDigest(200);
  const tailer = new CriuLogTailer({
    file,
    intervalMs: 1e9,
    onLines: (batch) => {
      digest.add(batch);
      sink += batch.linesWith(CRIU_ERROR).length;
      for (let i = Math.max(0, batch.count - 50); i < batch.count; i++) sink += batch.line(i).length;
    },
  });
  await tailer.stop();
  sink += digest.summary('here').length;
}

/** Baseline: every line a string (1 MiB reads, as the tailer reads), all joined for the job log, 50 for the event. */
async function everyLine(): Promise<void> {
  const handle = await open(file, 'r');
  const decoder = new StringDecoder('utf8');
  const buf = Buffer.allocUnsafe(1 << 20);
  let partial = '';
  for (let offset = 0; ; ) {
    const { bytesRead } = await handle.read(buf, 0, buf.length, offset);
    if (!bytesRead) break;
    offset += bytesRead;
    const lines = (partial + decoder.write(buf.subarray(0, bytesRead))).split('\n');
    partial = lines.pop() ?? '';
    const complete = lines.filter((l) => l !== '');
    sink += complete.join('\n').length;
    sink += complete.filter((l) => l.includes('Error (')).slice(0, 50).length + complete.slice(-50).length;
  }
  await handle.close();
}

const cpu = { bounded: [] as number[], everyLine: [] as number[] };
const measure = async (name: keyof typeof cpu, fn: () => Promise<void>) => {
  const start = process.cpuUsage();
  await fn();
  const used = process.cpuUsage(start);
  cpu[name].push((used.user + used.system) / 1000);
};
await measure('bounded', bounded); // warm-up of both, not counted
await measure('everyLine', everyLine);
cpu.bounded.length = cpu.everyLine.length = 0;
for (let r = 0; r < rounds; r++) {
  if (r % 2) {
    await measure('bounded', bounded);
    await measure('everyLine', everyLine);
  } else {
    await measure('everyLine', everyLine);
    await measure('bounded', bounded);
  }
}
await rm(dir, { recursive: true, force: true });
const load = os.loadavg()[0]!;
const fmt = (xs: number[]) => xs.map((x) => x.toFixed(0)).join(', ');
console.log(`criu-log: ${lineCount} lines (${MiB} MiB), ${rounds} rounds, load average ${load.toFixed(1)} (sink ${sink > 0})`);
console.log(`  CPU ms per log, tailer + what a dump keeps: ${fmt(cpu.bounded)}`);
console.log(`  CPU ms per log, every line a string (before): ${fmt(cpu.everyLine)}`);
const r = record('criu-log', {
  name: `CPU to follow a ${lineCount}-line CRIU log and keep a dump's part (median)`,
  value: median(cpu.bounded),
  unit: 'ms',
  baseline: { name: 'every line a string, all joined for the job log', value: median(cpu.everyLine) },
  loadAverage: load,
});
console.log(`  median ${r.value.toFixed(0)} ms against ${r.baseline!.value.toFixed(0)} ms: ratio ${r.ratio!.toFixed(2)}`);
