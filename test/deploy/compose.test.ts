// What can be checked of docker-compose.yml and the Dockerfile without a Docker engine.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { parse } from 'yaml';
import { repoRoot } from '../../src/common/paths.js';
import { loadConfig } from '../../src/config/load.js';

const root = repoRoot();
const compose = parse(readFileSync(path.join(root, 'docker-compose.yml'), 'utf8'));
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
  assert.match(dockerfile, /^ENTRYPOINT \["node", "bin\/ckpt\.js"\]$/m);
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
