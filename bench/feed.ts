/**
 * Feed benchmark: N WebSocket clients subscribed to everything while events for M simulated jobs flow through the event
 * stream (waiting, active, progress steps each followed by a log line, completed), published with EventLog exactly as
 * workers do.
 *
 * Measures, per delivered event: latency = receive time - publish time (the event's `ts`, and a sub-millisecond clock
 * the publisher puts in data.sentAt), events per second (published, and delivered to all clients), and the feed server's
 * RSS. Baseline in the same run: one raw XREAD BLOCK reader of the same stream (what any consumer pays without the feed).
 *
 * Processes: this one (Redis, publisher, report), the feed server, the baseline reader, and client processes (clients
 * split among them), so the server's RSS is its own.
 *
 * Run: node --import tsx bench/feed.ts  (env: BENCH_CLIENTS=1000 BENCH_JOBS=20 BENCH_STEPS=50 BENCH_INTERVAL_MS=100
 * BENCH_CLIENT_PROCS=2; BENCH_SERVER_NODE_OPTIONS="--cpu-prof" profiles the feed server)
 */
import { fork, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import os from 'node:os';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import WebSocket from 'ws';
import { Authenticator } from '../src/security/auth.js';
import { configSchema } from '../src/config/schema.js';
import { compareEventIds, EventLog } from '../src/events/event-log.js';
import type { EventInput, FeedEvent } from '../src/events/types.js';
import { FeedServer } from '../src/feed/server.js';
import { TestRedis } from '../test/helpers/redis.js';

const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 1000);
const JOBS = Number(process.env.BENCH_JOBS ?? 20);
const STEPS = Number(process.env.BENCH_STEPS ?? 50);
const INTERVAL_MS = Number(process.env.BENCH_INTERVAL_MS ?? 100);
const CLIENT_PROCS = Math.min(CLIENTS, Number(process.env.BENCH_CLIENT_PROCS ?? 2));
const STREAM_KEY = 'bench:events';

/** Latencies in 0.1 ms buckets: bounded memory whatever the number of samples. */
class LatencyHistogram {
  counts = new Map<number, number>();
  add(ms: number): void {
    const bucket = Math.max(0, Math.round(ms * 10));
    this.counts.set(bucket, (this.counts.get(bucket) ?? 0) + 1);
  }
  merge(entries: [number, number][]): void {
    for (const [b, n] of entries) this.counts.set(b, (this.counts.get(b) ?? 0) + n);
  }
  get total(): number {
    let n = 0;
    for (const c of this.counts.values()) n += c;
    return n;
  }
  percentile(p: number): number {
    const sorted = [...this.counts].sort((a, b) => a[0] - b[0]);
    const target = Math.ceil(this.total * p);
    let seen = 0;
    for (const [bucket, n] of sorted) {
      seen += n;
      if (seen >= target) return bucket / 10;
    }
    return NaN;
  }
}

interface Measured {
  /** ts-based (ms resolution) and sentAt-based latencies. */
  ts: [number, number][];
  hires: [number, number][];
  received: number;
  firstAt: number;
  lastAt: number;
}

const now = () => performance.timeOrigin + performance.now();
const TS = /"ts":(\d+)/;
const SENT_AT = /"sentAt":([\d.]+)/;
const ID = /"id":"([^"]+)"/;

/** Records one delivered frame; returns its id when it is the end marker. */
function recorder() {
  const ts = new LatencyHistogram();
  const hires = new LatencyHistogram();
  let received = 0;
  let firstAt = 0;
  let lastAt = 0;
  return {
    record(text: string): void {
      const at = now();
      const wall = Date.now();
      received++;
      if (!firstAt) firstAt = at;
      lastAt = at;
      ts.add(wall - Number(TS.exec(text)![1]));
      hires.add(at - Number(SENT_AT.exec(text)![1]));
    },
    result(): Measured {
      return { ts: [...ts.counts], hires: [...hires.counts], received, firstAt, lastAt };
    },
  };
}

// ---- child roles ----

