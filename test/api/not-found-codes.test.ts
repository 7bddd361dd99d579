// "Not found" has one code per thing (ECHECKPOINT_NOT_FOUND, ESCHEDULE_NOT_FOUND), so Node's own ENOTFOUND (a host name
// that does not resolve) can never pass for a missing checkpoint: a Redis host that does not resolve is a 503, not a 404.
import assert from 'node:assert/strict';
import { lookup } from 'node:dns/promises';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import type { Redis } from 'ioredis';
import { pino } from 'pino';
import { Authenticator } from '../../src/security/auth.js';
import { checkpointRoutes } from '../../src/api/routes/checkpoints.js';
import { createApiServer } from '../../src/api/server.js';
import { Catalog } from '../../src/catalog/catalog.js';
import { CheckpointStore } from '../../src/catalog/checkpoint-store.js';
import { readDumpLog } from '../../src/catalog/checkpoint-log.js';
import { newCheckpointId } from '../../src/common/checkpoint-id.js';
import { redisConfigSchema } from '../../src/config/schema.js';
import { createRedis } from '../../src/queue/redis.js';
import { TestRedis } from '../helpers/redis.js';
import { throwawaySigner } from '../helpers/signer.js';

/** The checkpoint routes over a real Catalog on `redis`, as the service registers them. */
async function checkpointApi(t: TestContext, redis: Redis) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ckpt-notfound-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const store = new CheckpointStore({ root: dir, signer: throwawaySigner() });
  const app = createApiServer({ logger: pino({ level: 'silent' }), auth: new Authenticator({ host: '127.0.0.1', tokens: [] }), bodyLimitBytes: 1 << 20 });
  const catalog = new Catalog(redis, { prefix: 'nf', store, node: 'test-node' });
  await app.register(checkpointRoutes, { catalog, readLog: (id) => readDumpLog({ catalog, store, node: 'test-node' }, id) });
  await app.ready();
  t.after(() => app.close());
  return async (url: string) => {
    const res = await app.inject({ method: 'GET', url });
    return { status: res.statusCode, body: JSON.parse(res.body) as { error: string; code?: string; message: string } };
  };
}

test('an unknown checkpoint is 404 with code ECHECKPOINT_NOT_FOUND', async (t) => {
  const server = await TestRedis.start();
  t.after(() => server.stop());
  const redis = createRedis(server.url);
  t.after(() => redis.disconnect());
  const get = await checkpointApi(t, redis);
  for (const url of [`/api/v1/checkpoints/${newCheckpointId()}`, `/api/v1/checkpoints/${newCheckpointId()}/log`]) {
    const res = await get(url);
    assert.equal(res.status, 404, url);
    assert.equal(res.body.error, 'not_found');
    assert.equal(res.body.code, 'ECHECKPOINT_NOT_FOUND');
  }
});

test('a Redis host that does not resolve answers 503 naming Redis, not 404', async (t) => {
  // The host really does not resolve here (RFC 6761 reserves .invalid), so what reaches the API is Node's DNS failure.
  const host = 'ckpt-no-such-redis.invalid';
  await assert.rejects(lookup(host), (err: NodeJS.ErrnoException) => err.code === 'ENOTFOUND');
  const redis = createRedis(redisConfigSchema.parse({ url: `redis://${host}:6379`, commandTimeoutMs: 500 }));
  redis.on('error', () => undefined);
  t.after(() => redis.disconnect());
  const get = await checkpointApi(t, redis);
  const res = await get(`/api/v1/checkpoints/${newCheckpointId()}`);
  assert.equal(res.status, 503, JSON.stringify(res.body));
  assert.equal(res.body.code, 'EREDIS_UNAVAILABLE');
  assert.match(res.body.message, /Redis/);
});

test("Node's own ENOTFOUND (a host name that does not resolve) reaching the API is an internal error, never a 404", async () => {
  const app = createApiServer({ logger: pino({ level: 'silent' }), auth: new Authenticator({ host: '127.0.0.1', tokens: [] }), bodyLimitBytes: 1 << 20 });
  app.get('/api/v1/resolve', async () => lookup('ckpt-no-such-host.invalid'));
  await app.ready();
  try {
    const res = await app.inject({ method: 'GET', url: '/api/v1/resolve' });
    assert.equal(res.statusCode, 500, res.body);
    assert.equal(JSON.parse(res.body).error, 'internal');
    assert.match(JSON.parse(res.body).message, /ENOTFOUND ckpt-no-such-host\.invalid/);
  } finally {
    await app.close();
  }
});
