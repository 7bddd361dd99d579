/**
 * Feed benchmark: N WebSocket clients subscribed to everything while events for M simulated jobs flow through the event
 * stream (waiting, active, progress steps each followed by a log line, completed), published with EventLog exactly as
 * workers do.
 *
 * The same workload runs once per way of fanning out, each with fresh clients (same number, same client processes):
 * - `bare`: the baseline, what a competent minimal ws broadcaster does (runBareServer): XREAD BLOCK in batches, each
 *   event serialized once as the feed's own `event` message, the same Buffer to every client's `ws.send`, the socket
 *   corked per read. `bare-batched`: the same with each read sent as the feed's `events` frames (the baseline of the
 *   batched ways). `bare-uncorked`: ws' README broadcast, one write per frame and client.
 * - `feed`: the FeedServer, one frame per event (clients subscribe without `batch`); compared with `bare`.
 * - `batched`: clients subscribe with `batch: true` (several events per `events` frame when several are ready).
 * - `coalesce`: as above with coalesceAboveBytes 16 KiB (progress coalesced sooner for a client that falls behind).
 * - `procs`: N feed server processes on the same stream, the clients split among them.
 * Measures, per delivered event: latency = receive time - publish time (CLOCK_MONOTONIC, the same clock in every
 * process), deliveries per second, the CPU of the server and of the client processes while the events flow, the server's
 * peak RSS and the load average; a raw XREAD reader of the same stream runs in every phase too (what any consumer pays
 * without a fan-out). The client processes are the instrument: they scan frames for the timestamps, never parse them.
 *
 * Run: node dist/bench/feed.js [--quick]  (--quick: bare, feed, bare-batched, batched with 10 steps a job; env:
 * BENCH_CLIENTS=1000 (or a list: 250,500,1000) BENCH_WARMUP_STEPS=5 BENCH_JOBS=20 BENCH_STEPS=50 BENCH_INTERVAL_MS=100 BENCH_CLIENT_PROCS=2 BENCH_FEED_PROCS=2
 * BENCH_PHASES=bare,feed,...; BENCH_SERVER_NODE_OPTIONS / BENCH_CLIENT_NODE_OPTIONS="--cpu-prof --cpu-prof-dir=DIR"
 * profile the servers / client processes)
 */
