import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { parseOrThrow, ValidationError } from '../common/validation.js';
import { assertTrustedFile, UntrustedPathError } from '../security/trusted-files.js';
import { configSchema, type Config } from './schema.js';

/** Flags and variables that override the file, so several instances can run side by side. */
export interface ConfigOverrides {
  node?: string;
  host?: string;
  port?: number;
  redisUrl?: string;
  storageRoot?: string;
  criuSocket?: string;
}

/** CKPT_* variables understood on top of the config file. */
export function overridesFromEnv(env: NodeJS.ProcessEnv = process.env): ConfigOverrides {
  const port = env.CKPT_PORT === undefined ? undefined : Number(env.CKPT_PORT);
  if (port !== undefined && !Number.isInteger(port)) {
    throw new ValidationError([{ field: 'CKPT_PORT', reason: `not an integer: ${env.CKPT_PORT}` }], 'environment');
  }
  return stripUndefined({
    node: env.CKPT_NODE,
    host: env.CKPT_HOST,
    port,
    redisUrl: env.CKPT_REDIS_URL,
    storageRoot: env.CKPT_STORAGE_ROOT,
    criuSocket: env.CKPT_CRIU_SOCKET,
  });
}

/**
 * Loads the config: file (YAML) < CKPT_* environment < explicit overrides (CLI flags).
 * Throws a ValidationError naming the file and each bad field.
 */
export function loadConfig(file: string | undefined, overrides: ConfigOverrides = {}, env = process.env): Config {
  let raw: Record<string, any> = {};
  if (file) {
    let text: string;
    try {
      // A config steers a root process (it names the criu binary, the storage root, ...): only root may write it.
      assertTrustedFile(file);
      text = readFileSync(file, 'utf8');
    } catch (err) {
      const reason = err instanceof UntrustedPathError ? `not trusted: ${err.reason}` : `cannot read: ${(err as Error).message}`;
      throw new ValidationError([{ field: '', reason }], `config ${file}`);
    }
    try {
      raw = (parseYaml(text) as Record<string, any>) ?? {};
    } catch (err) {
      throw new ValidationError([{ field: '', reason: `not valid YAML: ${(err as Error).message}` }], `config ${file}`);
    }
    if (typeof raw !== 'object' || Array.isArray(raw)) {
      throw new ValidationError([{ field: '', reason: 'must be a mapping' }], `config ${file}`);
    }
  }
  const o = { ...overridesFromEnv(env), ...stripUndefined(overrides) };
  if (o.node !== undefined) raw.node = o.node;
  if (o.host !== undefined) raw.api = { ...raw.api, host: o.host };
  if (o.port !== undefined) raw.api = { ...raw.api, port: o.port };
  if (o.redisUrl !== undefined) raw.redis = { ...raw.redis, url: o.redisUrl };
  if (o.storageRoot !== undefined) raw.storage = { ...raw.storage, root: o.storageRoot };
  if (o.criuSocket !== undefined) raw.criu = { ...raw.criu, socket: o.criuSocket };
  return parseOrThrow(configSchema, raw, file ? `config ${file}` : 'config');
}

function stripUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
