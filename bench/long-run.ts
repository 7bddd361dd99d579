// Benchmark: a long run of small dump jobs through one worker, watching what must stay bounded.
//
//   node --import tsx bench/long-run.ts [--jobs N] [--window N] [--samples N] [--quick]
//
// --jobs (default 5,000; --quick 100) dump jobs over 4 small processes go through one worker (concurrency 2),
// --window (default 50; --quick 25) at a time; each checkpoint is deleted once its job completed, as retention would. Every --jobs/--samples jobs it samples
// Redis' used memory, this process' RSS (the worker runs in it) and the event stream's length. What must hold: the
// figures of the last quarter are no higher than those of the second quarter by more than noise (the event stream is
// capped by events.maxLen, finished jobs by worker.keepCompleted/keepFailed, both set low enough here to be reached in
// the first quarter; nothing else may grow with the job count), and the rate of the last quarter matches the first.
import { parseArgs } from 'node:util';
import { startCounter, type Counter } from '../test/helpers/targets.js';
import { startBenchService } from './lib/bench-service.js';
import { median, msSince } from './lib/figures.js';
import { record } from './lib/report.js';

const { values } = parseArgs({
  options: {
    jobs: { type: 'string' },
    window: { type: 'string' },
    samples: { type: 'string', default: '20' },
    quick: { type: 'boolean', default: false },
  },
});
const jobCount = Number(values.jobs ?? (values.quick ? 100 : 5000));
const windowSize = Number(values.window ?? (values.quick ? 25 : 50));
const sampleCount = Number(values.samples);
if (!(jobCount >= 4 * windowSize && jobCount >= 40 && windowSize >= 1 && sampleCount >= 4)) {
  throw new Error('usage: long-run.ts [--jobs N >= 4 * window] [--window N>=1] [--samples N>=4]');
}

// Caps small enough that the run reaches them within its first quarter: growth past them would show.
const maxEvents = Math.min(5000, Math.max(100, jobCount * 2));
const keepJobs = Math.max(10, Math.floor(jobCount / 10));
const bench = await startBenchService('long', {
  worker: { concurrency: 2, keepCompleted: keepJobs, keepFailed: keepJobs },
  events: { maxLen: maxEvents },
});
const { redis, queue, catalog, jobs } = bench;

interface Sample {
  jobs: number;
  redisBytes: number;
  rssBytes: number;
  events: number;
  /** Jobs per second over the window before this sample. */
  rate: number;
}

async function sample(done: number, rate: number): Promise<Sample> {
  const info = await redis.info('memory');
  const redisBytes = Number(/used_memory:(\d+)/.exec(info)?.[1] ?? NaN);
  return { jobs: done, redisBytes, rssBytes: process.memoryUsage().rss, events: await redis.xlen('ckpt:events'), rate };
}

const counters: Counter[] = [];
try {
  counters.push(...(await Promise.all(Array.from({ length: 4 }, () => startCounter(0)))));
  const every = Math.max(windowSize, Math.floor(jobCount / sampleCount));
  const samples: Sample[] = [];
  let done = 0;
  let sinceSample = process.hrtime.bigint();
  let doneAtSample = 0;
  console.log(
    `long-run: ${jobCount} small dump jobs, ${windowSize} at a time, one worker at concurrency 2, ` +
      `events.maxLen ${maxEvents}, finished jobs kept ${keepJobs}`,
  );
  console.log(`${'jobs'.padStart(6)}${'jobs/s'.padStart(8)}${'Redis MiB'.padStart(11)}${'RSS MiB'.padStart(9)}${'events'.padStart(8)}`);
  while (done < jobCount) {
    const ids = new Set<string>();
    for (let i = 0; i < windowSize && done + ids.size < jobCount; i++) {
      ids.add((await queue.enqueueDump({ target: { pid: counters[(done + i) % counters.length]!.pid } })).jobId);
    }
    const finished = await jobs.finished(ids);
    for (const e of finished.values()) await catalog.delete((e.data.result as { checkpointId: string }).checkpointId);
    done += ids.size;
    if (done - doneAtSample >= every || done === jobCount) {
      const s = await sample(done, (done - doneAtSample) / (msSince(sinceSample) / 1000));
      samples.push(s);
      const mib = (b: number) => (b / 2 ** 20).toFixed(1);
      console.log(`${String(s.jobs).padStart(6)}${s.rate.toFixed(1).padStart(8)}${mib(s.redisBytes).padStart(11)}${mib(s.rssBytes).padStart(9)}${String(s.events).padStart(8)}`);
      [sinceSample, doneAtSample] = [process.hrtime.bigint(), done];
    }
  }

  // The second quarter (caches warm, caps not yet necessarily reached) against the last quarter.
  const quarter = (q: number) => samples.filter((s) => s.jobs > (q * jobCount) / 4 && s.jobs <= ((q + 1) * jobCount) / 4);
  const [second, last] = [quarter(1), quarter(3)];
  const peak = (xs: Sample[], f: (s: Sample) => number) => Math.max(...xs.map(f));
  const of = (label: string, f: (s: Sample) => number, unit: string, scale = 1) =>
    record('long-run', {
      name: `${label}, peak of the last quarter of ${jobCount} jobs`,
      value: peak(last, f) / scale,
      unit,
      baseline: { name: 'peak of the second quarter', value: peak(second, f) / scale },
      goal: { atMost: 1.25 },
    });
  of('Redis used memory', (s) => s.redisBytes, 'MiB', 2 ** 20);
  of('worker process RSS', (s) => s.rssBytes, 'MiB', 2 ** 20);
  record('long-run', { name: `event stream length after ${jobCount} jobs`, value: samples.at(-1)!.events, unit: 'events', goal: { atMost: maxEvents * 1.2 } });
  record('long-run', {
    name: 'jobs/s, last quarter',
    value: median(last.map((s) => s.rate)),
    unit: 'jobs/s',
    baseline: { name: 'jobs/s, first quarter', value: median(quarter(0).map((s) => s.rate)) },
    goal: { atLeast: 0.8 },
  });
} finally {
  await Promise.all(counters.map((c) => c.kill()));
  await bench.close();
}