import { fork, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import os from 'node:os';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import WebSocket, { WebSocketServer } from 'ws';
import { Authenticator } from '../src/security/auth.js';
import { configSchema } from '../src/config/schema.js';
import { EventId } from '../src/events/event-id.js';
import { EventLog } from '../src/events/event-log.js';
import type { EventInput, FeedEvent } from '../src/events/types.js';
import { batchFrames, encodeEvent } from '../src/feed/protocol.js';
import { FeedServer } from '../src/feed/server.js';
import { TestRedis } from '../test/helpers/redis.js';
import { record } from './lib/report.js';

const QUICK = process.argv.includes('--quick');
/** One run of every way per number of clients (`BENCH_CLIENTS=250,500,1000`: where the machine runs out). */
const CLIENT_COUNTS = (process.env.BENCH_CLIENTS ?? '1000').split(',').map(Number);
/** The number of clients issue 12's 50 ms goal is set for. */
const GOAL_CLIENTS = 1000;
const JOBS = Number(process.env.BENCH_JOBS ?? 20);
const STEPS = Number(process.env.BENCH_STEPS ?? (QUICK ? 10 : 50));
/** Steps a job published before each way's measured run, so that no way is measured with cold code. */
const WARMUP_STEPS = Number(process.env.BENCH_WARMUP_STEPS ?? 5);
const INTERVAL_MS = Number(process.env.BENCH_INTERVAL_MS ?? 100);
const CLIENT_PROCS = Number(process.env.BENCH_CLIENT_PROCS ?? 2);
const FEED_PROCS = Number(process.env.BENCH_FEED_PROCS ?? 2);
const STREAM_KEY = 'bench:events';

interface Phase {
  name: string;
  server: 'bare' | 'feed';
  procs: number;
  batch: boolean;
  coalesceAboveBytes?: number;
  /** The bare broadcast of the same messages (PHASES key) this way is compared with. */
  baseline?: string;
  /** Bare only: ws' README broadcast, a write per frame and client (the socket not corked). */
  uncorked?: boolean;
}

const PHASES: Record<string, Phase> = {
  bare: { name: 'bare ws, a frame per event', server: 'bare', procs: 1, batch: false },
  'bare-uncorked': { name: 'bare ws, a frame per event, uncorked', server: 'bare', procs: 1, batch: false, uncorked: true, baseline: 'bare' },
  feed: { name: 'feed, a frame per event', server: 'feed', procs: 1, batch: false, baseline: 'bare' },
  'bare-batched': { name: 'bare ws, batched frames', server: 'bare', procs: 1, batch: true },
  batched: { name: 'feed, batched frames', server: 'feed', procs: 1, batch: true, baseline: 'bare-batched' },
  coalesce: { name: 'feed, batched, coalesce >16 KiB', server: 'feed', procs: 1, batch: true, coalesceAboveBytes: 16 * 1024, baseline: 'bare-batched' },
  procs: { name: `feed, batched, ${FEED_PROCS} processes`, server: 'feed', procs: FEED_PROCS, batch: true, baseline: 'bare-batched' },
};
const CHOSEN = (process.env.BENCH_PHASES ?? (QUICK ? 'bare,feed,bare-batched,batched' : Object.keys(PHASES).join(','))).split(',');

/**
 * Latencies in 0.1 ms buckets: bounded memory whatever the number of samples. A typed array up to 100 s (a Map's
 * hashing per sample was a fifth of a client process' time), a Map beyond.
 */
class LatencyHistogram {
  private readonly near = new Uint32Array(1_000_000);
  private readonly far = new Map<number, number>();
  add(ms: number): void {
    this.addBucket(Math.max(0, Math.round(ms * 10)), 1);
  }
  entries(): [number, number][] {
    const out: [number, number][] = [];
    this.near.forEach((n, bucket) => n && out.push([bucket, n]));
    return [...out, ...[...this.far].sort((a, b) => a[0] - b[0])];
  }
  merge(entries: [number, number][]): void {
    for (const [b, n] of entries) this.addBucket(b, n);
  }
  get total(): number {
    return this.entries().reduce((sum, [, n]) => sum + n, 0);
  }
  percentile(p: number): number {
    const target = Math.ceil(this.total * p);
    let seen = 0;
    for (const [bucket, n] of this.entries()) {
      seen += n;
      if (seen >= target) return bucket / 10;
    }
    return NaN;
  }
  private addBucket(bucket: number, n: number): void {
    if (bucket < this.near.length) this.near[bucket]! += n;
    else this.far.set(bucket, (this.far.get(bucket) ?? 0) + n);
  }
}

interface Measured {
  latency: [number, number][];
  received: number;
  /** Frames that carried them (fewer than `received` when batched). */
  frames: number;
  /** Clients the server closed (too slow) before the end. */
  closed: number;
  /** Frames whose last event id was not after the previous frame's, per client (must stay 0). */
  outOfOrder: number;
  firstAt: number;
  lastAt: number;
  /** CPU the process used from its clients' subscribe to the last event. */
  cpuSeconds: number;
}

/**
 * Publish and receive times are taken in different processes: CLOCK_MONOTONIC (process.hrtime) is one clock for every
 * process of the machine, where performance.timeOrigin + now() is each process's own start time plus its own offset.
 */
const now = () => Number(process.hrtime.bigint()) / 1e6;
const SENT_AT = Buffer.from('"sentAt":');
const EVENT_START = Buffer.from('{"type":"event","id":"');
const EVENT_FRAME = Buffer.from('{"type":"event');

/** The decimal number (digits, maybe a fraction) at `at` in `bytes`, read without making a string of it. */
function numberAt(bytes: Buffer, at: number): number {
  const digit = (i: number) => bytes[i]! >= 0x30 && bytes[i]! <= 0x39;
  let value = 0;
  let i = at;
  for (; i < bytes.length && digit(i); i++) value = value * 10 + bytes[i]! - 0x30;
  if (bytes[i] !== 0x2e) return value;
  for (let scale = 0.1, j = i + 1; j < bytes.length && digit(j); j++, scale /= 10) value += (bytes[j]! - 0x30) * scale;
  return value;
}

/** Records delivered frames (one `event` or an `events` batch); returns the id of the last event in it. */
function recorder() {
  const latency = new LatencyHistogram();
  let received = 0;
  let frames = 0;
  let closed = 0;
  let outOfOrder = 0;
  let firstAt = 0;
  let lastAt = 0;
  const one = (at: number, sentAt: number) => {
    received++;
    latency.add(at - sentAt);
  };
  return {
    record(frame: Buffer): string {
      const at = now();
      frames++;
      if (!firstAt) firstAt = at;
      lastAt = at;
      // Scanned in its bytes, never parsed nor made a string: the clients are the instrument (JSON.parse of every
      // batch made them the bottleneck, and a string and a regex match per event made them a third of the machine).
      for (let i = frame.indexOf(SENT_AT); i !== -1; i = frame.indexOf(SENT_AT, i + SENT_AT.length)) one(at, numberAt(frame, i + SENT_AT.length));
      const idAt = frame.lastIndexOf(EVENT_START) + EVENT_START.length;
      return frame.toString('latin1', idAt, frame.indexOf(0x22, idAt));
    },
    closed(): void {
      closed++;
    },
    outOfOrder(): void {
      outOfOrder++;
    },
    result(): Omit<Measured, 'cpuSeconds'> {
      return { latency: latency.entries(), received, frames, closed, outOfOrder, firstAt, lastAt };
    },
  };
}

function reportUsage(extra: () => Record<string, unknown>): void {
  let peakRss = 0;
  setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 50).unref();
  process.on('message', (m: { cmd: string }) => {
    if (m.cmd === 'usage') process.send!({ usage: { rss: process.memoryUsage().rss, peakRss, cpu: process.cpuUsage(), ...extra() } });
    if (m.cmd === 'resetPeak') peakRss = 0;
  });
}

