// The event log publishes each event once, even when ioredis sends the publish again after a reconnect: its reply was
// lost after Redis had run it (as when a master dies between running a command and answering it). A real Redis and a
// real ioredis client; between them a loopback relay that, when told to, lets the command through and loses the reply.
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
