// What can be checked of docker-compose.yml and the Dockerfile without a Docker engine.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { parse } from 'yaml';
import { repoRoot } from '../../src/common/paths.js';
import { loadConfig } from '../../src/config/load.js';

const root = repoRoot();
// merge: docker compose reads YAML merge keys (`<<: *anchor`).
const compose = parse(readFileSync(path.join(root, 'docker-compose.yml'), 'utf8'), { merge: true });
const dockerfile = readFileSync(path.join(root, 'Dockerfile'), 'utf8');

test('the ckpt container can do what CRIU needs: host pid namespace, privileges, persistent storage', () => {
  const ckpt = compose.services.ckpt;
  assert.equal(ckpt.build, '.');
  assert.equal(ckpt.privileged, true);
  assert.equal(ckpt.pid, 'host', 'host processes are only visible in the host pid namespace');
  assert.equal(ckpt.network_mode, 'host', 'TCP connections are restored in the host network namespace');
  const volumes: string[] = ckpt.volumes;
  assert.ok(volumes.some((v) => v.split(':')[1] === ckpt.environment.CKPT_STORAGE_ROOT.split('/checkpoints')[0]), 'storage root on a host volume');
  assert.deepEqual(ckpt.command.slice(0, 1), ['up']);
  // The compose command goes to ckpt's CLI (node's flags before it: test/deploy/packaging).
  assert.match(dockerfile, /^ENTRYPOINT \["node", (?:"--[^"]+", )*"bin\/ckpt\.js"\]$/m);
  assert.match(dockerfile, /scripts\/setup\.sh/);
  assert.equal(ckpt.depends_on.redis.condition, 'service_healthy');
});

test("the container's configuration is valid, loopback-only and reaches the compose Redis", () => {
  const ckpt = compose.services.ckpt;
  const config = loadConfig(path.join(root, ckpt.command[2]), {}, { ...ckpt.environment });
  assert.equal(config.api.host, '127.0.0.1');
  assert.equal(config.api.tokens.length, 0, 'no tokens needed only because it is loopback');
  const redisPort = compose.services.redis.command[compose.services.redis.command.indexOf('--port') + 1];
  assert.equal(new URL(config.redis.url).port, redisPort);
  assert.equal(compose.services.redis.command[compose.services.redis.command.indexOf('--bind') + 1], '127.0.0.1');
  assert.ok(compose.services.redis.command.includes('--appendonly'), 'queued jobs survive a Redis restart');
  assert.equal(config.storage.root, ckpt.environment.CKPT_STORAGE_ROOT);
});

test('Redis high availability: a replica of the compose Redis and three sentinels watching it, which the ckpt config names', () => {
  const services = compose.services;
  const ckpt = services.ckpt;
  const config = loadConfig(path.join(root, ckpt.command[2]), {}, { ...ckpt.environment });
  const arg = (cmd: string[], flag: string, n = 1) => cmd.slice(cmd.indexOf(flag) + 1, cmd.indexOf(flag) + 1 + n);
  const masterPort = arg(services.redis.command, '--port')[0];

  const replica = services['redis-replica'];
  assert.deepEqual(arg(replica.command, '--replicaof', 2), ['127.0.0.1', masterPort]);
  assert.equal(arg(replica.command, '--bind')[0], '127.0.0.1');
  assert.ok(replica.command.includes('--appendonly'), 'the replica keeps its copy across restarts');
  assert.equal(ckpt.depends_on['redis-replica'].condition, 'service_healthy');

  const sentinels = Object.entries<any>(services).filter(([name]) => name.startsWith('sentinel-'));
  assert.equal(sentinels.length, 3, 'three sentinels: a majority survives one');
  const script = sentinels[0]![1].entrypoint.join(' ');
  assert.match(script, /sentinel monitor %s 127\.0\.0\.1 %s %s/);
  assert.match(script, /bind 127\.0\.0\.1/);
  assert.match(script, /\[ -f \/data\/sentinel\.conf \] \|\|/, 'a restarted sentinel keeps what it learnt');
  assert.match(script, /exec redis-server \/data\/sentinel\.conf --sentinel/);
  for (const [name, s] of sentinels) {
    assert.equal(s.network_mode, 'host', name);
    assert.equal(s.environment.MASTER_NAME, config.redis.name, `${name} watches the master ckpt asks for`);
    assert.equal(s.environment.MASTER_PORT, masterPort, name);
    assert.ok(Number(s.environment.QUORUM) > sentinels.length / 2, `${name}: quorum is a majority`);
    assert.ok(s.volumes.some((v: string) => v.endsWith(':/data')), `${name} keeps its state`);
    assert.ok(ckpt.depends_on[name], `ckpt starts after ${name}`);
  }
  assert.deepEqual(
    config.redis.sentinels.map((s) => String(s.port)).sort(),
    sentinels.map(([, s]) => s.environment.SENTINEL_PORT).sort(),
    'ckpt knows every sentinel',
  );
  assert.ok(config.redis.sentinels.every((s) => s.host === '127.0.0.1'));
});

test('object storage: a loopback MinIO with its bucket made before ckpt starts, which storage.remote names, credentials from the environment only', () => {
  const services = compose.services;
  const ckpt = services.ckpt;
  const config = loadConfig(path.join(root, ckpt.command[2]), {}, { ...ckpt.environment });
  const minio = services.minio;
  const address = minio.command[minio.command.indexOf('--address') + 1];
  assert.match(address, /^127\.0\.0\.1:\d+$/, 'MinIO listens on loopback only');
  assert.match(minio.command[minio.command.indexOf('--console-address') + 1], /^127\.0\.0\.1:\d+$/);
  assert.equal(minio.network_mode, 'host');
  assert.ok(minio.volumes.some((v: string) => v.endsWith(':/data')), 'the bucket outlives the container');
  assert.ok(minio.healthcheck, 'ckpt waits for a MinIO that answers');

  assert.equal(config.storage.remote?.endpoint, `http://${address}`);
  assert.equal(config.storage.remote?.forcePathStyle, true, 'MinIO wants path-style URLs');
  assert.equal(config.storage.remote?.credentialsFile, '', 'credentials come from the environment');

  // The bucket ckpt names is the one the init container makes, on the same MinIO, before ckpt starts.
  const init = services['minio-init'];
  assert.deepEqual(init.command, ['mb', '--ignore-existing', `store/${config.storage.remote?.bucket}`]);
  assert.equal(init.environment.MC_HOST_store, `http://\${CKPT_S3_ACCESS_KEY}:\${CKPT_S3_SECRET_KEY}@${address}`);
  assert.equal(init.depends_on.minio.condition, 'service_healthy');
  assert.equal(ckpt.depends_on['minio-init'].condition, 'service_completed_successfully');

  // No secret in the file: compose refuses to start without them, and ckpt gets the same ones MinIO has.
  assert.match(minio.environment.MINIO_ROOT_USER, /^\$\{CKPT_S3_ACCESS_KEY:\?.+\}$/);
  assert.match(minio.environment.MINIO_ROOT_PASSWORD, /^\$\{CKPT_S3_SECRET_KEY:\?.+\}$/);
  assert.equal(ckpt.environment.AWS_ACCESS_KEY_ID, '${CKPT_S3_ACCESS_KEY}');
  assert.equal(ckpt.environment.AWS_SECRET_ACCESS_KEY, '${CKPT_S3_SECRET_KEY}');
});
