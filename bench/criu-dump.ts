// Benchmark: dumping a ~64 MiB process (leaveRunning) through CriuClient and `criu service`, against the
// `criu dump` command line at the same log level; interleaved in one run (the order alternates each round),
// after one unmeasured warm-up round of each.
//
//   node --import tsx bench/criu-dump.ts [--rounds N] [--log-level L] [--ballast MiB] [--quick]
//
// Prints both medians (wall time of the whole call, and CRIU's own frozen time) and the ratio client/CLI.
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { CriuClient, locateCriu, readDumpStats } from '../src/criu/index.js';
import { startTestCriuService } from '../test/helpers/criu.js';
import { startCounter } from '../test/helpers/targets.js';
import { median } from './lib/figures.js';
import { record } from './lib/report.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string' },
    'log-level': { type: 'string', default: '4' },
    ballast: { type: 'string', default: '64' },
    quick: { type: 'boolean', default: false },
  },
});
const rounds = Number(values.rounds ?? (values.quick ? 3 : 12));
const logLevel = Number(values['log-level']);
const ballastMiB = Number(values.ballast);
if (!(rounds >= 1 && logLevel >= 0 && logLevel <= 4 && ballastMiB >= 0)) {
  throw new Error('usage: criu-dump.ts [--rounds N>=1] [--log-level 0-4] [--ballast MiB]');
}

interface Sample {
  wallMs: number;
  frozenMs: number;
  pages: number;
}

const run = promisify(execFile);
const criu = await locateCriu();
const service = await startTestCriuService(criu);
const target = await startCounter(ballastMiB);
const client = new CriuClient({ socketPath: service.socketPath });
const work = await mkdtemp(path.join(os.tmpdir(), 'ckpt-bench-criu-'));

/** One dump into a fresh folder; the folder is removed afterwards so the page cache and disk do not fill up. */
async function measure(dump: (dir: string) => Promise<unknown>): Promise<Sample> {
  const dir = await mkdtemp(path.join(work, 'img-'));
  try {
    const started = process.hrtime.bigint();
    await dump(dir);
    const wallMs = Number(process.hrtime.bigint() - started) / 1e6;
    const stats = await readDumpStats(dir);
    return { wallMs, frozenMs: stats.frozenTimeUs / 1000, pages: stats.pagesWritten };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const viaClient = (dir: string) =>
  client.dump({ pid: target.pid, imagesDir: dir, leaveRunning: true, logLevel, logFile: 'dump.log' });
// The same options on the command line: no --shell-job needed (the target has its own session and no tty).
const viaCli = (dir: string) =>
  run(criu.bin, ['dump', '-t', String(target.pid), '-D', dir, '--leave-running', `-v${logLevel}`, '-o', 'dump.log']);

const samples = { client: [] as Sample[], cli: [] as Sample[] };
try {
  await measure(viaClient);
  await measure(viaCli);
  for (let i = 0; i < rounds; i++) {
    const order = i % 2 === 0 ? (['client', 'cli'] as const) : (['cli', 'client'] as const);
    for (const which of order) samples[which].push(await measure(which === 'client' ? viaClient : viaCli));
  }
} finally {
  await target.kill();
  await rm(target.dir, { recursive: true, force: true });
  await service.cleanup();
  await rm(work, { recursive: true, force: true });
}

const fmt = (ms: number) => `${ms.toFixed(1)} ms`.padStart(10);
const row = (name: string, xs: Sample[]) => {
  const wall = xs.map((s) => s.wallMs);
  return `${name.padEnd(22)}${fmt(median(wall))}${fmt(Math.min(...wall))}${fmt(Math.max(...wall))}${fmt(median(xs.map((s) => s.frozenMs)))}`;
};
const pages = Math.round(median(samples.client.map((s) => s.pages)));
console.log(
  `criu-dump: CRIU ${criu.version}, ${ballastMiB} MiB counter (pid ${target.pid}), ~${pages} pages ` +
    `(${((pages * 4096) / 2 ** 20).toFixed(1)} MiB) written per dump, leave-running, log level ${logLevel}, ` +
    `${rounds} interleaved rounds after 1 warm-up`,
);
console.log(`${''.padEnd(22)}${'median'.padStart(10)}${'min'.padStart(10)}${'max'.padStart(10)}${'frozen'.padStart(10)}`);
console.log(row('client (criu service)', samples.client));
console.log(row('criu dump (CLI)', samples.cli));
const clientMs = median(samples.client.map((s) => s.wallMs));
const cliMs = median(samples.cli.map((s) => s.wallMs));
console.log(`ratio client/CLI (median wall time): ${(clientMs / cliMs).toFixed(2)} (target <= 1.0)`);
record('criu-dump', {
  name: `dump of a ${ballastMiB} MiB process through CriuClient`,
  value: clientMs,
  unit: 'ms',
  baseline: { name: 'criu dump CLI', value: cliMs },
  goal: { atMost: 1.0 },
});
