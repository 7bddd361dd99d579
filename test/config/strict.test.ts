// Config mistakes are refused by name (issue 11.2): unknown keys in the file (with the nearest known key), bad values,
// unknown or bad CKPT_* variables and flags, each named with where it came from.
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type { z } from 'zod';
import { repoRoot } from '../../src/common/paths.js';
import { ValidationError } from '../../src/common/validation.js';
import { loadConfig, type ConfigOverrides } from '../../src/config/load.js';
import { configSchema, type Config } from '../../src/config/schema.js';
import { runCli } from '../cli/run.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'ckpt-config-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function configFile(name: string, yaml: string): Promise<string> {
  const file = path.join(dir, name);
  await writeFile(file, yaml, { mode: 0o600 });
  return file;
}

interface Row {
  input: string;
  yaml?: string;
  env?: NodeJS.ProcessEnv;
  flags?: ConfigOverrides;
  /** Every one of these must be in the error message. */
  says: (string | RegExp)[];
}

const rows: Row[] = [
  { input: 'a typo next to a known key', yaml: 'api: {port: 7275, hots: 0.0.0.0}\n', says: ['api: Unrecognized key: "hots" (did you mean "host"?)'] },
  { input: 'a file of unknown keys only', yaml: 'redsi: {url: "redis://10.0.0.1:6379"}\nstorag: {}\n', says: ['Unrecognized keys: "redsi", "storag" (did you mean "redis" for "redsi", "storage" for "storag"?)'] },
  { input: 'a key of the redis section', yaml: 'redis: {prefx: other}\n', says: ['redis: Unrecognized key: "prefx" (did you mean "prefix"?)'] },
  { input: 'a key of redis.tls', yaml: 'redis: {tls: {servrname: x}}\n', says: ['redis.tls: Unrecognized key: "servrname" (did you mean "servername"?)'] },
  { input: 'a key of a sentinel', yaml: 'redis: {name: m, sentinels: [{host: 127.0.0.1, prot: 26379}]}\n', says: ['redis.sentinels.0: Unrecognized key: "prot" (did you mean "port"?)'] },
  { input: 'a key of the security section', yaml: 'security: {jobkeyfile: /x}\n', says: ['security: Unrecognized key: "jobkeyfile" (did you mean "jobKeyFile"?)'] },
  { input: 'a key of the workloads section', yaml: 'workloads: {stopGraceMS: 10}\n', says: ['workloads: Unrecognized key: "stopGraceMS" (did you mean "stopGraceMs"?)'] },
  { input: 'a key of a token', yaml: 'api: {tokens: [{name: a, token: 0123456789abcdef, role: read, rol: x}]}\n', says: ['api.tokens.0: Unrecognized key: "rol" (did you mean "role"?)'] },
  { input: 'a key of worker.backoff', yaml: 'worker: {backoff: {jiter: 0.1}}\n', says: ['worker.backoff: Unrecognized key: "jiter" (did you mean "jitter"?)'] },
  { input: 'a key far from every known one', yaml: 'criu: {somethingElse: 1}\n', says: [/criu: Unrecognized key: "somethingElse"$/] },
  { input: 'a heap growth past V8\'s largest factor', yaml: 'scheduler: {heapGrowthPercent: 500}\n', says: ['scheduler.heapGrowthPercent: Too big: expected number to be <=300'] },
  { input: 'redis.url not a URL in the file', yaml: 'redis: {url: "not a url"}\n', says: ['redis.url: must be a redis:// or rediss:// URL'] },
  { input: 'CKPT_REDIS_URL not a URL', env: { CKPT_REDIS_URL: 'not a url' }, says: ['redis.url (from CKPT_REDIS_URL): must be a redis:// or rediss:// URL'] },
  { input: '--redis-url not a URL, over a good variable', env: { CKPT_REDIS_URL: 'redis://127.0.0.1:1' }, flags: { redisUrl: 'not a url' }, says: ['redis.url (from --redis-url): must be'] },
  { input: 'CKPT_PORT not a number', env: { CKPT_PORT: '70x' }, says: ['invalid environment: CKPT_PORT: not a port number'] },
  { input: 'CKPT_PORT out of range', env: { CKPT_PORT: '70000' }, says: ['api.port (from CKPT_PORT): Too big'] },
  { input: 'CKPT_NODE with a space', env: { CKPT_NODE: 'a b' }, says: ['node (from CKPT_NODE): letters, digits'] },
  { input: 'a mistyped CKPT_ variable', env: { CKPT_REDIS_ULR: 'redis://127.0.0.1:1' }, says: ['invalid environment: CKPT_REDIS_ULR: unknown variable (did you mean CKPT_REDIS_URL?)'] },
  { input: 'an unknown CKPT_ variable', env: { CKPT_WHATEVER: '1' }, says: [/CKPT_WHATEVER: unknown variable$/] },
];

test('bad config input: each row is refused with a message naming where and why', async (t) => {
  for (const [i, row] of rows.entries()) {
    await t.test(row.input, async () => {
      const file = row.yaml === undefined ? undefined : await configFile(`row-${i}.yaml`, row.yaml);
      let error: unknown;
      try {
        loadConfig(file, row.flags, row.env ?? {});
      } catch (err) {
        error = err;
      }
      assert.ok(error instanceof ValidationError, `${row.input}: refused with a ValidationError, got ${String(error)}`);
      if (file) assert.ok(error.message.startsWith(`invalid config ${file}: `), `names the file: ${error.message}`);
      for (const want of row.says) {
        if (typeof want === 'string') assert.ok(error.message.includes(want), `${row.input}: "${want}" in: ${error.message}`);
        else assert.match(error.message, want);
      }
    });
  }
});

