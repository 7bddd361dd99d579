// The event log publishes each event once, even when ioredis sends the publish again after a reconnect: its reply was
// lost after Redis had run it (as when a master dies between running a command and answering it). A real Redis and a
// real ioredis client; between them a loopback relay that, when told to, lets the command through and loses the reply.
// And an event that two processes may publish (a job's job.waiting: its enqueuer, or its worker) is in it once.
import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { Redis } from 'ioredis';
import { EventLog } from '../../src/events/event-log.js';
import { TestRedis } from '../helpers/redis.js';

/** Forwards every byte both ways; after loseNextReply() the next bytes from Redis are dropped and the connection cut. */
class ReplyLosingRelay {
  private losing = false;
  /** Replies lost so far. */
  lost = 0;
  private constructor(readonly server: net.Server) {}

  static async start(upstreamPort: number): Promise<ReplyLosingRelay> {
    const server = net.createServer();
    const relay = new ReplyLosingRelay(server);
    server.on('connection', (client) => {
      const upstream = net.connect(upstreamPort, '127.0.0.1');
      client.on('data', (chunk) => upstream.write(chunk));
      upstream.on('data', (chunk) => {
        if (!relay.losing) return void client.write(chunk);
        relay.losing = false;
        relay.lost++;
        client.destroy();
        upstream.destroy();
      });
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
      client.on('error', () => undefined);
      upstream.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return relay;
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }

  loseNextReply(): void {
    this.losing = true;
  }
}

test('a publish whose reply was lost is sent again by ioredis after the reconnect, and the event is in the stream once', async (t) => {
  const server = await TestRedis.start();
  t.after(() => server.stop());
  const relay = await ReplyLosingRelay.start(server.port);
  t.after(() => relay.server.close());
  const client = new Redis({ port: relay.port, host: '127.0.0.1', maxRetriesPerRequest: null, retryStrategy: () => 50 });
  client.on('error', () => undefined);
  t.after(() => client.disconnect());
  const admin = new Redis(server.port, '127.0.0.1');
  t.after(() => admin.disconnect());
  await client.ping();

  // What makes it matter: a plain XADD in the same situation lands twice.
  relay.loseNextReply();
  await client.xadd('plain', '*', 'e', 'once?');
  assert.equal(relay.lost, 1, 'the first reply was lost and the command resent');
  assert.equal(await admin.xlen('plain'), 2, 'ioredis resent the XADD: two entries');

  const log = new EventLog(client, { key: 'ckpt:events' });
  relay.loseNextReply();
  const published = await log.publish({ event: 'job.completed', jobId: 'j1', data: { result: { durationMs: 1 }, attemptsMade: 1, node: 'n' } });
  assert.equal(relay.lost, 2, 'the publish reply was lost and the command resent');
  const entries = await admin.xrange('ckpt:events', '-', '+');
  assert.equal(entries.length, 1, 'the event is in the stream once');
  assert.equal(entries[0]![0], published.id, 'the publish returned the id of that one entry');
  assert.deepEqual((await log.readAfter('0')).map((e) => [e.event, e.jobId]), [['job.completed', 'j1']]);

  // Publishes without trouble still add one entry each.
  await log.publish({ event: 'job.waiting', jobId: 'j2', data: { node: 'n' } });
  assert.equal(await admin.xlen('ckpt:events'), 2);
});

test('an event two processes may publish (PublishOnce) is in the stream once, with the first one\'s id; forgetOnce lets it out again', async (t) => {
  const server = await TestRedis.start();
  t.after(() => server.stop());
  const redis = new Redis(server.url);
  t.after(() => redis.disconnect());
  const log = new EventLog(redis, { key: 'ckpt:events' });
  const waiting = { event: 'job.waiting' as const, jobId: 'j1', data: { node: 'n' } };
  const active = { event: 'job.active' as const, jobId: 'j1', data: { node: 'n', attempt: 1, workerPid: 1 } };
  const week = 7 * 24 * 3600 * 1000;

  const [first] = await log.publishAll([waiting], [{ key: 'job.waiting:j1', ttlMs: week }]);
  // The other publisher sends the same event ahead of its own: only its own is added.
  const [again, after] = await log.publishAll([waiting, active], [{ key: 'job.waiting:j1', ttlMs: 60_000 }]);
  assert.equal(again!.id, first!.id);
  assert.deepEqual((await log.readAfter('0')).map((e) => e.event), ['job.waiting', 'job.active']);
  assert.equal((await log.readAfter('0'))[1]!.id, after!.id);
  // The last publisher's TTL holds: a started job's key does not stay for the week.
  const ttl = await redis.pttl('ckpt:events:published:job.waiting:j1');
  assert.ok(ttl > 0 && ttl <= 60_000, `pttl ${ttl}`);

  await log.forgetOnce('job.waiting:j1');
  await log.publishAll([waiting], [{ key: 'job.waiting:j1', ttlMs: week }]);
  assert.deepEqual((await log.readAfter('0')).map((e) => e.event), ['job.waiting', 'job.active', 'job.waiting']);
});
