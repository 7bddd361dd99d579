/**
 * Scheduler benchmark: 10,000 schedules, each every minute at its own second (`<i % 60> * * * * *`, so ~167 ticks a
 * second), run by 2 scheduler processes on one Redis for 3 minutes, enqueueing into the real JobQueue (no worker:
 * jobs stay waiting; a worker resolves a job's target when it runs it, the scheduler never does).
 *
 * Measures over the ticks of the measured window: tick -> enqueued latency (lagMs of schedule.fired: from the tick's
 * instant until its job was enqueued) p50 / p99, each scheduler's RSS (max over the run), duplicates (ticks with more
 * than one schedule.fired or job; must be 0) and missed ticks (expected ticks without a job; must be 0).
 * Baseline in the same run, against the same Redis while the schedulers run: a plain BullMQ Queue.add round trip, a
 * raw SET NX round trip (what the cheapest possible "enqueue once" would cost), and every 5 s a burst of one second's
 * worth of Queue.add calls at once (ticks come in such bursts: all schedules of a second fire together).
 *
 * Figures are recorded for `npm run bench` (bench/lib/report.ts); the goals (p99 <= 200 ms, RSS <= 120 MiB, no tick
 * missed or doubled) hold for 10,000 schedules.
 *
 * Each scheduler also reports its V8 heap every second (used, total) next to its RSS: what of the RSS is live data, what
 * is V8's reserve and garbage not yet collected, and what is the process itself.
 *
 * Run: node --import tsx bench/scheduler.ts [--minutes 3] [--schedules 10000] [--processes 2] [--quick]
 * (--quick: 2,000 schedules for 6 s, under ~20 s in all; --schedules 50000 for the large case).
 * BENCH_SCHEDULER_NODE_OPTIONS="--max-semi-space-size=4": Node flags for the scheduler processes, instead of those
 * `ckpt up` is started with (src/app/node-flags.ts; "" for none); BENCH_HEAP_GROWTH_PERCENT=N: their
 * scheduler.heapGrowthPercent (0: V8's own growth; default: the config's, as `ckpt up` applies it);
 * BENCH_HEAP_SNAPSHOTS=DIR: the first scheduler writes a heap snapshot when armed and at the window's end
 * (each snapshot costs the process its size in RSS: the RSS figures of such a run are not comparable).
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import v8 from 'node:v8';
import os from 'node:os';
import { constants as perfConstants, performance, PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { destination, pino } from 'pino';
import { SERVICE_NODE_FLAGS } from '../src/app/node-flags.js';
import { configSchema, type Config } from '../src/config/schema.js';
import { EventLog } from '../src/events/event-log.js';
import type { FeedEvent } from '../src/events/types.js';
import { JobQueue } from '../src/queue/job-queue.js';
import { queueNameFor } from '../src/queue/keys.js';
import { ScheduleStore } from '../src/scheduler/schedule-store.js';
import { limitHeapGrowth } from '../src/scheduler/heap-growth.js';
import { Scheduler } from '../src/scheduler/scheduler.js';
import { scheduleSchema } from '../src/scheduler/schema.js';
import { TestRedis } from '../test/helpers/redis.js';
import { record } from './lib/report.js';
import { throwawaySigner } from '../test/helpers/signer.js';

const { values: args } = parseArgs({
  options: {
    minutes: { type: 'string', default: '3' },
    schedules: { type: 'string' },
    processes: { type: 'string', default: '2' },
    quick: { type: 'boolean', default: false },
    child: { type: 'boolean', default: false },
  },
});
const MINUTES = args.quick ? 6 / 60 : Number(args.minutes);
const SCHEDULES = Number(args.schedules ?? (args.quick ? 2000 : 10_000));
const PROCESSES = Number(args.processes);
const PREFIX = 'bench';
const NODE = 'bench-node';

function benchConfig(redisUrl: string): Config {
  return configSchema.parse({
    node: NODE,
    redis: { url: redisUrl, prefix: PREFIX },
    events: { maxLen: 10_000_000 },
    worker: { keepCompleted: 10, keepFailed: 10 },
  });
}

/** A scheduler replica (this file run with --child): starts, says "ready", stops on SIGTERM. */
async function child(): Promise<void> {
  const config = benchConfig(process.env.BENCH_REDIS_URL!);
  const redis = new Redis(config.redis.url, { maxRetriesPerRequest: null });
  const eventLog = new EventLog(redis, { key: `${PREFIX}:events`, maxLen: config.events.maxLen });
  const jobs = new JobQueue({ connection: config.redis.url, prefix: PREFIX, node: NODE, eventLog, defaults: config.worker, signer: throwawaySigner() });
  const store = new ScheduleStore(redis, PREFIX);
  const scheduler = new Scheduler({ redis, store, enqueuer: jobs, eventLog, config, logger: pino({ level: 'warn' }, destination(2)) });
  // As a process with the scheduler role does (startSchedulerService); BENCH_HEAP_GROWTH_PERCENT overrides the config's.
  limitHeapGrowth(Number(process.env.BENCH_HEAP_GROWTH_PERCENT ?? config.scheduler.heapGrowthPercent));
  await scheduler.start();
  process.send!({ ready: scheduler.armedIds().length });
  // Garbage collections so far, by kind, and the time they paused the process: per tick, a figure the load changes little.
  const gc = { minor: 0, major: 0, pauseMs: 0 };
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const kind = (entry as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind;
      if (kind === perfConstants.NODE_PERFORMANCE_GC_MINOR) gc.minor++;
      else if (kind === perfConstants.NODE_PERFORMANCE_GC_MAJOR) gc.major++;
      gc.pauseMs += entry.duration;
    }
  }).observe({ entryTypes: ['gc'] });
  const reportMemory = () => {
    const { heapUsed, heapTotal } = process.memoryUsage();
    // The young generation (new space and its large objects): what V8's semi-space growth adds to the heap's total.
    const young = v8
      .getHeapSpaceStatistics()
      .filter((s) => s.space_name === 'new_space' || s.space_name === 'new_large_object_space')
      .reduce((sum, s) => sum + s.space_size, 0);
    process.send!({ memory: { heapUsed, heapTotal, young }, gc });
  };
  setInterval(reportMemory, 1000);
  process.on('message', (m: { snapshot?: string }) => {
    if (m.snapshot) process.send!({ snapshotWritten: v8.writeHeapSnapshot(m.snapshot) });
  });
  process.once('SIGTERM', () => {
    void (async () => {
      await scheduler.stop();
      await jobs.close();
      redis.disconnect();
      process.exit(0);
    })();
  });
}

