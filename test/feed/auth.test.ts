import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, test } from 'node:test';
import Fastify from 'fastify';
import { AuthConfigError, Authenticator, authHook, isLoopbackHost } from '../../src/security/auth.js';
import { FeedClient, FeedHarness } from './harness.js';

const READ = { name: 'dashboard', token: 'r'.repeat(32), role: 'read' as const };
const OPERATE = { name: 'ops', token: 'o'.repeat(32), role: 'operate' as const };

let h: FeedHarness;
before(async () => {
  h = await FeedHarness.start();
});
after(async () => {
  await h?.stop();
});

test('loopback means 127.0.0.0/8, ::1 or localhost', () => {
  for (const host of ['127.0.0.1', '127.1.2.3', '::1', '[::1]', 'localhost', 'LOCALHOST', '::ffff:127.0.0.1']) assert.ok(isLoopbackHost(host), host);
  for (const host of ['0.0.0.0', '::', '10.0.0.1', '128.0.0.1', 'example.com', '::ffff:10.0.0.1', '']) assert.ok(!isLoopbackHost(host), host);
});

test('binding beyond loopback without tokens refuses to start', () => {
  assert.throws(
    () => new Authenticator({ host: '0.0.0.0', tokens: [] }).assertStartable(),
    (err: unknown) => err instanceof AuthConfigError && err.code === 'EAUTH_CONFIG' && /not loopback/.test(err.message),
  );
  new Authenticator({ host: '0.0.0.0', tokens: [READ] }).assertStartable();
  new Authenticator({ host: '127.0.0.1', tokens: [] }).assertStartable();
});

test('on loopback without tokens everyone operates, except what looks like a foreign web page', () => {
  const auth = new Authenticator({ host: 'localhost', tokens: [] });
  const operate = { role: 'operate', name: 'loopback' };
  assert.deepEqual(auth.authenticate({}, '/api/v1/jobs'), operate);
  assert.deepEqual(auth.authenticate({ host: '127.0.0.1:7070' }, '/'), operate);
  assert.deepEqual(auth.authenticate({ host: '[::1]:7070' }, '/'), operate);
  assert.deepEqual(auth.authenticate({ host: 'localhost:7070', origin: 'http://localhost:7070' }, '/'), operate);
  const refused = (headers: Record<string, string>) => auth.authenticate(headers, '/') as { status: number; reason: string };
  assert.equal(refused({ host: '127.0.0.1:7070', origin: 'https://evil.example' }).status, 401);
  assert.match(refused({ host: '127.0.0.1:7070', origin: 'null' }).reason, /cross-origin/);
  // DNS rebinding: the page's own origin, but a name that is not loopback.
  assert.match(refused({ host: 'evil.example:7070', origin: 'http://evil.example:7070' }).reason, /not a loopback name/);
});

test('with tokens a token is required, by header or query, and roles are enforced', () => {
  const auth = new Authenticator({ host: '127.0.0.1', tokens: [READ, OPERATE] });
  assert.deepEqual(auth.authenticate({}, '/api/v1/jobs'), {
    status: 401,
    reason: 'a token is required: Authorization: Bearer <token> or ?token=<token>',
  });
  assert.deepEqual(auth.authenticate({ authorization: `Bearer ${READ.token}` }, '/'), { role: 'read', name: 'dashboard' });
  assert.deepEqual(auth.authenticate({ authorization: `bearer ${OPERATE.token}` }, '/'), { role: 'operate', name: 'ops' });
  assert.deepEqual(auth.authenticate({}, `/api/v1/feed?token=${READ.token}`), { role: 'read', name: 'dashboard' });
  assert.equal((auth.authenticate({ authorization: 'Bearer nope' }, '/') as { status: number }).status, 401);
  assert.match((auth.authenticate({ authorization: `Basic ${READ.token}` }, '/') as { reason: string }).reason, /Bearer/);
  assert.equal((auth.authenticate({}, '/?token=' + 'r'.repeat(31)) as { status: number }).status, 401);

  const reader = { role: 'read' as const, name: 'dashboard' };
  assert.equal(auth.authorize(reader, 'read'), null);
  assert.deepEqual(auth.authorize(reader, 'operate'), { status: 403, reason: "token 'dashboard' has role read; this needs role operate" });
  assert.equal(auth.authorize({ role: 'operate', name: 'ops' }, 'operate'), null);
});

