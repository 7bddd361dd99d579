// The request loop against a scripted stand-in for `criu service` (same socket type, same codec), for what a real
// CRIU will not do on demand: die mid-request, send garbage, never answer, or run a pre-dump session on a kernel
// without memory tracking.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { SeqpacketServer, SeqpacketSocket } from 'node-unix-socket';
import {
  CriuClient,
  CriuConnectionError,
  CriuError,
  decodeRequest,
  encodeResponse,
  type CriuReq,
  type CriuResp,
} from '../../src/criu/index.js';

/** One scripted connection: gets each request, answers with zero or more replies, or does something rude. */
type Script = (req: CriuReq, conn: FakeConnection) => void | Promise<void>;

interface FakeConnection {
  reply(resp: CriuResp): void;
  send(bytes: Buffer): void;
  /** Closes (on a later tick: never inside the socket's own 'data' handler). */
  close(): void;
  /** The next request on this connection. */
  next(): Promise<CriuReq>;
  /** Settles when the client closes the connection. */
  ended: Promise<void>;
}

let dir: string;
let socketPath: string;
let server: SeqpacketServer;
let script: Script;
/** Requests per connection, in arrival order. */
let seen: CriuReq[][];

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'ckpt-criu-fake-'));
  socketPath = path.join(dir, 'fake.sock');
  server = new SeqpacketServer();
  server.on('connection', (socket: SeqpacketSocket) => {
    const requests: CriuReq[] = [];
    seen.push(requests);
    const queue: CriuReq[] = [];
    let waiter: ((r: CriuReq) => void) | undefined;
    const conn: FakeConnection = {
      reply: (resp) => socket.write(encodeResponse(resp)),
      send: (bytes) => socket.write(bytes),
      close: () => setImmediate(() => socket.destroy()),
      next: () => new Promise((resolve) => (queue.length ? resolve(queue.shift()!) : (waiter = resolve))),
      ended: new Promise((resolve) => socket.once('end', () => resolve())),
    };
    socket.on('error', () => undefined);
    socket.on('data', (buf: Buffer) => {
      const req = decodeRequest(buf);
      requests.push(req);
      if (waiter) {
        const w = waiter;
        waiter = undefined;
        w(req);
      } else queue.push(req);
    });
    void conn.next().then((req) => script(req, conn));
  });
  server.listen(socketPath);
});

after(async () => {
  server.close();
  await rm(dir, { recursive: true, force: true });
});

function setup(s: Script): CriuClient {
  script = s;
  seen = [];
  return new CriuClient({ socketPath });
}