// ---- child roles ----

async function listen(): Promise<http.Server> {
  const server = http.createServer((_req, res) => res.writeHead(404).end());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

async function runFeedServer(redisUrl: string, coalesceAboveBytes: number | undefined): Promise<void> {
  const redis = new Redis(redisUrl);
  const config = configSchema.parse({});
  const server = await listen();
  const feed = new FeedServer({
    server,
    eventLog: new EventLog(redis, { key: STREAM_KEY }),
    redis,
    auth: new Authenticator({ host: '127.0.0.1', tokens: [] }),
    options: { ...config.feed, coalesceAboveBytes },
    snapshot: async () => ({}),
  });
  await feed.start();
  reportUsage(() => ({ clients: feed.clientCount, stats: feed.stats() }));
  process.send!({ port: (server.address() as AddressInfo).port, rss: process.memoryUsage().rss });
}

/**
 * The baseline, what a competent minimal ws broadcaster does: reads the stream with XREAD BLOCK in batches, serializes
 * each event once (the feed's own `event` message; `batched`: each read once as the feed's `events` frames), and hands
 * the same Buffers to every client's `ws.send` with the client's socket corked, so a read leaves in one write per client
 * (as the feed does). No subscription, no replay, no per-client state, no backpressure. `uncorked`: as in ws' README,
 * one write per frame and client (what the baseline of the first runs did).
 */
async function runBareServer(redisUrl: string, batched: boolean, uncorked: boolean): Promise<void> {
  const redis = new Redis(redisUrl);
  const log = new EventLog(redis, { key: STREAM_KEY });
  const server = await listen();
  const wss = new WebSocketServer({ noServer: true, clientTracking: false });
  const sockets = new Map<WebSocket, Duplex>();
  server.on('upgrade', (req, socket, head) =>
    wss.handleUpgrade(req, socket, head, (ws) => {
      sockets.set(ws, socket);
      ws.once('close', () => sockets.delete(ws));
    }),
  );
  let cursor = await log.lastId();
  reportUsage(() => ({ clients: sockets.size }));
  process.send!({ port: (server.address() as AddressInfo).port, rss: process.memoryUsage().rss });
  for (;;) {
    const events = await log.waitAfter(redis, cursor, 5000);
    if (events.length === 0) continue;
    cursor = events.at(-1)!.id;
    const eventFrames = events.map((e) => encodeEvent(e).frame);
    const frames = batched ? batchFrames(eventFrames) : eventFrames;
    for (const [ws, socket] of sockets) {
      if (!uncorked) socket.cork();
      for (const frame of frames) ws.send(frame, { binary: false });
      if (!uncorked) socket.uncork();
    }
  }
}

/**
 * Connects `count` ws clients; each subscribes to everything and records every event it receives. The parent names
 * an event id to wait for: once every client has it, the process reports `done` with what it recorded, or, for the
 * warm-up's last event (`warmup`), forgets what it recorded and reports `warm`.
 */
async function runClients(url: string, count: number, batch: boolean): Promise<void> {
  let rec = recorder();
  const lastIds: string[] = [];
  let awaited = null as { endId: string; warmup: boolean } | null;
  /** Clients that have the awaited event, or are closed. */
  const reached = new Set<number>();
  const closedClients = new Set<number>();
  let since = process.cpuUsage();
  const check = () => {
    if (!awaited || reached.size < count) return;
    const { warmup } = awaited;
    awaited = null;
    if (warmup) {
      rec = recorder();
      for (const _ of closedClients) rec.closed();
      since = process.cpuUsage();
      process.send!({ warm: true });
    } else process.send!({ done: { ...rec.result(), cpuSeconds: cpuSeconds(process.cpuUsage(), since) } });
  };
  for (let i = 0; i < count; i += 50) {
    await Promise.all(
      Array.from({ length: Math.min(50, count - i) }, (_, k) => {
        const index = i + k;
        lastIds[index] = '';
        const onEvents = (frame: Buffer) => {
          const id = rec.record(frame);
          if (lastIds[index] && EventId.compare(lastIds[index], id) >= 0) rec.outOfOrder();
          lastIds[index] = id;
          if (id === awaited?.endId) {
            reached.add(index);
            check();
          }
        };
        const onClose = () => {
          rec.closed();
          closedClients.add(index);
          reached.add(index);
          check();
        };
        return connect(url, batch, onEvents, onClose);
      }),
    );
  }
  process.on('message', (m: { endId?: string; warmup?: boolean }) => {
    if (m.endId === undefined) return;
    awaited = { endId: m.endId, warmup: m.warmup ?? false };
    reached.clear();
    lastIds.forEach((id, index) => (id === m.endId || closedClients.has(index)) && reached.add(index));
    check();
  });
  since = process.cpuUsage();
  process.send!({ ready: count });
}

/** Resolves once subscribed (or, to the bare server, connected); then calls onEvents with every event frame. */
function connect(url: string, batch: boolean, onEvents: (frame: Buffer) => void, onClose: () => void): Promise<void> {
  return new Promise((resolve, reject) => {
    // The instrument trusts the servers it measures (both ways alike): no UTF-8 check of every byte.
    const ws = new WebSocket(url, { perMessageDeflate: false, skipUTF8Validation: true });
    ws.on('message', (data) => {
      const frame = data as Buffer;
      if (frame.subarray(0, EVENT_FRAME.length).equals(EVENT_FRAME)) return onEvents(frame);
      const m = JSON.parse(String(frame)) as { type: string };
      if (m.type === 'hello') ws.send(JSON.stringify({ op: 'subscribe', channels: ['job', 'schedule', 'checkpoint'], batch }));
      if (m.type === 'subscribed') resolve();
    });
    ws.once('error', reject);
    ws.once('close', onClose);
    if (url.endsWith('/bare')) ws.once('open', () => resolve());
  });
}

async function runXreadReader(redisUrl: string): Promise<void> {
  const redis = new Redis(redisUrl);
  const log = new EventLog(redis, { key: STREAM_KEY });
  let rec = recorder();
  let cursor = await log.lastId();
  let awaited = null as { endId: string; warmup: boolean } | null;
  process.on('message', (m: { endId?: string; warmup?: boolean }) => m.endId !== undefined && (awaited = { endId: m.endId, warmup: m.warmup ?? false }));
  process.send!({ ready: 1 });
  for (;;) {
    const res = (await redis.xread('COUNT', 1000, 'BLOCK', 200, 'STREAMS', STREAM_KEY, cursor)) as [string, [string, string[]][]][] | null;
    for (const [id, fields] of res?.[0]?.[1] ?? []) {
      rec.record(Buffer.from(`{"type":"event","id":"${id}",${fields[1]!.slice(1)}`));
      cursor = id;
    }
    if (!awaited || cursor !== awaited.endId) continue;
    if (awaited.warmup) {
      rec = recorder();
      awaited = null;
      process.send!({ warm: true });
      continue;
    }
    process.send!({ done: { ...rec.result(), cpuSeconds: 0 } });
    redis.disconnect();
    return;
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

interface Usage {
  rss: number;
  peakRss: number;
  cpu: NodeJS.CpuUsage;
  stats?: unknown;
}

async function usage(c: ChildProcess): Promise<Usage> {
  c.send({ cmd: 'usage' });
  return (await nextMessage<{ usage: Usage }>(c, 'usage')).usage;
}

/** Asks each child to exit (so a --cpu-prof profile gets written), then kills those still there after 10 s. */
async function stopChildren(children: ChildProcess[]): Promise<void> {
  await Promise.all(
    children.map(async (c) => {
      if (c.exitCode !== null || c.signalCode !== null) return;
      const exited = new Promise((resolve) => c.once('exit', resolve));
      c.send({ cmd: 'exit' });
      await Promise.race([exited, sleep(10_000)]);
      c.kill('SIGKILL');
    }),
  );
}

const cpuSeconds = (after: NodeJS.CpuUsage, before: NodeJS.CpuUsage) => (after.user + after.system - before.user - before.system) / 1e6;

interface PhaseResult {
  phase: Phase;
  clients: number;
  latency: LatencyHistogram;
  xread: LatencyHistogram;
  delivered: number;
  frames: number;
  closed: number;
  outOfOrder: number;
  expected: number;
  seconds: number;
  publishedPerSecond: number;
  serverCpuSeconds: number;
  /** All client processes together, while the events flowed. */
  clientCpuSeconds: number;
  serverPeakRss: number;
  stats: unknown[];
  /** The 1-minute load average when the phase ended. */
  loadAverage: number;
}

/** One way of fanning out: fresh servers, clients and XREAD reader; the workload published; everything measured. */
async function runPhase(phase: Phase, clients: number, redisUrl: string, log: EventLog, children: ChildProcess[]): Promise<PhaseResult> {
  const serverExecArgv = (process.env.BENCH_SERVER_NODE_OPTIONS ?? '').split(' ').filter(Boolean);
  const clientExecArgv = (process.env.BENCH_CLIENT_NODE_OPTIONS ?? '').split(' ').filter(Boolean);
  const servers = Array.from({ length: phase.procs }, () =>
    child(phase.server === 'bare' ? ['bare', redisUrl, String(phase.batch), String(phase.uncorked ?? false)] : ['server', redisUrl, String(phase.coalesceAboveBytes ?? '')], serverExecArgv),
  );
  const phaseChildren: ChildProcess[] = [...servers];
  children.push(...servers);
  const ports = await Promise.all(servers.map(async (c) => (await nextMessage<{ port: number }>(c, 'port')).port));
  const urls = ports.map((port) => `ws://127.0.0.1:${port}/${phase.server === 'bare' ? 'bare' : 'api/v1/feed'}`);

  const reader = child(['xread', redisUrl]);
  phaseChildren.push(reader);
  children.push(reader);
  await nextMessage(reader, 'ready');

  const clientProcs: ChildProcess[] = [];
  const clientProcCount = Math.min(clients, CLIENT_PROCS);
  for (let p = 0; p < clientProcCount; p++) {
    const n = Math.floor(clients / clientProcCount) + (p < clients % clientProcCount ? 1 : 0);
    const c = child(['clients', urls[p % urls.length]!, String(n), String(phase.batch)], clientExecArgv);
    clientProcs.push(c);
    phaseChildren.push(c);
    children.push(c);
  }
  await Promise.all(clientProcs.map((c) => nextMessage(c, 'ready')));
  const receivers = [...clientProcs, reader];
  if (WARMUP_STEPS > 0) {
    // Not measured: the first events meet cold code (the JIT) in the servers and clients alike.
    const warm = receivers.map((c) => nextMessage(c, 'warm'));
    const { published } = await publishJobs(log, WARMUP_STEPS);
    for (const c of receivers) c.send({ endId: lastIdOf(published), warmup: true });
    await Promise.all(warm);
  }
  for (const s of servers) s.send({ cmd: 'resetPeak' });
  const before = await Promise.all(servers.map(usage));

  const done = receivers.map((c) => nextMessage<{ done: Measured }>(c, 'done'));
  const { published, seconds } = await publishJobs(log, STEPS);
  for (const c of receivers) c.send({ endId: lastIdOf(published) });
  const results = (await Promise.all(done)).map((r) => r.done);
  const after = await Promise.all(servers.map(usage));

  const latency = new LatencyHistogram();
  let delivered = 0;
  let frames = 0;
  let closed = 0;
  let outOfOrder = 0;
  let firstAt = Infinity;
  let lastAt = 0;
  let clientCpuSeconds = 0;
  for (const r of results.slice(0, -1)) {
    clientCpuSeconds += r.cpuSeconds;
    latency.merge(r.latency);
    delivered += r.received;
    frames += r.frames;
    closed += r.closed;
    outOfOrder += r.outOfOrder;
    firstAt = Math.min(firstAt, r.firstAt);
    lastAt = Math.max(lastAt, r.lastAt);
  }
  const xread = new LatencyHistogram();
  xread.merge(results.at(-1)!.latency);
  await stopChildren(phaseChildren);
  return {
    phase,
    clients,
    latency,
    xread,
    delivered,
    frames,
    closed,
    outOfOrder,
    expected: published.length * clients,
    seconds: (lastAt - firstAt) / 1000,
    publishedPerSecond: published.length / seconds,
    serverCpuSeconds: after.reduce((sum, u, i) => sum + cpuSeconds(u.cpu, before[i]!.cpu), 0),
    clientCpuSeconds,
    serverPeakRss: Math.max(...after.map((u) => u.peakRss)),
    stats: after.map((u) => u.stats).filter(Boolean),
    loadAverage: os.loadavg()[0]!,
  };
}

const lastIdOf = (events: FeedEvent[]) => events.map((e) => e.id).sort(EventId.compare).at(-1)!;

async function publishJobs(log: EventLog, steps: number): Promise<{ published: FeedEvent[]; seconds: number }> {
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
      for (let s = 1; s <= steps; s++) {
        await sleep(INTERVAL_MS);
        await pub({ ...base, event: 'job.progress', data: { stage: 'dumping', percent: Math.round((100 * s) / steps), bytesWritten: s * 4_194_304, bytesExpected: steps * 4_194_304 } });
        await pub({ ...base, event: 'job.log', data: { lines: [`(00.${String(s).padStart(6, '0')}) Dumping pages (type: 1 long: ${s} nr: 512)`], dropped: 0 } });
      }
      await pub({ ...base, event: 'job.completed', data: { result: { checkpointId: `cp-${j}`, bytes: steps * 4_194_304, durationMs: steps * INTERVAL_MS, stats: { frozenTimeUs: 41_000 } }, attemptsMade: 1, node: 'bench' } });
    }),
  );
  return { published, seconds: (now() - started) / 1000 };
}