test('authHook answers 401 / 403 with a reason and lets the right role through', async (t) => {
  const auth = new Authenticator({ host: '0.0.0.0', tokens: [READ, OPERATE] });
  const app = Fastify();
  t.after(() => app.close());
  app.get('/api/v1/jobs', { preHandler: authHook(auth, 'read') }, async (req) => ({ who: (req as unknown as { principal: { name: string } }).principal.name }));
  app.post('/api/v1/dumps', { preHandler: authHook(auth, 'operate') }, async () => ({ ok: true }));

  const none = await app.inject({ method: 'POST', url: '/api/v1/dumps' });
  assert.equal(none.statusCode, 401);
  assert.equal(none.headers['www-authenticate'], 'Bearer');
  assert.equal(none.json().error, 'unauthorized');

  const reader = await app.inject({ method: 'POST', url: '/api/v1/dumps', headers: { authorization: `Bearer ${READ.token}` } });
  assert.equal(reader.statusCode, 403);
  assert.deepEqual(reader.json(), { error: 'forbidden', message: "token 'dashboard' has role read; this needs role operate" });

  const operator = await app.inject({ method: 'POST', url: '/api/v1/dumps', headers: { authorization: `Bearer ${OPERATE.token}` } });
  assert.equal(operator.statusCode, 200);
  const read = await app.inject({ method: 'GET', url: `/api/v1/jobs?token=${READ.token}` });
  assert.deepEqual(read.json(), { who: 'dashboard' });
});

async function upgradeStatus(url: string, headers?: Record<string, string>): Promise<number> {
  try {
    const c = await FeedClient.connect(url, { headers });
    c.ws.terminate();
    return 101;
  } catch (err) {
    return (err as { statusCode: number }).statusCode;
  }
}

test('the feed refuses an upgrade without a valid token before the handshake', async () => {
  // Configured as if bound to 0.0.0.0 (tokens required), while listening on 127.0.0.1.
  const { url } = await h.feed({ eventLog: h.eventLog(), auth: { host: '0.0.0.0', tokens: [READ, OPERATE] } });
  assert.equal(await upgradeStatus(url), 401);
  assert.equal(await upgradeStatus(`${url}?token=wrong-token-wrong-token`), 401);
  assert.equal(await upgradeStatus(url, { authorization: `Bearer ${OPERATE.token}` }), 101);
  assert.equal(await upgradeStatus(url.replace('/api/v1/feed', '/elsewhere')), 404);

  const c = await h.client(`${url}?token=${READ.token}`);
  await c.expect('hello');
  c.send({ op: 'ping' });
  await c.expect('pong');

  // The refusal is a plain HTTP response with a JSON reason.
  const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
    http
      .get(url.replace('ws:', 'http:'), { headers: { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==' } })
      .once('response', resolve)
      .once('error', reject);
  });
  let body = '';
  for await (const chunk of res) body += String(chunk);
  assert.equal(res.statusCode, 401);
  assert.equal(res.headers['www-authenticate'], 'Bearer');
  assert.equal((JSON.parse(body) as { error: string }).error, 'unauthorized');
});

test('on an open loopback feed, a cross-origin browser upgrade is refused', async () => {
  const { url } = await h.feed({ eventLog: h.eventLog() });
  assert.equal(await upgradeStatus(url, { origin: 'https://evil.example' }), 401);
  assert.equal(await upgradeStatus(url), 101);
});
