// Redis locked down (a password, an ACL user limited to ckpt's keys, TLS with client certificates): the whole service
// works through it, nothing works without the credentials, and the secrets never reach the log.
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test, type TestContext } from 'node:test';
import { Redis } from 'ioredis';
import pino from 'pino';
import { startService } from '../../src/app/start-service.js';
import { configSchema } from '../../src/config/schema.js';
import { createRedis } from '../../src/queue/redis.js';
import { startCounter } from '../helpers/targets.js';
import { countsOn, waitUntil } from '../helpers/wait.js';
import { makeCertificates } from '../helpers/tls.js';
import { api, FeedRecorder, startServiceUnderTest, type ServiceUnderTest } from './harness.js';

const ADMIN_PASSWORD = 'admin-secret-Zq81xv';
const CKPT_PASSWORD = 'ckpt-secret-Hk29pw';
/** ckpt's ACL user: its own keys and channels only, no admin commands (INFO is needed: BullMQ checks the server version). */
const ACL_USER = ['--user', 'default', 'on', `>${ADMIN_PASSWORD}`, '~*', '&*', '+@all', '--user', 'ckpt', 'on', `>${CKPT_PASSWORD}`, '~ckpt:*', '&ckpt:*', '+@all', '-@dangerous', '+info'];

/** Everything the service logs, as text. */
function capturingLogger(): { log: pino.Logger; text: () => string } {
  let text = '';
  const sink = new Writable({
    write(chunk, _enc, done) {
      text += chunk.toString();
      done();
    },
  });
  return { log: pino({ level: 'debug' }, sink), text: () => text };
}

/** A dump over HTTP, seen in the feed, then the target killed and restored from the checkpoint: it counts on. */
async function dumpAndRestore(t: TestContext, svc: ServiceUnderTest): Promise<void> {
  const target = await startCounter();
  t.after(() => target.kill());
  const feed = await FeedRecorder.open(svc.url);
  t.after(() => feed.close());
  feed.send({ op: 'subscribe', channels: ['job', 'checkpoint'] });
  await feed.waitFor((m) => m.type === 'subscribed');
  const finished = (jobId: string) => feed.waitFor((m) => m.type === 'event' && m.jobId === jobId && /^job\.(completed|failed)$/.test(m.event));

  const dump = await api(svc.url, 'POST', '/api/v1/dumps', { target: { pid: target.pid } });
  assert.equal(dump.status, 202, dump.text);
  const dumped = await finished(dump.json.jobId);
  assert.equal(dumped.event, 'job.completed', JSON.stringify(dumped.data));
  const names = feed.events(dump.json.jobId).map((e) => e.event);
  assert.deepEqual(names.filter((n) => !['job.progress', 'job.log'].includes(n)), ['job.waiting', 'job.active', 'checkpoint.created', 'job.completed']);
  const { checkpointId } = dumped.data.result;
  const listed = await api(svc.url, 'GET', '/api/v1/checkpoints');
  assert.deepEqual(listed.json.items.map((c: any) => c.id), [checkpointId]);

  process.kill(target.pid, 'SIGKILL');
  await waitUntil(`the killed pid ${target.pid} to be dead`, () => !target.alive());
  const restore = await api(svc.url, 'POST', '/api/v1/restores', { checkpointId });
  assert.equal(restore.status, 202, restore.text);
  const restored = await finished(restore.json.jobId);
  assert.equal(restored.event, 'job.completed', JSON.stringify(restored.data));
  assert.equal(restored.data.result.restoredPid, target.pid);
  await countsOn(target);
  assert.ok(target.alive(), 'the restored counter counts on');
  const health = await api(svc.url, 'GET', '/healthz');
  assert.equal(health.json.checks.redis.ok, true, health.text);
}