interface GcCounts {
  minor: number;
  major: number;
  pauseMs: number;
}

/** A scheduler process's heap as it reported it every second; its garbage collections within the measured window. */
interface HeapFigures {
  usedMax: number;
  totalMax: number;
  youngMax: number;
  usedMaxBeforeWindow: number;
  gcAtStart?: GcCounts;
  gcLast?: GcCounts;
}

function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(sorted.length * p) - 1))]!;
}

/** CPU time (user + system, ms) a process has used so far. */
function cpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // utime + stime, in clock ticks of 1/100 s
  } catch {
    return 0;
  }
}

function rssMiB(pid: number): number {
  try {
    const kb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
    return kb / 1024;
  } catch {
    return 0;
  }
}

async function readAll(eventLog: EventLog): Promise<FeedEvent[]> {
  const out: FeedEvent[] = [];
  let after = '0';
  for (;;) {
    const batch = await eventLog.readAfter(after, 10_000);
    out.push(...batch);
    if (batch.length < 10_000) return out;
    after = batch[batch.length - 1]!.id;
  }
}

async function main(): Promise<void> {
  const server = await TestRedis.start();
  const target = spawn('sleep', ['1000000'], { detached: true, stdio: 'ignore' });
  target.unref();
  const children: ChildProcess[] = [];
  try {
    const redis = new Redis(server.url);
    const store = new ScheduleStore(redis, PREFIX);
    const eventLog = new EventLog(redis, { key: `${PREFIX}:events` });
    const t0 = performance.now();
    for (let i = 0; i < SCHEDULES; i += 500) {
      await Promise.all(
        Array.from({ length: Math.min(500, SCHEDULES - i) }, (_, k) =>
          store.create(
            scheduleSchema.parse({
              id: `s${i + k}`,
              cron: `${(i + k) % 60} * * * * *`,
              target: { pid: target.pid },
              overlap: 'queue',
              missed: 'skip',
            }),
          ),
        ),
      );
    }
    console.log(`created ${SCHEDULES} schedules in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

    const self = fileURLToPath(import.meta.url);
    const readyAt: number[] = [];
    const heapOf = new Map<number, HeapFigures>();
    let windowStart = 0;
    let windowEnd = 0;
    // By default the flags `ckpt up` is started with (the service unit, the image, npm start).
    const schedulerNodeOptions = (process.env.BENCH_SCHEDULER_NODE_OPTIONS ?? SERVICE_NODE_FLAGS.join(' ')).split(' ').filter(Boolean);
    if (schedulerNodeOptions.length) console.log(`scheduler processes run with ${schedulerNodeOptions.join(' ')}`);
    for (let p = 0; p < PROCESSES; p++) {
      const c = fork(self, ['--child'], {
        env: { ...process.env, BENCH_REDIS_URL: server.url },
        execArgv: [...process.execArgv, ...schedulerNodeOptions],
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      });
      children.push(c);
      const heap: HeapFigures = { usedMax: 0, totalMax: 0, youngMax: 0, usedMaxBeforeWindow: 0 };
      heapOf.set(c.pid!, heap);
      c.on('message', (m: { memory?: { heapUsed: number; heapTotal: number; young: number }; gc?: GcCounts }) => {
        if (!m.memory) return;
        if (windowStart && Date.now() >= windowStart && Date.now() <= windowEnd) {
          heap.gcAtStart ??= m.gc;
          heap.gcLast = m.gc;
        }
        const used = m.memory.heapUsed / 2 ** 20;
        if (!windowStart || Date.now() < windowStart) heap.usedMaxBeforeWindow = Math.max(heap.usedMaxBeforeWindow, used);
        heap.usedMax = Math.max(heap.usedMax, used);
        heap.totalMax = Math.max(heap.totalMax, m.memory.heapTotal / 2 ** 20);
        heap.youngMax = Math.max(heap.youngMax, m.memory.young / 2 ** 20);
      });
    }
    await Promise.all(
      children.map(
        (c) =>
          new Promise<void>((resolve, reject) => {
            c.once('message', (m: { ready: number }) => {
              readyAt.push(Date.now());
              console.log(`scheduler pid ${c.pid}: ${m.ready} schedules armed`);
              resolve();
            });
            c.once('exit', (code) => reject(new Error(`scheduler exited (${code}) before ready`)));
          }),
      ),
    );

    const snapshotDir = process.env.BENCH_HEAP_SNAPSHOTS;
    const snapshot = (name: string) =>
      new Promise<void>((resolve) => {
        const onMessage = (m: { snapshotWritten?: string }) => {
          if (!m.snapshotWritten) return;
          children[0]!.off('message', onMessage);
          console.log(`heap snapshot: ${m.snapshotWritten}`);
          resolve();
        };
        children[0]!.on('message', onMessage);
        children[0]!.send({ snapshot: path.resolve(snapshotDir!, `scheduler-${SCHEDULES}-${name}.heapsnapshot`) });
      });
    if (snapshotDir) await snapshot('armed');

    // Measured window: whole seconds, starting once every replica runs.
    windowStart = Math.ceil((Math.max(...readyAt) + 2000) / 1000) * 1000;
    windowEnd = windowStart + MINUTES * 60_000;
    const rss = new Map<number, number[]>(children.map((c) => [c.pid!, []]));
    const redisPid = Number(/process_id:(\d+)/.exec(await redis.info('server'))?.[1]);
    const cpuPids = [...children.map((c) => c.pid!), redisPid];
    const sampleRss = () => {
      for (const c of children) rss.get(c.pid!)!.push(rssMiB(c.pid!));
    };

    // Baseline while the schedulers run: plain Queue.add and SET NX round trips, 20 a second.
    const baselineQueue = new Queue('baseline', { connection: redis, prefix: PREFIX });
    const addMs: number[] = [];
    const setNxMs: number[] = [];
    const rssTimer = setInterval(sampleRss, 1000);
    console.log(`measuring ${MINUTES} min from ${new Date(windowStart).toISOString()}`);
    await sleep(windowStart - Date.now());
    const cpuAtStart = cpuPids.map(cpuMs);
    // And every 5 s a burst of plain Queue.add calls as large as one second's ticks, all at once, as the ticks come.
    const burstMs: number[] = [];
    const burstSize = Math.round(SCHEDULES / 60);
    let n = 0;
    while (Date.now() < windowEnd) {
      if (n % 100 === 0) {
        const start = performance.now();
        await Promise.all(
          Array.from({ length: burstSize }, (_, k) =>
            baselineQueue.add('burst', { n, k }, { jobId: `burst-${n}-${k}` }).then(() => burstMs.push(performance.now() - start)),
          ),
        );
      }
      let t = performance.now();
      await baselineQueue.add('baseline', { n }, { jobId: `baseline-${n}` });
      addMs.push(performance.now() - t);
      t = performance.now();
      await redis.set(`${PREFIX}:baseline:${n}`, '1', 'PX', 600_000, 'NX');
      setNxMs.push(performance.now() - t);
      n++;
      await sleep(50);
    }
    clearInterval(rssTimer);
    sampleRss();
    if (snapshotDir) await snapshot('ticking');
    const cpuInWindow = cpuPids.map((pid, i) => cpuMs(pid) - cpuAtStart[i]!);
    const cpuShare = cpuInWindow.map((ms) => (ms / (windowEnd - windowStart)) * 100);
    // The schedulers' whole CPU time so far (start and arming included), for the cost per tick below.
    const schedulersCpuMs = children.reduce((sum, c) => sum + cpuMs(c.pid!), 0);
    await sleep(3000); // the last ticks of the window finish enqueueing
    await Promise.all(
      children.map((c) => new Promise<void>((resolve) => (c.once('exit', () => resolve()), c.kill('SIGTERM')))),
    );

    // Results.
    const events = await readAll(eventLog);
    const fired = new Map<string, FeedEvent[]>();
    for (const e of events) {
      if (e.event !== 'schedule.fired') continue;
      const key = `${e.scheduleId}:${e.data.tickAt}`;
      fired.set(key, [...(fired.get(key) ?? []), e]);
    }
    const waitingPerJob = new Map<string, number>();
    for (const e of events) if (e.event === 'job.waiting') waitingPerJob.set(e.jobId!, (waitingPerJob.get(e.jobId!) ?? 0) + 1);
    let expected = 0;
    let missed = 0;
    const lags: number[] = [];
    for (let i = 0; i < SCHEDULES; i++) {
      const second = i % 60;
      for (let t = windowStart; t < windowEnd; t += 1000) {
        if (new Date(t).getUTCSeconds() !== second) continue;
        expected++;
        const f = fired.get(`s${i}:${t}`);
        if (!f || !waitingPerJob.has(`sched-s${i}-${t}`)) missed++;
        else lags.push(f[0]!.data.lagMs as number);
      }
    }
    const duplicateFired = [...fired.values()].reduce((sum, list) => sum + list.length - 1, 0);
    const duplicateJobs = [...waitingPerJob.values()].reduce((sum, c) => sum + c - 1, 0);
    const queued = await new Queue(queueNameFor(NODE), { connection: redis, prefix: PREFIX }).getJobCountByTypes('waiting', 'prioritized');
    lags.sort((a, b) => a - b);
    addMs.sort((a, b) => a - b);
    setNxMs.sort((a, b) => a - b);
    burstMs.sort((a, b) => a - b);
    const fmt = (x: number) => x.toFixed(1);
    console.log('');
    console.log(`schedules ${SCHEDULES}, scheduler processes ${PROCESSES}, window ${MINUTES} min`);
    console.log(`ticks expected ${expected}, enqueued ${lags.length}, missed ${missed}, duplicates ${duplicateFired + duplicateJobs} (fired ${duplicateFired}, jobs ${duplicateJobs})`);
    console.log(`jobs waiting in the queue (all ticks, window or not): ${queued}; distinct ticks fired: ${fired.size}`);
    console.log(`tick -> enqueued: p50 ${fmt(percentile(lags, 0.5))} ms, p99 ${fmt(percentile(lags, 0.99))} ms, max ${fmt(lags[lags.length - 1] ?? NaN)} ms`);
    console.log(`baseline Queue.add: p50 ${fmt(percentile(addMs, 0.5))} ms, p99 ${fmt(percentile(addMs, 0.99))} ms (${addMs.length} samples)`);
    console.log(`baseline SET NX: p50 ${fmt(percentile(setNxMs, 0.5))} ms, p99 ${fmt(percentile(setNxMs, 0.99))} ms`);
    console.log(`baseline burst of ${burstSize} Queue.add at once: p50 ${fmt(percentile(burstMs, 0.5))} ms, p99 ${fmt(percentile(burstMs, 0.99))} ms`);
    console.log(
      `ratio tick->enqueued / burst Queue.add: p50 ${(percentile(lags, 0.5) / percentile(burstMs, 0.5)).toFixed(1)}x, p99 ${(percentile(lags, 0.99) / percentile(burstMs, 0.99)).toFixed(1)}x`,
    );
    console.log(
      `ratio tick->enqueued / Queue.add: p50 ${(percentile(lags, 0.5) / percentile(addMs, 0.5)).toFixed(1)}x, p99 ${(percentile(lags, 0.99) / percentile(addMs, 0.99)).toFixed(1)}x`,
    );
    [...rss].forEach(([pid, samples], i) => {
      const heap = heapOf.get(pid)!;
      console.log(
        `scheduler pid ${pid}: RSS max ${fmt(Math.max(...samples))} MiB, last ${fmt(samples[samples.length - 1]!)} MiB; V8 heap used max ${fmt(heap.usedMax)} MiB (before the window ${fmt(heap.usedMaxBeforeWindow)}), heap total max ${fmt(heap.totalMax)} MiB (young generation max ${fmt(heap.youngMax)}); CPU ${fmt(cpuShare[i]!)} % of a core`,
      );
    });
    console.log(`redis-server CPU ${fmt(cpuShare[cpuShare.length - 1]!)} % of a core; machine load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`);
    const schedulerRss = Math.max(...[...rss.values()].map((samples) => Math.max(...samples)));
    const what = `${SCHEDULES} schedules in ${PROCESSES} scheduler processes`;
    const goals = SCHEDULES === 10_000;
    record('scheduler', {
      name: `tick -> enqueued p99, ${what}`,
      value: percentile(lags, 0.99),
      unit: 'ms',
      ...(goals ? { goal: { atMost: 200 } } : {}),
    });
    record('scheduler', {
      name: `tick -> enqueued p50, ${what}`,
      value: percentile(lags, 0.5),
      unit: 'ms',
      baseline: { name: `burst of ${burstSize} Queue.add at once, p50`, value: percentile(burstMs, 0.5) },
    });
    record('scheduler', { name: `scheduler RSS, max per process, ${what}`, value: schedulerRss, unit: 'MiB', ...(goals ? { goal: { atMost: 120 } } : {}) });
    const heaps = [...heapOf.values()];
    record('scheduler', { name: `scheduler V8 heap used, max per process, ${what}`, value: Math.max(...heaps.map((h) => h.usedMax)), unit: 'MiB' });
    record('scheduler', { name: `scheduler V8 heap total, max per process, ${what}`, value: Math.max(...heaps.map((h) => h.totalMax)), unit: 'MiB' });
    record('scheduler', { name: `scheduler CPU, max per process, ${what}`, value: Math.max(...cpuShare.slice(0, -1)), unit: '% of a core' });
    // What a loaded machine does not change much: the schedulers' CPU time per tick they enqueued or skipped, both
    // counted up to the end of the window (start and arming included). Ticks due and CPU share would not do: a
    // scheduler that cannot keep up spends all the CPU it gets, whatever a tick costs.
    const ticksDone = events.filter((e) => (e.event === 'schedule.fired' || e.event === 'schedule.skipped') && e.ts <= windowEnd).length;
    const cpuMsPerTick = schedulersCpuMs / ticksDone;
    console.log(`scheduler CPU per tick handled (all processes, start included): ${cpuMsPerTick.toFixed(2)} ms over ${ticksDone} ticks`);
    record('scheduler', { name: `scheduler CPU time per tick, all processes, ${what}`, value: cpuMsPerTick, unit: 'ms' });
    // The same within the window alone (no start, no arming): what a tick costs once running, also in a short --quick run.
    const ticksInWindow = events.filter(
      (e) => (e.event === 'schedule.fired' || e.event === 'schedule.skipped') && e.ts >= windowStart && e.ts <= windowEnd,
    ).length;
    const windowCpuMsPerTick = cpuInWindow.slice(0, -1).reduce((a, b) => a + b, 0) / ticksInWindow;
    console.log(`scheduler CPU per tick handled within the window (all processes): ${windowCpuMsPerTick.toFixed(2)} ms over ${ticksInWindow} ticks`);
    const gcInWindow = (k: keyof GcCounts) => heaps.reduce((sum, h) => sum + (h.gcLast?.[k] ?? 0) - (h.gcAtStart?.[k] ?? 0), 0);
    const gcPauseMsPerTick = gcInWindow('pauseMs') / ticksInWindow;
    console.log(
      `scheduler garbage collections within the window (all processes): ${gcInWindow('minor')} scavenges, ${gcInWindow('major')} mark-compacts, paused ${fmt(gcInWindow('pauseMs'))} ms (${gcPauseMsPerTick.toFixed(3)} ms per tick)`,
    );
    record('scheduler', { name: `scheduler GC pause per tick in the window, all processes, ${what}`, value: gcPauseMsPerTick, unit: 'ms' });
    record('scheduler', { name: `scheduler CPU time per tick in the window, all processes, ${what}`, value: windowCpuMsPerTick, unit: 'ms' });
    record('scheduler', { name: `ticks missed of ${expected}, ${what}`, value: missed, unit: 'ticks', goal: { atMost: 0 } });
    record('scheduler', { name: `ticks enqueued twice, ${what}`, value: duplicateFired + duplicateJobs, unit: 'ticks', goal: { atMost: 0 } });
    await baselineQueue.close();
    redis.disconnect();
    if (missed || duplicateFired || duplicateJobs) process.exitCode = 1;
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    try {
      process.kill(target.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
    await server.stop();
  }
}

if (args.child) await child();
else await main();
