// Benchmark: what a restore job costs on top of CRIU, and copies of one checkpoint side by side.
//
//   node --import tsx bench/restore.ts [--rounds N] [--copies N] [--ballast MiB] [--quick]
//
// 1. Latency: a small workload's checkpoint restored N times through the queue (enqueue -> job.completed on the event
//    stream; the workload record and events written), with `criu restore -d` (the CLI, same log level) and with
//    CriuClient directly, interleaved (order alternating each round). Each restored tree is killed before the next.
//    Medians and the ratios job/CLI (goal <= 1.1) and job/client.
// 2. Copies: `--copies` copies of one `--ballast` MiB workload's checkpoint as one batch at concurrency 1, 2 and 4
//    (each copy in its own pid namespace, with its own output files: linked images, files.img rewritten), against the
//    same number of restores of the same images through CriuClient, as many at a time.
// Everything runs on a private Redis and CRIU service, in a temporary folder.
import { spawn } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { repoRoot } from '../src/common/paths.js';
import type { JobResult } from '../src/queue/job-view.js';
import { isSameProcess, readProcStat } from '../src/common/proc.js';
import { WorkloadRegistry } from '../src/workloads/registry.js';
import { Workloads } from '../src/workloads/workloads.js';
import { startBenchService } from './lib/bench-service.js';
import { fmtMs, median, msSince } from './lib/figures.js';
import { record } from './lib/report.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string' },
    copies: { type: 'string' },
    ballast: { type: 'string' },
    quick: { type: 'boolean', default: false },
  },
});
const rounds = Number(values.rounds ?? (values.quick ? 3 : 10));
const copies = Number(values.copies ?? (values.quick ? 4 : 20));
const ballast = Number(values.ballast ?? (values.quick ? 16 : 64));
if (!(rounds >= 1 && copies >= 1 && ballast >= 0)) throw new Error('usage: restore.ts [--rounds N>=1] [--copies N>=1] [--ballast MiB]');

const bench = await startBenchService('restore', { worker: { concurrency: 4 } });
const { criuBin, config, dir, redis, eventLog, store, catalog, queue, client, jobs } = bench;
const registry = new WorkloadRegistry(redis, 'ckpt');
const workloads = new Workloads({ registry, eventLog, node: config.node, root: config.workloads.root, stopGraceMs: 1000 });
const COUNTER = path.join(repoRoot(), 'test/fixtures/stdout-counter.py');
const logLevel = config.criu.logLevel;

/** Kills restored trees (each the init of its pid namespace: SIGKILL ends the namespace) and waits until they are gone. */
async function killAll(pids: number[]): Promise<void> {
  const procs = await Promise.all(pids.map(async (pid) => ({ pid, startTime: (await readProcStat(pid))?.startTime ?? -1 })));
  for (const { pid } of procs) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
  for (const p of procs) while (await isSameProcess(p)) await sleep(5);
}

/** A workload, dumped and stopped through the queue: its checkpoint id and images folder. */
async function checkpointOf(name: string, mib: number): Promise<{ id: string; dir: string }> {
  await workloads.run({ name, command: ['/usr/bin/python3', COUNTER, String(mib)] });
  await sleep(300 + mib * 10); // its ballast touched
  const { jobId } = await queue.enqueueDump({ target: { workload: name }, leaveRunning: false });
  const done = await jobs.finished(new Set([jobId]));
  const id = (done.get(jobId)!.data.result as JobResult).checkpointId!;
  return { id, dir: store.pathOf(await catalog.get(id)) };
}

async function viaJob(checkpointId: string): Promise<number> {
  const started = process.hrtime.bigint();
  const { jobId } = await queue.enqueueRestore({ checkpointId });
  const done = await jobs.finished(new Set([jobId]));
  const ms = msSince(started);
  await killAll([(done.get(jobId)!.data.result as JobResult).restoredPid!]);
  return ms;
}

