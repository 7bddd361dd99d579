// Benchmark: a big checkpoint through the queue against what the same work costs by hand.
//
//   node --import tsx bench/big-dump.ts [--size MiB] [--rounds N] [--levels 0,1,2,3,4] [--quick]
//
// A process holding --size MiB (default 1024) is dumped with leaveRunning, interleaved in one run (the order alternating
// each round, after one unmeasured warm-up of each):
// - through the queue: enqueue -> job.completed on the event stream (the worker also flushes, hashes and commits the
//   checkpoint and adds it to the catalog), with CRIU's part inside the job (its durationMs) and the frozen time;
// - by hand: the `criu dump` command line at the same log level, then `dd` writing the same number of bytes into the
//   same file system with fdatasync (what making those bytes durable costs here), and into the page cache only;
// - the same CRIU request sent straight to the CRIU service (CriuClient, no worker around it: no log tailer, no
//   progress sampler), which tells the service's own cost from the worker's.
// Prints the medians and the ratios job / (CLI + dd) and CRIU in the job / CLI. Then the frozen time (what the
// target's users feel) and the job time at each of --levels, through the queue and with the CLI. Last, what checking
// a checkpoint before a restore costs (sizes and SHA-256 of every file), from the page cache and from the disk, against
// `sha256sum` of the same files, and a restore through the queue (which makes that check) of the same checkpoint.
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { readDumpStats } from '../src/criu/index.js';
import type { JobResult } from '../src/queue/job-view.js';
import { killAndReap, startCounter } from '../test/helpers/targets.js';
import { startBenchService } from './lib/bench-service.js';
import { median } from './lib/figures.js';
import { record } from './lib/report.js';

const { values } = parseArgs({
  options: {
    size: { type: 'string' },
    rounds: { type: 'string' },
    levels: { type: 'string' },
    quick: { type: 'boolean', default: false },
  },
});
const sizeMiB = Number(values.size ?? (values.quick ? 256 : 1024));
const rounds = Number(values.rounds ?? (values.quick ? 1 : 3));
const levelList = values.levels ?? (values.quick ? '' : '0,1,2,3,4');
const levels = levelList === '' ? [] : levelList.split(',').map(Number);
if (!(sizeMiB >= 1 && rounds >= 1 && levels.every((l) => Number.isInteger(l) && l >= 0 && l <= 4))) {
  throw new Error('usage: big-dump.ts [--size MiB>=1] [--rounds N>=1] [--levels 0-4,...]');
}

interface Sample {
  /** Job: enqueue -> completed; by hand: the CLI dump. */
  wallMs: number;
  /** CRIU's own part (job: durationMs; by hand: the CLI dump). */
  criuMs: number;
  frozenMs: number;
  bytes: number;
  /** By hand only: dd of the same bytes with fdatasync. */
  flushMs?: number;
  /** By hand only: dd of the same bytes into the page cache (no flush). */
  cacheMs?: number;
  /** Job only: CRIU's reply -> committed and catalogued (flush, SHA-256, manifest, rename, catalog). */
  commitMs?: number;
}

const exec = promisify(execFile);
const harness = await startBenchService('big', { storage: { sync: true } });
const { queue, catalog, store } = harness;
const root = harness.config.storage.root;
const waitFinished = (ids: Set<string>) => harness.jobs.finished(ids);
const defaultLevel = harness.config.criu.logLevel;
const target = await startCounter(sizeMiB).catch(async (err: unknown) => {
  await harness.close();
  throw err;
});

/** A dump job at `logLevel`; its checkpoint is deleted unless `keep`. */
async function viaQueue(logLevel: number, options: { keep?: boolean } = {}): Promise<Sample & { checkpointId: string }> {
  const started = process.hrtime.bigint();
  const { jobId } = await queue.enqueueDump({ target: { pid: target.pid }, criu: { logLevel } });
  const done = await waitFinished(new Set([jobId]));
  const wallMs = Number(process.hrtime.bigint() - started) / 1e6;
  const result = done.get(jobId)!.data.result as JobResult & { checkpointId: string; bytes: number; commitMs: number };
  if (!options.keep) await catalog.delete(result.checkpointId);
  const { checkpointId, durationMs, bytes, commitMs } = result;
  return { checkpointId, wallMs, criuMs: durationMs, frozenMs: (result.stats!.frozenTimeUs as number) / 1000, bytes, commitMs };
}

const timed = async (work: () => Promise<unknown>) => {
  const started = process.hrtime.bigint();
  await work();
  return Number(process.hrtime.bigint() - started) / 1e6;
};