test('Redis with requirepass and an ACL user: the service works as that user; no password, a wrong one, or another user is refused; secrets are not logged', async (t) => {
  const { log, text } = capturingLogger();
  const svc = await startServiceUnderTest(t, {}, {
    redis: { args: ACL_USER },
    redisConfig: (r) => ({ url: `redis://ckpt:${CKPT_PASSWORD}@127.0.0.1:${r.port}` }),
    log,
  });
  if (!svc) return;
  await dumpAndRestore(t, svc);

  // The lock holds: without credentials nothing is readable; ckpt's user cannot touch other keys.
  const anonymous = new Redis(svc.redis.port, '127.0.0.1', { lazyConnect: true, enableReadyCheck: false, retryStrategy: () => null });
  anonymous.on('error', () => undefined);
  await anonymous.connect().catch(() => undefined);
  await assert.rejects(anonymous.keys('*'), /NOAUTH/);
  anonymous.disconnect();
  const asCkpt = createRedis(configSchema.parse({ redis: { url: `redis://ckpt:${CKPT_PASSWORD}@127.0.0.1:${svc.redis.port}` } }).redis);
  assert.equal(await asCkpt.exists('ckpt:events'), 1, "ckpt's keys are there");
  await assert.rejects(asCkpt.set('other:key', '1'), /NOPERM/);
  await assert.rejects(asCkpt.flushall(), /NOPERM/);
  asCkpt.disconnect();
  // requirepass alone (the default user's password) works through the same factory.
  const asDefault = createRedis(`redis://:${ADMIN_PASSWORD}@127.0.0.1:${svc.redis.port}`);
  assert.equal(await asDefault.ping(), 'PONG');
  asDefault.disconnect();

  // A wrong password stops the start with Redis' reason, without hanging and without printing the password.
  const wrong = configSchema.parse({
    ...svc.config,
    redis: { url: `redis://ckpt:wrong-secret-Pv55@127.0.0.1:${svc.redis.port}` },
    api: { ...svc.config.api, port: 0 },
  });
  const refused = await startService({ config: wrong, roles: { api: true, worker: false, scheduler: false }, log, version: 'test' }).then(
    (s) => s.close().then(() => null),
    (err: Error) => err,
  );
  assert.ok(refused, 'a wrong password is refused');
  assert.match(refused.message, /WRONGPASS|invalid username-password/);
  assert.doesNotMatch(refused.message, /wrong-secret-Pv55/);

  const logged = text();
  assert.ok(logged.includes('"msg":"request"'), 'the log was captured');
  for (const secret of [CKPT_PASSWORD, ADMIN_PASSWORD, 'wrong-secret-Pv55']) assert.ok(!logged.includes(secret), `${secret} not in the log`);
});

test('Redis over TLS with client certificates: the service works through it; a client with another CA or no certificate is refused', async (t) => {
  const certs = await makeCertificates();
  t.after(() => certs.remove());
  const svc = await startServiceUnderTest(t, {}, {
    redis: { tls: { cert: certs.serverCert, key: certs.serverKey, ca: certs.ca } },
    redisConfig: (r) => ({ url: r.url, tls: { ca: certs.ca, cert: certs.clientCert, key: certs.clientKey } }),
  });
  if (!svc) return;
  assert.match(svc.config.redis.url, /^rediss:/);
  await dumpAndRestore(t, svc);

  const refusedBy = async (tls: object) => {
    const c = createRedis(configSchema.parse({ redis: { url: svc.redis.url, tls, commandTimeoutMs: 2000 } }).redis);
    const seen: Error[] = [];
    c.on('error', (err: Error) => seen.push(err));
    await assert.rejects(c.ping());
    c.disconnect();
    return seen.map((e) => e.message).join('; ');
  };
  // Our client does not trust a server whose certificate another CA signed...
  assert.match(await refusedBy({ ca: certs.otherCa, cert: certs.clientCert, key: certs.clientKey }), /certificate/i);
  // ...and the server refuses a client without a certificate.
  assert.notEqual(await refusedBy({ ca: certs.ca }), '');
  // A plain-text client gets nothing.
  const plain = createRedis(configSchema.parse({ redis: { url: `redis://127.0.0.1:${svc.redis.port}`, commandTimeoutMs: 2000 } }).redis);
  plain.on('error', () => undefined);
  await assert.rejects(plain.ping());
  plain.disconnect();
});