test('the variables and flags that are right load, and the rest of the environment is not ckpt\'s business', async () => {
  const file = await configFile('good.yaml', 'api: {port: 7275}\nredis: {prefix: other}\n');
  const config = loadConfig(file, { host: '127.0.0.2' }, { CKPT_PORT: '7300', CKPT_URL: 'http://x', PATH: '/bin', HOME: '/root' });
  assert.equal(config.api.port, 7300);
  assert.equal(config.api.host, '127.0.0.2');
  assert.equal(config.redis.prefix, 'other');
});

test('each override: its CKPT_* variable over the file, its flag over both (CKPT_CRIU_SOCKET has no flag)', async () => {
  const file = await configFile(
    'layers.yaml',
    'node: from-file\napi: {host: 127.0.0.3, port: 7001}\nredis: {url: "redis://127.0.0.1:6001"}\nstorage: {root: /srv/from-file}\ncriu: {socket: /run/from-file.sock}\n',
  );
  const env = {
    CKPT_NODE: 'from-env',
    CKPT_HOST: '127.0.0.4',
    CKPT_PORT: '7002',
    CKPT_REDIS_URL: 'redis://127.0.0.1:6002',
    CKPT_STORAGE_ROOT: '/srv/from-env',
    CKPT_CRIU_SOCKET: '/run/from-env.sock',
  };
  const flags: ConfigOverrides = { node: 'from-flag', host: '127.0.0.5', port: 7003, redisUrl: 'redis://127.0.0.1:6003', storageRoot: '/srv/from-flag' };
  const overridden = (c: Config) => [c.node, c.api.host, c.api.port, c.redis.url, c.storage.root, c.criu.socket];
  assert.deepEqual(overridden(loadConfig(file, {}, {})), ['from-file', '127.0.0.3', 7001, 'redis://127.0.0.1:6001', '/srv/from-file', '/run/from-file.sock']);
  assert.deepEqual(overridden(loadConfig(file, {}, env)), ['from-env', '127.0.0.4', 7002, 'redis://127.0.0.1:6002', '/srv/from-env', '/run/from-env.sock']);
  assert.deepEqual(overridden(loadConfig(file, flags, env)), ['from-flag', '127.0.0.5', 7003, 'redis://127.0.0.1:6003', '/srv/from-flag', '/run/from-env.sock']);
  // The rest of the file stays as it is.
  assert.equal(loadConfig(file, flags, env).redis.prefix, 'ckpt');
});

test('the shipped configs load under the strict schema', async () => {
  const files = [
    ...(await readdir(path.join(repoRoot(), 'config'))).filter((f) => f.endsWith('.yaml')).map((f) => path.join('config', f)),
    ...(await readdir(path.join(repoRoot(), 'config', 'examples'))).filter((f) => f.endsWith('.yaml')).map((f) => path.join('config', 'examples', f)),
  ];
  assert.ok(files.length >= 2);
  for (const f of files) {
    if (f.startsWith(path.join('config', 'examples'))) {
      // Examples may be partial (a schedule list, ...): they must at least not carry a key the schema does not know.
      try {
        loadConfig(path.join(repoRoot(), f), {}, {});
      } catch (err) {
        assert.doesNotMatch((err as Error).message, /Unrecognized key/, f);
      }
    } else {
      assert.doesNotThrow(() => loadConfig(path.join(repoRoot(), f), {}, {}), f);
    }
  }
});

test('every object in the config schema refuses unknown keys', () => {
  const loose: string[] = [];
  const visit = (schema: z.ZodType, at: string) => {
    const def = (schema as unknown as { _zod: { def: Record<string, any> } })._zod.def;
    if (def.type === 'object') {
      if (def.catchall?._zod.def.type !== 'never') loose.push(at || '(top level)');
      for (const [key, inner] of Object.entries<z.ZodType>(def.shape)) visit(inner, at ? `${at}.${key}` : key);
    } else if (def.innerType) visit(def.innerType, at);
    else if (def.type === 'pipe') visit(def.in, at);
    else if (def.type === 'array') visit(def.element, `${at}[]`);
    else if (def.type === 'record') visit(def.valueType, `${at}{}`);
  };
  visit(configSchema, '');
  assert.deepEqual(loose, []);
});

test('`ckpt up` with a typo in its config refuses to start, naming the file and the key, before it connects anywhere', async () => {
  // Port 1 of loopback: nothing listens there, so had it tried Redis the message would say so instead.
  const file = await configFile('typo.yaml', 'redis: {url: "redis://127.0.0.1:1"}\napi: {port: 0, hots: 0.0.0.0}\n');
  const res = await runCli(['up', '--config', file]);
  assert.notEqual(res.code, 0);
  assert.match(res.stderr, new RegExp(`invalid config ${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: api: Unrecognized key: "hots" \\(did you mean "host"\\?\\)`));
  assert.doesNotMatch(res.stderr, /Redis|redis at/i);
});
