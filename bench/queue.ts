// Benchmark: what the job queue costs on top of CRIU.
//
//   node --import tsx bench/queue.ts [--rounds N] [--ballast MiB,MiB...] [--jobs N] [--targets N] [--log-levels 4,0]
//                                    [--no-sync] [--quick]
//
// 1. Latency: the same target dumped N times through the queue (enqueue -> job.completed seen on the event stream;
//    the worker also commits the checkpoint: files flushed to disk (storage.sync), manifest, rename, catalog) and
//    N times with CriuClient directly (the same CRIU request, then its stats read), interleaved (order alternating
//    each round) after one warm-up of each. Medians, and the ratio queue/direct against two baselines: the bare
//    dump, and the dump whose files are then flushed to disk as the store does (the same durability; with
//    --no-sync the store does not flush, and only the bare baseline is shown).
// 2. Throughput: `--jobs` small dump jobs over `--targets` small processes, worker concurrency 2, against the same
//    dumps made directly with CriuClient two at a time. Jobs per second and the ratio.
// 3. Where one small job's time goes: its events' times from enqueue on (each stage is an event), and the Redis
//    commands the whole path sent (INFO commandstats before and after; the bench's own event follower included).
// Parts 1 and 2 run once per CRIU log level of --log-levels (default: the configured one), the queued jobs and the
// direct dumps at the same level: what CRIU's log costs the worker (every line read and counted in job.log events; its
// warning and error lines and its last worker.logTailLines lines into the job's log; the whole stays in dump.log).
// Everything runs on a private Redis and CRIU service; checkpoints are removed as it goes.
import { mkdtemp, open, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { readDumpStats } from '../src/criu/index.js';
import { startCounter, type Counter } from '../test/helpers/targets.js';
import { startBenchService } from './lib/bench-service.js';
import { fmtMs, median } from './lib/figures.js';
import { record } from './lib/report.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string' },
    ballast: { type: 'string' },
    jobs: { type: 'string' },
    targets: { type: 'string', default: '4' },
    'log-levels': { type: 'string' },
    'no-sync': { type: 'boolean', default: false },
    quick: { type: 'boolean', default: false },
  },
});
const sync = !values['no-sync'];
const rounds = Number(values.rounds ?? (values.quick ? 6 : 20));
const ballasts = (values.ballast ?? (values.quick ? '0' : '0,64')).split(',').map(Number);
const jobCount = Number(values.jobs ?? (values.quick ? 40 : 200));
const targetCount = Number(values.targets);
if (!(rounds >= 1 && jobCount >= 1 && targetCount >= 1 && ballasts.every((b) => b >= 0))) {
  throw new Error('usage: queue.ts [--rounds N>=1] [--ballast MiB,...] [--jobs N] [--targets N]');
}

const bench = await startBenchService('queue', { storage: { sync }, worker: { concurrency: 2 } });
const { criuBin, config, catalog, queue, client, redis, eventLog } = bench;
const root = bench.config.storage.root;
const logLevels = (values['log-levels'] ?? String(config.criu.logLevel)).split(',').map(Number);
if (!logLevels.every((l) => Number.isInteger(l) && l >= 0 && l <= 4)) throw new Error('--log-levels: CRIU log levels 0-4');
const counters: Counter[] = [];

const waitFinished = (ids: Set<string>) => bench.jobs.finished(ids);

/** CRIU's part of each queued dump (the job's durationMs: the dump request inside the worker). */
const criuInWorker: number[] = [];

async function viaQueue(pid: number, logLevel: number): Promise<number> {
  const started = process.hrtime.bigint();
  const { jobId } = await queue.enqueueDump({ target: { pid }, criu: { logLevel } });
  const done = await waitFinished(new Set([jobId]));
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  const result = done.get(jobId)!.data.result as { checkpointId: string; durationMs: number };
  criuInWorker.push(result.durationMs);
  await catalog.delete(result.checkpointId);
  return ms;
}