/** `criu dump` at `logLevel`, then (`flush`) dd of as many bytes as it wrote, with fdatasync, in the same file system. */
async function byHand(logLevel: number, flush: boolean): Promise<Sample> {
  const dir = await mkdtemp(path.join(root, 'cli-'));
  try {
    const started = process.hrtime.bigint();
    await exec(harness.criuBin.bin, ['dump', '-t', String(target.pid), '-D', dir, '--leave-running', `-v${logLevel}`, '-o', 'dump.log']);
    const criuMs = Number(process.hrtime.bigint() - started) / 1e6;
    const stats = await readDumpStats(dir);
    const bytes = Number((await exec('du', ['-sb', dir])).stdout.split('\t')[0]);
    const sample: Sample = { wallMs: criuMs, criuMs, frozenMs: stats.frozenTimeUs / 1000, bytes };
    if (flush) {
      const dd = (file: string, ...flags: string[]) =>
        timed(() => exec('dd', ['if=/dev/zero', `of=${path.join(dir, file)}`, 'bs=1M', `count=${Math.ceil(bytes / 2 ** 20)}`, ...flags, 'status=none']));
      sample.cacheMs = await dd('dd-cache.out');
      sample.flushMs = await dd('dd-flush.out', 'conv=fdatasync');
    }
    return sample;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The dump request the worker sends, straight to the CRIU service. */
async function direct(logLevel: number): Promise<Sample> {
  const dir = await mkdtemp(path.join(root, 'rpc-'));
  try {
    const criuMs = await timed(() => harness.client.dump({ pid: target.pid, imagesDir: dir, leaveRunning: true, logLevel, logFile: 'dump.log' }));
    return { wallMs: criuMs, criuMs, frozenMs: (await readDumpStats(dir)).frozenTimeUs / 1000, bytes: 0 };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Runs each named measurement `rounds` times, rotating the order each round, after one warm-up of each. */
async function interleaved<K extends string>(runs: Record<K, () => Promise<Sample>>): Promise<Record<K, Sample[]>> {
  const names = Object.keys(runs) as K[];
  const samples = Object.fromEntries(names.map((n) => [n, [] as Sample[]])) as Record<K, Sample[]>;
  for (const n of names) await runs[n]();
  for (let i = 0; i < rounds; i++) {
    for (let k = 0; k < names.length; k++) {
      const n = names[(i + k) % names.length]!;
      samples[n].push(await runs[n]());
    }
  }
  return samples;
}

const med = (xs: Sample[], f: (s: Sample) => number | undefined) => median(xs.map((s) => f(s) ?? 0));
const ms = (v: number) => `${v.toFixed(0)} ms`.padStart(9);

try {
  console.log(
    `big-dump: CRIU ${harness.criuBin.version}, a ${sizeMiB} MiB counter (pid ${target.pid}), leave-running, ` +
      `${rounds} interleaved rounds after 1 warm-up each; medians`,
  );
  const main = await interleaved({
    job: () => viaQueue(defaultLevel),
    hand: () => byHand(defaultLevel, true),
    rpc: () => direct(defaultLevel),
  });
  const { job, hand, rpc } = main;
  const handTotal = med(hand, (s) => s.criuMs) + med(hand, (s) => s.flushMs);
  console.log(`log level ${defaultLevel} (the default), checkpoint ${(med(job, (s) => s.bytes) / 2 ** 20).toFixed(0)} MiB`);
  console.log(`  job enqueue -> completed ${ms(med(job, (s) => s.wallMs))}   CRIU in the job ${ms(med(job, (s) => s.criuMs))}   frozen ${ms(med(job, (s) => s.frozenMs))}`);
  console.log(`  commit in the job        ${ms(med(job, (s) => s.commitMs))}   (CRIU's reply -> flushed, hashed, committed, catalogued)`);
  console.log(
    `  criu dump CLI            ${ms(med(hand, (s) => s.criuMs))}   dd + fdatasync  ${ms(med(hand, (s) => s.flushMs))}   frozen ${ms(med(hand, (s) => s.frozenMs))}`,
  );
  console.log(`  dd into the page cache   ${ms(med(hand, (s) => s.cacheMs))}`);
  console.log(`  CRIU service direct      ${ms(med(rpc, (s) => s.criuMs))}   (the job's request without the worker)      frozen ${ms(med(rpc, (s) => s.frozenMs))}`);
  console.log(`  frozen per job dump: ${job.map((s) => s.frozenMs.toFixed(0)).join(', ')} ms; per CLI dump: ${hand.map((s) => s.frozenMs.toFixed(0)).join(', ')} ms`);
  console.log(
    `  ratio job / (CLI + dd): ${(med(job, (s) => s.wallMs) / handTotal).toFixed(2)} (goal <= 1.1); ` +
      `CRIU in the job / CLI: ${(med(job, (s) => s.criuMs) / med(hand, (s) => s.criuMs)).toFixed(2)} (goal <= 1.05); ` +
      `commit / dd: ${(med(job, (s) => s.commitMs) / med(hand, (s) => s.flushMs)).toFixed(2)}`,
  );
  const size = `${sizeMiB} MiB`;
  const jobMs = med(job, (s) => s.wallMs);
  record('big-dump', { name: `dump job enqueue -> completed, ${size}`, value: jobMs, unit: 'ms', baseline: { name: 'criu dump CLI + dd fdatasync', value: handTotal }, goal: { atMost: 1.1 } });
  record('big-dump', { name: `CRIU inside the job, ${size}`, value: med(job, (s) => s.criuMs), unit: 'ms', baseline: { name: 'criu dump CLI', value: med(hand, (s) => s.criuMs) }, goal: { atMost: 1.05 } });
  record('big-dump', { name: `commit inside the job, ${size}`, value: med(job, (s) => s.commitMs), unit: 'ms', baseline: { name: 'dd fdatasync', value: med(hand, (s) => s.flushMs) } });
  record('big-dump', { name: `frozen time per job dump, ${size}`, value: med(job, (s) => s.frozenMs), unit: 'ms', baseline: { name: 'criu dump CLI', value: med(hand, (s) => s.frozenMs) } });
  const mbps = (bytes: number, msTaken: number) => bytes / 1e6 / (msTaken / 1000);
  const bytes = med(job, (s) => s.bytes);
  record('big-dump', { name: `dump job throughput, ${size}`, value: mbps(bytes, jobMs), unit: 'MB/s', baseline: { name: 'dd fdatasync', value: mbps(bytes, med(hand, (s) => s.flushMs)) } });
  record('big-dump', { name: `dump job throughput vs the page cache, ${size}`, value: mbps(bytes, jobMs), unit: 'MB/s', baseline: { name: 'dd into the page cache', value: mbps(bytes, med(hand, (s) => s.cacheMs)) } });

  if (levels.length) {
    const runs: Record<string, () => Promise<Sample>> = {};
    for (const level of levels) {
      runs[`job ${level}`] = () => viaQueue(level);
      runs[`cli ${level}`] = () => byHand(level, false);
    }
    const byLevel = await interleaved(runs);
    console.log(`frozen time and time by CRIU log level (${sizeMiB} MiB):`);
    console.log(`  level  ${'frozen job'.padStart(11)}${'frozen CLI'.padStart(11)}${'CRIU in job'.padStart(12)}${'CLI'.padStart(9)}${'job'.padStart(9)}`);
    for (const level of levels) {
      const [j, c] = [byLevel[`job ${level}`]!, byLevel[`cli ${level}`]!];
      console.log(
        `  ${String(level).padEnd(5)}  ${ms(med(j, (s) => s.frozenMs)).padStart(11)}${ms(med(c, (s) => s.frozenMs)).padStart(11)}` +
          `${ms(med(j, (s) => s.criuMs)).padStart(12)}${ms(med(c, (s) => s.criuMs))}${ms(med(j, (s) => s.wallMs))}`,
      );
    }
  }

  // The check before a restore, on one checkpoint: from the page cache (just written), then with the checkpoint's
  // pages dropped from the cache (dd iflag=nocache: this checkpoint's files only), against sha256sum of the same files.
  const { checkpointId } = await viaQueue(defaultLevel, { keep: true });
  const manifest = await catalog.get(checkpointId);
  const dir = store.pathOf(manifest);
  const files = Object.keys(manifest.files).map((name) => path.join(dir, name));
  const dropCache = () => Promise.all(files.map((f) => exec('dd', [`if=${f}`, 'iflag=nocache', 'count=0', 'status=none'])));
  const check = async () => {
    const problems = await store.verify(manifest);
    if (problems.length) throw new Error(`a fresh checkpoint failed its check: ${problems.join('; ')}`);
  };
  const hot = { verify: await timed(check), sha256sum: await timed(() => exec('sha256sum', files)) };
  await dropCache();
  const coldVerify = await timed(check);
  await dropCache();
  const coldSum = await timed(() => exec('sha256sum', files));
  await killAndReap(target.pid); // its folder stays: the restored process writes its count there again
  await dropCache();
  const restoreMs = await timed(async () => waitFinished(new Set([(await queue.enqueueRestore({ checkpointId })).jobId])));
  console.log(
    `check before a restore (${(manifest.bytes / 2 ** 20).toFixed(0)} MiB: sizes and SHA-256 of ${files.length} files; ` +
      `its dump.log at level ${defaultLevel}: ${((manifest.files['dump.log'] ?? 0) / 1024).toFixed(0)} KiB):`,
  );
  console.log(`  from the page cache ${ms(hot.verify)} (sha256sum ${ms(hot.sha256sum).trim()}); from the disk ${ms(coldVerify)} (sha256sum ${ms(coldSum).trim()})`);
  console.log(`  restore job from the disk, check included: ${ms(restoreMs).trim()}; the check's share: ${((coldVerify / restoreMs) * 100).toFixed(0)} %`);
  console.log('(a loaded, shared machine: compare the ratios and the columns of one run, not absolute times across runs)');
} finally {
  await target.kill();
  await harness.close();
}