async function runServer(redisUrl: string): Promise<void> {
  const redis = new Redis(redisUrl);
  const config = configSchema.parse({});
  const server = http.createServer((_req, res) => res.writeHead(404).end());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const feed = new FeedServer({
    server,
    eventLog: new EventLog(redis, { key: STREAM_KEY }),
    redis,
    auth: new Authenticator({ host: '127.0.0.1', tokens: [] }),
    options: config.feed,
    snapshot: async () => ({}),
  });
  // Time spent handing each batch to every client (serialize once, filter, write): listeners run in order, so one
  // registered before start() and one after bracket the feed's own.
  let fanOutNs = 0n;
  let fanOutEvents = 0;
  let batchStart = 0n;
  feed.tailer.onEvents(() => (batchStart = process.hrtime.bigint()));
  await feed.start();
  feed.tailer.onEvents((events) => {
    fanOutNs += process.hrtime.bigint() - batchStart;
    fanOutEvents += events.length;
  });
  let peakRss = 0;
  setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 50).unref();
  process.on('message', (m: { cmd: string }) => {
    if (m.cmd === 'rss') process.send!({ rss: process.memoryUsage().rss, peakRss, clients: feed.clientCount, stats: feed.stats(), cpu: process.cpuUsage(), fanOutMs: Number(fanOutNs) / 1e6, fanOutEvents });
    if (m.cmd === 'exit') process.exit(0);
    if (m.cmd === 'resetPeak') peakRss = 0;
  });
  process.send!({ port: (server.address() as AddressInfo).port, rss: process.memoryUsage().rss });
}

/** Connects `count` ws clients; each subscribes to everything and records every event it receives. */
async function runClients(url: string, count: number): Promise<void> {
  const rec = recorder();
  const lastIds: string[] = [];
  let endId = '';
  let finished = 0;
  const finish = () => {
    if (++finished === count) process.send!({ done: rec.result(), cpu: process.cpuUsage() });
  };
  for (let i = 0; i < count; i += 50) {
    await Promise.all(
      Array.from({ length: Math.min(50, count - i) }, (_, k) => {
        const index = i + k;
        lastIds[index] = '';
        return connect(url, (text) => {
          rec.record(text);
          lastIds[index] = ID.exec(text)![1]!;
          if (lastIds[index] === endId) finish();
        });
      }),
    );
  }
  process.on('message', (m: { endId: string }) => {
    endId = m.endId;
    for (const id of lastIds) if (id === endId) finish();
  });
  process.send!({ ready: count });
}

/** Resolves once subscribed; then calls onEvent with the text of every event message. */
function connect(url: string, onEvent: (text: string) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    ws.on('message', (data) => {
      const text = String(data);
      if (text.startsWith('{"type":"event"')) return onEvent(text);
      const m = JSON.parse(text) as { type: string };
      if (m.type === 'hello') ws.send(JSON.stringify({ op: 'subscribe', channels: ['job', 'schedule', 'checkpoint'] }));
      if (m.type === 'subscribed') resolve();
    });
    ws.once('error', reject);
  });
}

async function runBaseline(redisUrl: string): Promise<void> {
  const redis = new Redis(redisUrl);
  const log = new EventLog(redis, { key: STREAM_KEY });
  const rec = recorder();
  let cursor = await log.lastId();
  let endId = '';
  process.on('message', (m: { endId: string }) => (endId = m.endId));
  process.send!({ ready: 1 });
  const finish = () => {
    process.send!({ done: rec.result(), cpu: process.cpuUsage() });
    redis.disconnect();
  };
  for (;;) {
    const res = (await redis.xread('COUNT', 1000, 'BLOCK', 200, 'STREAMS', STREAM_KEY, cursor)) as [string, [string, string[]][]][] | null;
    for (const [id, fields] of res?.[0]?.[1] ?? []) {
      rec.record(fields[1]!);
      cursor = id;
    }
    if (endId && cursor === endId) return finish();
  }
}

// ---- orchestration ----