async function viaClient(pid: number, options: { flush: boolean; logLevel: number }): Promise<number> {
  const dir = await mkdtemp(path.join(root, 'direct-'));
  try {
    const started = process.hrtime.bigint();
    // The options the worker gives CRIU for a plain dump (no TCP connections kept, so no network lock).
    await client.dump({ pid, imagesDir: dir, leaveRunning: true, logLevel: options.logLevel, logFile: 'dump.log' });
    await readDumpStats(dir);
    if (options.flush) await flushFiles(dir);
    return Number(process.hrtime.bigint() - started) / 1e6;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** What a careful script does after a dump it wants to survive a power loss: flush each file, then the folder. */
async function flushFiles(dir: string): Promise<void> {
  const flush = async (file: string) => {
    const handle = await open(file, 'r');
    await handle.datasync().finally(() => handle.close());
  };
  await Promise.all((await readdir(dir)).map((name) => flush(path.join(dir, name))));
  await flush(dir);
}

const fmt = (ms: number) => fmtMs(ms);
const cpuMs = (u: NodeJS.CpuUsage) => (u.user + u.system) / 1000;

/** Calls per Redis command so far (INFO commandstats). */
async function commandCounts(): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (const m of (await redis.info('commandstats')).matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) counts.set(m[1]!, Number(m[2]));
  return counts;
}

/** Bytes Redis has received from all its clients so far. */
async function bytesIntoRedis(): Promise<number> {
  return Number(/^total_net_input_bytes:(\d+)/m.exec(await redis.info('stats'))?.[1]);
}

/**
 * One small dump job: the time of each of its events after enqueue, the Redis commands its whole path sent, the
 * bytes they carried and what its job log holds in Redis.
 */
async function traceOne(pid: number, logLevel: number): Promise<void> {
  const fromId = await eventLog.lastId();
  const before = await commandCounts();
  const bytesBefore = await bytesIntoRedis();
  // Every command Redis ran meanwhile, with Redis' own clock: which connection sent what, and when.
  const monitor = await redis.monitor();
  monitor.on('error', () => undefined);
  const sent: { at: number; source: string; args: string[] }[] = [];
  monitor.on('monitor', (time: string, args: string[], source: string) => sent.push({ at: Number(time) * 1000, source, args }));
  const started = Date.now();
  const { jobId } = await queue.enqueueDump({ target: { pid }, criu: { logLevel } });
  const done = await waitFinished(new Set([jobId]));
  monitor.disconnect();
  const after = await commandCounts();
  const bytesSent = (await bytesIntoRedis()) - bytesBefore;
  const [logKey] = await redis.keys(`*:${jobId}:logs`);
  const logBytes = logKey ? Number(await redis.memory('USAGE', logKey)) : 0;
  const result = done.get(jobId)!.data.result as { checkpointId: string; durationMs: number; commitMs?: number };
  const events = (await eventLog.readAfter(fromId)).filter((e) => e.jobId === jobId || e.data.checkpointId === result.checkpointId);
  console.log(`one job's path at log level ${logLevel} (ms after enqueue; CRIU ${result.durationMs} ms, commit ${result.commitMs ?? '?'} ms):`);
  for (const e of events) {
    const stage = typeof e.data.stage === 'string' ? ` ${e.data.stage}` : '';
    console.log(`  ${String(e.ts - started).padStart(5)}  ${e.event}${stage}`);
  }
  const counts = [...after].map(([cmd, n]) => [cmd, n - (before.get(cmd) ?? 0)] as const).filter(([cmd, n]) => n > 0 && cmd !== 'info');
  counts.sort((a, b) => b[1] - a[1]);
  const total = counts.reduce((sum, [, n]) => sum + n, 0);
  console.log(`  Redis commands for the job: ${total} (${counts.map(([cmd, n]) => `${cmd} ${n}`).join(', ')})`);
  record('queue', { name: `Redis commands per small dump job (incl. the follower), log level ${logLevel}`, value: total, unit: 'commands' });
  console.log(`  bytes sent to Redis during the job: ${(bytesSent / 1024).toFixed(1)} KiB; its job log in Redis: ${(logBytes / 1024).toFixed(1)} KiB`);
  record('queue', { name: `bytes sent to Redis per small dump job, log level ${logLevel}`, value: bytesSent, unit: 'bytes' });
  record('queue', { name: `job log in Redis per small dump job, log level ${logLevel}`, value: logBytes, unit: 'bytes' });
  // Round trips: commands a client sent (a script's inner calls are not), the bench's own reads and BullMQ's blocking
  // wait for the next job left out. All of the job's, and those from CRIU's last stage to job.completed.
  const ownTrips = sent.filter((c) => c.source !== 'lua' && !['xread', 'bzpopmin', 'monitor', 'info'].includes(c.args[0]!.toLowerCase()));
  console.log(`  round trips of the job: ${ownTrips.length}`);
  record('queue', { name: `Redis round trips per small dump job, log level ${logLevel}`, value: ownTrips.length, unit: 'round trips' });
  const postDump = events.find((e) => e.data.stage === 'post-dump')?.ts ?? started;
  const trips = ownTrips.filter((c) => c.at >= postDump - 1);
  console.log(`  round trips after CRIU's post-dump stage (${trips.length}; ms after enqueue, connection port, command):`);
  for (const c of trips) console.log(`  ${(c.at - started).toFixed(1).padStart(7)}  ${c.source.split(':').pop()}  ${describe(c.args)}`);
  record('queue', { name: `Redis round trips from CRIU's post-dump stage to completed, log level ${logLevel}`, value: trips.length, unit: 'round trips' });
  await catalog.delete(result.checkpointId);
}

/** A command for the trace: a script by what it does (its first call), else the command and its key. */
function describe(args: string[]): string {
  const [cmd, first, , key] = args;
  if (cmd === 'eval') return `eval ${/redis\.call\('(\w+)', KEYS\[\d\]/.exec(first ?? '')?.[1] ?? ''}… ${key ?? ''}`;
  return args.slice(0, cmd === 'evalsha' ? 4 : 2).map((a) => (a.length > 48 ? `${a.slice(0, 48)}…` : a)).join(' ');
}

const baselines = sync ? (['direct', 'durable'] as const) : (['direct'] as const);

/** Part 1 for one target and log level: medians of interleaved rounds, printed as one table row. */
async function latency(target: Counter, ballast: number, logLevel: number): Promise<void> {
  await viaQueue(target.pid, logLevel);
  await viaClient(target.pid, { flush: sync, logLevel });
  const samples: Record<'queue' | (typeof baselines)[number], number[]> = { queue: [], direct: [], durable: [] };
  criuInWorker.length = 0;
  for (let i = 0; i < rounds; i++) {
    const all = ['queue', ...baselines] as const;
    // Each round in another order, so none always runs right after another.
    for (let k = 0; k < all.length; k++) {
      const which = all[(i + k) % all.length]!;
      const ms =
        which === 'queue' ? await viaQueue(target.pid, logLevel) : await viaClient(target.pid, { flush: which === 'durable', logLevel });
      samples[which].push(ms);
    }
  }
  const [q, d, f] = [median(samples.queue), median(samples.direct), median(samples.durable)];
  console.log(
    `${`${ballast} MiB`.padEnd(8)}${String(logLevel).padStart(5)}${fmt(q)}${fmt(d)}` +
      (sync ? `${fmt(f)}${fmt(q - f)}` : '') +
      `${fmt(q - d)}${fmt(median(criuInWorker))}  ${(q / d).toFixed(3)}` +
      (sync ? `, ${(q / f).toFixed(3)}` : ''),
  );
  const [baseline, baselineMs] = sync ? ['dump + flush, direct', f] : ['dump, direct', d];
  const at = `${ballast} MiB process, log level ${logLevel}`;
  record('queue', { name: `job overhead, ${at} (median)`, value: q - baselineMs, unit: 'ms', goal: { atMost: 5 } });
  record('queue', { name: `dump job enqueue -> completed, ${at}`, value: q, unit: 'ms', baseline: { name: baseline, value: baselineMs } });
}

/** Part 2 at one log level: the jobs, then the same dumps direct; rate and CPU of this process per job. */
async function throughput(pids: number[], logLevel: number): Promise<void> {
  let cpu = process.cpuUsage();
  let started = process.hrtime.bigint();
  const ids = new Set<string>();
  for (const pid of pids) ids.add((await queue.enqueueDump({ target: { pid }, criu: { logLevel } })).jobId);
  const done = await waitFinished(ids);
  const queueSec = Number(process.hrtime.bigint() - started) / 1e9;
  const queueCpuMs = cpuMs(process.cpuUsage(cpu)) / jobCount;
  for (const e of done.values()) await catalog.delete((e.data.result as { checkpointId: string }).checkpointId);

  // Baseline: the same dumps, two at a time, each loop taking the next pid (no two loops on one target at once
  // when targets >= 2, as the queue's per-target lock ensures).
  cpu = process.cpuUsage();
  started = process.hrtime.bigint();
  let next = 0;
  const loop = async () => {
    while (next < pids.length) await viaClient(pids[next++]!, { flush: sync, logLevel });
  };
  await Promise.all([loop(), loop()]);
  const directSec = Number(process.hrtime.bigint() - started) / 1e9;
  const directCpuMs = cpuMs(process.cpuUsage(cpu)) / jobCount;
  console.log(
    `throughput, log level ${logLevel}: ${jobCount} dump jobs over ${targetCount} small processes, concurrency 2: ` +
      `queue ${(jobCount / queueSec).toFixed(1)} jobs/s (${queueSec.toFixed(1)} s), ` +
      `direct${sync ? '+flush' : ''} ${(jobCount / directSec).toFixed(1)} dumps/s (${directSec.toFixed(1)} s), ` +
      `ratio queue/direct ${(directSec / queueSec).toFixed(3)}`,
  );
  record('queue', {
    name: `${jobCount} small dump jobs at concurrency 2, log level ${logLevel}`,
    value: jobCount / queueSec,
    unit: 'jobs/s',
    baseline: { name: `the same dumps direct${sync ? ' + flush' : ''}, 2 at a time`, value: jobCount / directSec },
    goal: { atLeast: 0.95 },
  });
  console.log(
    `  CPU of this process (worker, queue, event follower; CRIU's own is not in it) per job: ${queueCpuMs.toFixed(1)} ms; ` +
      `per direct dump${sync ? ' + flush' : ''}: ${directCpuMs.toFixed(1)} ms (load average ${os.loadavg()[0]!.toFixed(1)})`,
  );
  record('queue', {
    name: `CPU of the worker process per small dump job, log level ${logLevel}`,
    value: queueCpuMs,
    unit: 'ms',
    baseline: { name: `CPU of the direct client per dump${sync ? ' + flush' : ''}`, value: directCpuMs },
  });
}

try {
  console.log(`queue: CRIU ${criuBin.version}, log levels ${logLevels.join(', ')}, ${rounds} interleaved rounds after 1 warm-up each`);
  console.log(
    `${'target'.padEnd(8)}${'level'.padStart(5)}${'queue'.padStart(10)}${'direct'.padStart(10)}` +
      (sync ? `${'direct+'.padStart(10)}${'overhead'.padStart(10)}` : '') +
      `${'overhead'.padStart(10)}${'CRIU in'.padStart(10)}  ratio queue/direct` +
      (sync ? ', queue/(direct+flush)' : '') + ' (medians)',
  );
  console.log(
    `${''.padEnd(33)}` + (sync ? `${'flush'.padStart(10)}${'vs flush'.padStart(10)}` : '') + `${'vs bare'.padStart(10)}${'worker'.padStart(10)}`,
  );
  for (const ballast of ballasts) {
    const target = await startCounter(ballast);
    counters.push(target);
    for (const level of logLevels) await latency(target, ballast, level);
  }

  const small = await Promise.all(Array.from({ length: targetCount }, () => startCounter(0)));
  counters.push(...small);
  const pids = Array.from({ length: jobCount }, (_, i) => small[i % small.length]!.pid);
  for (const level of logLevels) await throughput(pids, level);
  for (const level of logLevels) await traceOne(small[0]!.pid, level);
} finally {
  await Promise.all(counters.map((c) => c.kill()));
  await bench.close();
}