/** Waits for the connection the script was given to be closed by the client (bounded, naming what did not happen). */
async function closedByClient(ended: Promise<void> | undefined, ms = 10_000): Promise<void> {
  assert.ok(ended, 'the service got the request');
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the client did not close the connection within ${ms} ms`)), ms);
  });
  await Promise.race([ended, late]).finally(() => clearTimeout(timer));
}

async function rejection(p: Promise<unknown>): Promise<Error & { code?: string }> {
  return p.then(
    () => assert.fail('expected a rejection'),
    (e: Error) => e,
  );
}

test('service closes the connection before the final reply: ECRIU_DIED', async () => {
  const client = setup((_req, conn) => conn.close());
  const err = await rejection(client.version());
  assert.ok(err instanceof CriuConnectionError);
  assert.equal(err.code, 'ECRIU_DIED');
  assert.equal(err.requestType, 'VERSION');
});

test('service dies between two NOTIFYs: ECRIU_DIED', async () => {
  const client = setup(async (_req, conn) => {
    conn.reply({ type: 'NOTIFY', success: true, notify: { script: 'pre-dump' } });
    await conn.next();
    conn.close();
  });
  const err = await rejection(client.dump({ pid: 1, imagesDir: dir }));
  assert.equal(err.code, 'ECRIU_DIED');
});

test('undecodable reply: ECRIU_DECODE', async () => {
  const client = setup((_req, conn) => conn.send(Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff])));
  const err = await rejection(client.version());
  assert.equal(err.code, 'ECRIU_DECODE');
  // A reply without its required `success` field is just as unusable.
  const client2 = setup((_req, conn) => conn.send(Buffer.from([0x08, 0x0a])));
  assert.equal((await rejection(client2.version())).code, 'ECRIU_DECODE');
});

test('no reply within timeoutMs: ECRIU_TIMEOUT, and the connection is closed', async () => {
  let ended: Promise<void> | undefined;
  const client = setup((_req, conn) => {
    ended = conn.ended;
  });
  const err = await rejection(client.version({ timeoutMs: 150 }));
  assert.equal(err.code, 'ECRIU_TIMEOUT');
  assert.match(err.message, /VERSION took longer than 150 ms/);
  await closedByClient(ended);
});

test('abort while a stage handler is still running: ECRIU_ABORTED at once, connection closed', async () => {
  let ended: Promise<void> | undefined;
  const client = setup((_req, conn) => {
    ended = conn.ended;
    conn.reply({ type: 'NOTIFY', success: true, notify: { script: 'pre-dump' } });
  });
  const abort = new AbortController();
  const err = await rejection(
    client.dump(
      { pid: 5, imagesDir: dir },
      {
        signal: abort.signal,
        notify: {
          onStage: async () => {
            abort.abort(new Error('operator said stop'));
            await new Promise((resolve) => setTimeout(resolve, 60_000).unref()); // a handler that would hang
          },
        },
      },
    ),
  );
  assert.equal(err.code, 'ECRIU_ABORTED');
  assert.match(err.message, /operator said stop/);
  await closedByClient(ended);
});

test('NOTIFY: the handler is awaited before CRIU is answered, and answers carry notify_success', async () => {
  const order: string[] = [];
  const client = setup(async (req, conn) => {
    for (const stage of ['pre-dump', 'post-dump']) {
      conn.reply({ type: 'NOTIFY', success: true, notify: { script: stage } });
      const ack = await conn.next();
      order.push(`ack ${stage} ${ack.type} ${ack.notify_success}`);
    }
    conn.reply({ type: req.type, success: true, dump: { restored: false }, cr_errmsg: 'just a warning\n' });
  });
  const result = await client.dump(
    { pid: 4242, imagesDir: dir, logFile: 'dump.log' },
    {
      notify: {
        async onStage(e) {
          order.push(`start ${e.stage}`);
          await sleep(50);
          order.push(`end ${e.stage}`);
        },
      },
    },
  );
  assert.deepEqual(result, { restored: false, warning: 'just a warning' });
  assert.deepEqual(order, [
    'start pre-dump',
    'end pre-dump',
    'ack pre-dump NOTIFY true',
    'start post-dump',
    'end post-dump',
    'ack post-dump NOTIFY true',
  ]);
  const dump = seen[0]![0]!;
  assert.equal(dump.type, 'DUMP');
  assert.equal(dump.opts?.pid, 4242);
  assert.equal(dump.opts?.notify_scripts, true);
  assert.equal(dump.opts?.log_file, 'dump.log');
  assert.ok(dump.opts!.images_dir_fd >= 0, 'an opened fd is sent');
  assert.equal(dump.opts?.images_dir, undefined);
});

test('a throwing stage handler: CRIU is told notify_success=false and the request rejects with that error', async () => {
  const client = setup(async (req, conn) => {
    conn.reply({ type: 'NOTIFY', success: true, notify: { script: 'pre-dump' } });
    const ack = await conn.next();
    conn.reply({ type: req.type, success: ack.notify_success === true, cr_errno: 0 });
  });
  const boom = new Error('not now');
  const err = await rejection(
    client.dump({ pid: 5, imagesDir: dir }, { notify: { onStage: () => Promise.reject(boom) } }),
  );
  assert.equal(err, boom);
  assert.equal(seen[0]![1]!.notify_success, false);
});

test('imagesDirByPath sends images_dir with images_dir_fd = -1', async () => {
  const client = setup((req, conn) => conn.reply({ type: req.type, success: true, restore: { pid: 77 } }));
  const result = await client.restore({ imagesDir: path.relative(process.cwd(), dir), imagesDirByPath: true });
  assert.equal(result.pid, 77);
  const opts = seen[0]![0]!.opts!;
  assert.equal(opts.images_dir_fd, -1);
  assert.equal(opts.images_dir, dir);
});

test('a successful reply of another type is not taken as the answer', async () => {
  const client = setup((_req, conn) => conn.reply({ type: 'CHECK', success: true }));
  assert.equal((await rejection(client.version())).code, 'ECRIU_DECODE');
});

test('pre-dump session: PRE_DUMP, PRE_DUMP, DUMP on one connection, each with its folder and the session pid', async () => {
  const client = setup(async (req, conn) => {
    if (req.type === 'FEATURE_CHECK') {
      conn.reply({ type: 'FEATURE_CHECK', success: true, features: { mem_track: true, lazy_pages: true } });
      return;
    }
    for (let r = req; ; r = await conn.next()) {
      conn.reply({ type: r.type, success: true, ...(r.type === 'DUMP' && { dump: { restored: false } }) });
      if (r.type === 'DUMP') return;
    }
  });
  const folders = await Promise.all(['pre1', 'pre2', 'final'].map(async (name) => mkdtemp(path.join(dir, name))));
  const session = await client.preDumpSession({ pid: 999, logLevel: 3 });
  await session.preDump({ imagesDir: folders[0]! });
  await session.preDump({ imagesDir: folders[1]!, parentImg: '../' + path.basename(folders[0]!) });
  const result = await session.dump({ imagesDir: folders[2]!, parentImg: '../' + path.basename(folders[1]!), leaveRunning: true });
  assert.deepEqual(result, { restored: false });
  assert.equal(session.finished, true);
  assert.deepEqual(seen.map((conn) => conn.map((r) => r.type)), [['FEATURE_CHECK'], ['PRE_DUMP', 'PRE_DUMP', 'DUMP']]);
  const [p1, p2, d] = seen[1]!;
  assert.deepEqual(
    [p1, p2, d].map((r) => [r!.opts?.pid, r!.opts?.log_level, r!.opts?.parent_img]),
    [
      [999, 3, undefined],
      [999, 3, '../' + path.basename(folders[0]!)],
      [999, 3, '../' + path.basename(folders[1]!)],
    ],
  );
  assert.equal(d!.opts?.leave_running, true);
  await assert.rejects(session.preDump({ imagesDir: folders[0]! }), /session has ended/);
});

test('pre-dump session: a failed PRE_DUMP ends the session with a CriuError', async () => {
  const client = setup(async (req, conn) => {
    if (req.type === 'FEATURE_CHECK') conn.reply({ type: req.type, success: true, features: { mem_track: true } });
    else {
      conn.reply({ type: 'PRE_DUMP', success: false, cr_errno: 3, cr_errmsg: 'Error (x.c:1): no such task' });
      conn.close();
    }
  });
  const session = await client.preDumpSession({ pid: 999 });
  const err = await rejection(session.preDump({ imagesDir: dir }));
  assert.ok(err instanceof CriuError);
  assert.equal(err.errnoName, 'ESRCH');
  assert.equal(err.requestType, 'PRE_DUMP');
  assert.equal(session.finished, true);
});