function child(args: string[], extraExecArgv: string[] = []): ChildProcess {
  return fork(fileURLToPath(import.meta.url), args, { execArgv: [...process.execArgv, ...extraExecArgv], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
}

function nextMessage<T>(c: ChildProcess, key: string): Promise<T> {
  return new Promise((resolve) => {
    const on = (m: Record<string, unknown>) => {
      if (key in m) {
        c.off('message', on);
        resolve(m as T);
      }
    };
    c.on('message', on);
  });
}

async function publishJobs(log: EventLog): Promise<{ published: FeedEvent[]; seconds: number }> {
  const published: FeedEvent[] = [];
  // The data of a real job's events, plus when it was sent (the feed passes data through unread).
  const pub = async (e: EventInput) => published.push(await log.publish({ ...e, data: { ...e.data, sentAt: now() } } as EventInput));
  const started = now();
  await Promise.all(
    Array.from({ length: JOBS }, async (_, j) => {
      const jobId = `bench-${j}`;
      const base = { jobId, jobType: 'dump' as const, target: `pid:${1000 + j}` };
      await sleep((INTERVAL_MS * j) / JOBS); // stagger, like jobs that started at different times
      await pub({ ...base, event: 'job.waiting', data: { node: 'bench' } });
      await pub({ ...base, event: 'job.active', data: { node: 'bench', attempt: 1, workerPid: process.pid } });
      for (let s = 1; s <= STEPS; s++) {
        await sleep(INTERVAL_MS);
        await pub({ ...base, event: 'job.progress', data: { stage: 'dumping', percent: Math.round((100 * s) / STEPS), bytesWritten: s * 4_194_304, bytesExpected: STEPS * 4_194_304 } });
        await pub({ ...base, event: 'job.log', data: { lines: [`(00.${String(s).padStart(6, '0')}) Dumping pages (type: 1 long: ${s} nr: 512)`], dropped: 0 } });
      }
      await pub({ ...base, event: 'job.completed', data: { result: { checkpointId: `cp-${j}`, bytes: STEPS * 4_194_304, durationMs: STEPS * INTERVAL_MS, stats: { frozenTimeUs: 41_000 } }, attemptsMade: 1, node: 'bench' } });
    }),
  );
  return { published, seconds: (now() - started) / 1000 };
}

async function main(): Promise<void> {
  const redisServer = await TestRedis.start();
  const children: ChildProcess[] = [];
  const abort = () => {
    for (const c of children) c.kill('SIGKILL');
    void redisServer.stop().finally(() => process.exit(130));
  };
  process.once('SIGINT', abort).once('SIGTERM', abort);
  try {
    const redis = new Redis(redisServer.url);
    const log = new EventLog(redis, { key: STREAM_KEY });

    const server = child(['server', redisServer.url], (process.env.BENCH_SERVER_NODE_OPTIONS ?? '').split(' ').filter(Boolean));
    children.push(server);
    const { port, rss: idleRss } = await nextMessage<{ port: number; rss: number }>(server, 'port');
    const url = `ws://127.0.0.1:${port}/api/v1/feed`;

    const baseline = child(['baseline', redisServer.url]);
    children.push(baseline);
    await nextMessage(baseline, 'ready');

    const clientProcs: ChildProcess[] = [];
    const connectStarted = now();
    for (let p = 0; p < CLIENT_PROCS; p++) {
      const n = Math.floor(CLIENTS / CLIENT_PROCS) + (p < CLIENTS % CLIENT_PROCS ? 1 : 0);
      const c = child(['clients', url, String(n)]);
      children.push(c);
      clientProcs.push(c);
    }
    await Promise.all(clientProcs.map((c) => nextMessage(c, 'ready')));
    const connectSeconds = (now() - connectStarted) / 1000;
    server.send({ cmd: 'rss' });
    const connected = await nextMessage<{ rss: number; clients: number }>(server, 'rss');
    server.send({ cmd: 'resetPeak' });

    server.send({ cmd: 'rss' });
    const serverCpuBefore = (await nextMessage<{ cpu: NodeJS.CpuUsage }>(server, 'rss')).cpu;
    const done = [...clientProcs, baseline].map((c) => nextMessage<{ done: Measured; cpu: NodeJS.CpuUsage }>(c, 'done'));
    const { published, seconds } = await publishJobs(log);
    const endId = published.map((e) => e.id).sort(compareEventIds).at(-1)!;
    for (const c of [...clientProcs, baseline]) c.send({ endId });
    const results = await Promise.all(done);
    server.send({ cmd: 'rss' });
    const after = await nextMessage<{ rss: number; peakRss: number; stats: unknown; cpu: NodeJS.CpuUsage; fanOutMs: number; fanOutEvents: number }>(server, 'rss');

    const feedTs = new LatencyHistogram();
    const feedHires = new LatencyHistogram();
    let delivered = 0;
    let firstAt = Infinity;
    let lastAt = 0;
    for (const r of results.slice(0, -1)) {
      feedTs.merge(r.done.ts);
      feedHires.merge(r.done.hires);
      delivered += r.done.received;
      firstAt = Math.min(firstAt, r.done.firstAt);
      lastAt = Math.max(lastAt, r.done.lastAt);
    }
    const base = results.at(-1)!.done;
    const baseTs = new LatencyHistogram();
    const baseHires = new LatencyHistogram();
    baseTs.merge(base.ts);
    baseHires.merge(base.hires);

    const mib = (b: number) => `${(b / 1024 / 1024).toFixed(1)} MiB`;
    const f = (n: number) => n.toFixed(1);
    const row = (name: string, feed: LatencyHistogram, baseline: LatencyHistogram) =>
      `  ${name.padEnd(26)} feed p50 ${f(feed.percentile(0.5)).padStart(6)} ms  p99 ${f(feed.percentile(0.99)).padStart(6)} ms | ` +
      `XREAD p50 ${f(baseline.percentile(0.5)).padStart(5)} ms  p99 ${f(baseline.percentile(0.99)).padStart(5)} ms | ` +
      `ratio p50 ${(feed.percentile(0.5) / Math.max(0.1, baseline.percentile(0.5))).toFixed(1)}x  p99 ${(feed.percentile(0.99) / Math.max(0.1, baseline.percentile(0.99))).toFixed(1)}x`;

    console.log(`feed bench: ${CLIENTS} ws clients (${CLIENT_PROCS} client processes), ${JOBS} jobs x ${STEPS} steps every ${INTERVAL_MS} ms`);
    console.log(`  published                  ${published.length} events in ${seconds.toFixed(2)} s = ${f(published.length / seconds)} events/s`);
    console.log(`  delivered                  ${delivered} messages (expected ${published.length * CLIENTS}) in ${((lastAt - firstAt) / 1000).toFixed(2)} s = ${f(delivered / ((lastAt - firstAt) / 1000))} messages/s`);
    console.log('latency (receive - publish):');
    console.log(row('event ts (1 ms resolution)', feedTs, baseTs));
    console.log(row('hi-res clock', feedHires, baseHires));
    console.log(`server RSS: idle ${mib(idleRss)}, ${connected.clients} clients connected ${mib(connected.rss)}, peak during run ${mib(after.peakRss)}, after ${mib(after.rss)}`);
    const cpuS = (u: NodeJS.CpuUsage, from?: NodeJS.CpuUsage) => ((u.user + u.system - (from ? from.user + from.system : 0)) / 1e6).toFixed(1);
    const runSeconds = (lastAt - firstAt) / 1000;
    console.log(
      `CPU seconds during the run (${runSeconds.toFixed(1)} s, ${os.cpus().length} CPUs): feed server ${cpuS(after.cpu, serverCpuBefore)}, ` +
        `client processes ${results.slice(0, -1).map((r) => cpuS(r.cpu)).join(' + ')} (incl. connect)`,
    );
    const serverCpuUs = (after.cpu.user + after.cpu.system - serverCpuBefore.user - serverCpuBefore.system);
    console.log(
      `server: ${(serverCpuUs / delivered).toFixed(2)} us CPU per delivered message; fan-out wall time ` +
        `${(after.fanOutMs / after.fanOutEvents).toFixed(2)} ms per event to ${CLIENTS} clients`,
    );
    console.log(`connect+subscribe ${CLIENTS} clients: ${connectSeconds.toFixed(2)} s; server stats ${JSON.stringify(after.stats)}`);
    if (delivered !== published.length * CLIENTS) process.exitCode = 1;
    redis.disconnect();
    // A clean exit lets the server write a profile when BENCH_SERVER_NODE_OPTIONS=--cpu-prof.
    const exited = new Promise((resolve) => server.once('exit', resolve));
    server.send({ cmd: 'exit' });
    await Promise.race([exited, sleep(5000)]);
  } finally {
    for (const c of children) c.kill('SIGKILL');
    await redisServer.stop();
  }
}

const [role, a, b] = process.argv.slice(2);
if (role === 'server') await runServer(a!);
else if (role === 'clients') await runClients(a!, Number(b));
else if (role === 'baseline') await runBaseline(a!);
else await main();