/** Every chosen way with `clients` clients: a row printed as each ends, its figures recorded. */
async function runWays(clients: number, redisUrl: string, log: EventLog, children: ChildProcess[]): Promise<PhaseResult[]> {
  const f = (n: number) => n.toFixed(1).padStart(7);
  console.log(`  ${`${clients} clients`.padEnd(34)}    p50     p99  ratio | delivered   frames  closed  deliveries/s  CPU s server clients  peak RSS | XREAD p50/p99 | load`);
  const results = new Map<string, PhaseResult>();
  const baseOf = (r: PhaseResult) => (r.phase.baseline === undefined ? undefined : results.get(r.phase.baseline));
  // Each row is printed as soon as its phase ends (the ratio when its baseline ran before): a loaded machine is slow.
  for (const name of CHOSEN) {
    const r = await runPhase(PHASES[name]!, clients, redisUrl, log, children);
    results.set(name, r);
    const base = baseOf(r);
    const ratio = base && r.latency.percentile(0.99) / Math.max(0.1, base.latency.percentile(0.99));
    console.log(
      `  ${r.phase.name.padEnd(34)} ${f(r.latency.percentile(0.5))} ${f(r.latency.percentile(0.99))} ${(ratio === undefined ? '-' : ratio.toFixed(2) + 'x').padStart(6)} | ` +
        `${String(r.delivered).padStart(9)} ${String(r.frames).padStart(8)} ${String(r.closed).padStart(7)} ${f(r.delivered / r.seconds).padStart(13)} ` +
        `${f(r.serverCpuSeconds)} ${f(r.clientCpuSeconds)} ${(r.serverPeakRss / 1024 / 1024).toFixed(0).padStart(5)} MiB | ` +
        `${r.xread.percentile(0.5).toFixed(1)}/${r.xread.percentile(0.99).toFixed(1)} | ${r.loadAverage.toFixed(1)}`,
    );
  }
  // Issue 12's goals for the feed (at 1,000 clients): p99 <= 50 ms, and <= 1.5x the bare broadcast's p99 in the same run.
  for (const r of results.values()) {
    const p99 = r.latency.percentile(0.99);
    const extra = { loadAverage: Number(r.loadAverage.toFixed(1)) };
    const way = `${r.phase.name}, ${clients} clients`;
    const goal = r.phase.server === 'feed' && clients === GOAL_CLIENTS ? { goal: { atMost: 50 } } : {};
    record('feed', { name: `${way}: p99 publish -> client`, value: p99, unit: 'ms', ...goal, ...extra });
    const base = baseOf(r);
    if (!base) continue;
    record('feed', {
      name: `${way}: p99 against ${base.phase.name}`,
      value: p99,
      unit: 'ms',
      baseline: { name: `${base.phase.name} p99`, value: base.latency.percentile(0.99) },
      goal: { atMost: 1.5 },
      ...extra,
    });
    // Less noisy than latency on a loaded machine: what the fan-out cost the server, against the bare broadcast's.
    record('feed', {
      name: `${way}: server CPU against ${base.phase.name}`,
      value: r.serverCpuSeconds,
      unit: 's',
      baseline: { name: `${base.phase.name} server CPU`, value: base.serverCpuSeconds },
      ...extra,
    });
  }
  return [...results.values()];
}