async function viaCli(imagesDir: string): Promise<number> {
  const pidFile = path.join(dir, 'cli.pid');
  await rm(pidFile, { force: true }); // criu creates it exclusively
  const started = process.hrtime.bigint();
  await new Promise<void>((resolve, reject) => {
    const child = spawn(criuBin.bin, ['restore', '-D', imagesDir, '-d', `-v${logLevel}`, '-o', 'restore-cli.log', '--pidfile', pidFile], { stdio: 'ignore' });
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`criu restore exited with ${code}`))));
  }).catch(async (err: Error) => {
    const log = await readFile(path.join(imagesDir, 'restore-cli.log'), 'utf8').catch(() => '');
    throw new Error(`${err.message}: ${log.split('\n').filter((l) => l.includes('Error')).join(' | ')}`);
  });
  const ms = msSince(started);
  await killAll([Number(await readFile(pidFile, 'utf8'))]);
  return ms;
}

async function viaClient(imagesDir: string, logFile = 'restore-client.log'): Promise<{ ms: number; pid: number }> {
  const started = process.hrtime.bigint();
  const { pid } = await client.restore({ imagesDir, logLevel, logFile });
  return { ms: msSince(started), pid };
}

try {
  console.log(`restore: CRIU ${criuBin.version}, log level ${logLevel}, ${rounds} interleaved rounds after 1 warm-up each`);
  const small = await checkpointOf('lat', 0);
  const samples = { job: [] as number[], cli: [] as number[], client: [] as number[] };
  const measure = {
    job: () => viaJob(small.id),
    cli: () => viaCli(small.dir),
    client: async () => {
      const { ms, pid } = await viaClient(small.dir);
      await killAll([pid]);
      return ms;
    },
  };
  const order = ['job', 'cli', 'client'] as const;
  for (const which of order) await measure[which]();
  for (let i = 0; i < rounds; i++) {
    for (let k = 0; k < order.length; k++) {
      const which = order[(i + k) % order.length]!;
      samples[which].push(await measure[which]());
    }
  }
  const [j, c, d] = [median(samples.job), median(samples.cli), median(samples.client)];
  console.log(`${'small workload'.padEnd(16)}${'job'.padStart(10)}${'criu CLI'.padStart(10)}${'client'.padStart(10)}  job/CLI  job/client (medians)`);
  console.log(`${''.padEnd(16)}${fmtMs(j)}${fmtMs(c)}${fmtMs(d)}  ${(j / c).toFixed(3)}    ${(j / d).toFixed(3)}`);
  record('restore', { name: 'restore job of a small workload, vs the CLI', value: j, unit: 'ms', baseline: { name: 'criu restore CLI', value: c }, goal: { atMost: 1.1 } });
  record('restore', { name: 'restore job of a small workload, vs CriuClient', value: j, unit: 'ms', baseline: { name: 'CriuClient restore', value: d } });

  const big = await checkpointOf('big', ballast);
  console.log(`\n${copies} copies of a ${ballast} MiB workload's checkpoint: one batch vs the same restores through CriuClient`);
  console.log(`${'concurrency'.padEnd(12)}${'batch'.padStart(12)}${'direct'.padStart(12)}  ratio batch/direct`);
  for (const concurrency of [1, 2, 4]) {
    let started = process.hrtime.bigint();
    const batch = await queue.enqueueBatchRestore({ checkpointIds: [big.id], replicas: { [big.id]: copies }, concurrency });
    const done = await jobs.finished(new Set([batch.batchId]));
    const batchMs = msSince(started);
    const items = (done.get(batch.batchId)!.data.result as JobResult).items ?? [];
    await killAll(items.flatMap((i) => (i.restoredPid ? [i.restoredPid] : [])));
    for (const w of (await registry.list()).items) if (w.name.startsWith('big-')) await workloads.stop(w.name);

    started = process.hrtime.bigint();
    const pids: number[] = [];
    let next = 0;
    const loop = async () => {
      while (next < copies) pids.push((await viaClient(big.dir, `restore-direct-${next++}.log`)).pid);
    };
    await Promise.all(Array.from({ length: concurrency }, loop));
    const directMs = msSince(started);
    await killAll(pids);
    console.log(`${String(concurrency).padEnd(12)}${fmtMs(batchMs, 12)}${fmtMs(directMs, 12)}  ${(batchMs / directMs).toFixed(3)}`);
    record('restore', {
      name: `batch of ${copies} copies (${ballast} MiB), concurrency ${concurrency}`,
      value: batchMs,
      unit: 'ms',
      baseline: { name: `the same restores direct, ${concurrency} at a time`, value: directMs },
    });
  }
} finally {
  for (const w of (await registry.list()).items) await workloads.stop(w.name).catch(() => undefined);
  await bench.close();
}