async function main(): Promise<void> {
  if (!CLIENT_COUNTS.every((n) => Number.isInteger(n) && n > 0)) throw new Error('BENCH_CLIENTS: numbers of clients, comma-separated');
  const unknown = CHOSEN.filter((name) => !(name in PHASES));
  if (unknown.length) throw new Error(`BENCH_PHASES: no phase ${unknown.join(', ')} (have ${Object.keys(PHASES).join(', ')})`);
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
    console.log(
      `feed bench: ${CLIENT_COUNTS.join(', ')} ws clients (${CLIENT_PROCS} client processes), ${JOBS} jobs x ${STEPS} steps every ${INTERVAL_MS} ms ` +
        `after ${WARMUP_STEPS} not measured; ${os.cpus().length} CPUs, load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`,
    );
    console.log(`latency publish -> client (ms); ratio: p99 / p99 of the bare ws broadcast of the same messages in this run`);
    const all: PhaseResult[] = [];
    for (const clients of CLIENT_COUNTS) all.push(...(await runWays(clients, redisServer.url, log, children)));
    console.log(`published ${all.map((r) => r.publishedPerSecond.toFixed(0)).join(', ')} events/s`);
    console.log(`load average after: ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`);
    // Every way must deliver every event to every client, except where coalescing progress is the point.
    const failed = all.filter(
      (r) => r.closed > 0 || r.outOfOrder > 0 || (r.phase.coalesceAboveBytes === undefined && r.delivered !== r.expected),
    );
    for (const r of failed) {
      console.error(`${r.phase.name}, ${r.clients} clients: ${r.delivered} of ${r.expected} delivered, ${r.closed} clients closed, ${r.outOfOrder} frames out of order`);
    }
    if (failed.length) process.exitCode = 1;
    redis.disconnect();
  } finally {
    for (const c of children) c.kill('SIGKILL');
    await redisServer.stop();
  }
}

const [role, a, b, c] = process.argv.slice(2);
if (role) process.on('message', (m: { cmd?: string }) => m.cmd === 'exit' && process.exit(0));
if (role === 'server') await runFeedServer(a!, b ? Number(b) : undefined);
else if (role === 'bare') await runBareServer(a!, b === 'true', c === 'true');
else if (role === 'clients') await runClients(a!, Number(b), c === 'true');
else if (role === 'xread') await runXreadReader(a!);
else await main();
