import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { closestName } from '../common/suggest.js';
import { issuesOf, parseOrThrow, ValidationError } from '../common/validation.js';
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

/** Each override: the config key it sets, the CKPT_* variable and the CLI flag that carry it (named in errors). */
const OVERRIDES: Record<keyof ConfigOverrides, { key: string; variable: string; flag?: string }> = {
  node: { key: 'node', variable: 'CKPT_NODE', flag: '--node' },
  host: { key: 'api.host', variable: 'CKPT_HOST', flag: '--host' },
  port: { key: 'api.port', variable: 'CKPT_PORT', flag: '--port' },
  redisUrl: { key: 'redis.url', variable: 'CKPT_REDIS_URL', flag: '--redis-url' },
  storageRoot: { key: 'storage.root', variable: 'CKPT_STORAGE_ROOT', flag: '--storage-root' },
  criuSocket: { key: 'criu.socket', variable: 'CKPT_CRIU_SOCKET' },
};

/**
 * Every CKPT_* variable ckpt reads anywhere (the overrides above, the CLI's, the logger's, setup's). Any other one is a
 * typo that would silently change nothing, so it is refused.
 */
const KNOWN_VARIABLES = [
  ...Object.values(OVERRIDES).map((o) => o.variable),
  'CKPT_CONFIG',
  'CKPT_LOG_LEVEL',
  'CKPT_DATA_DIR',
  'CKPT_URL',
  'CKPT_TOKEN',
  'CKPT_CRIU_BIN',
  'CKPT_CRIU_SUITE',
  'CKPT_SETUP_SKIP_CRIU_CHECK',
];

/** The environment edge: CKPT_* variables only (the rest of the environment is not ckpt's). */
const envSchema = z
  .looseObject({
    CKPT_NODE: z.string().optional(),
    CKPT_HOST: z.string().optional(),
    CKPT_PORT: z
      .string()
      .regex(/^\d{1,5}$/, 'not a port number')
      .transform(Number)
      .optional(),
    CKPT_REDIS_URL: z.string().optional(),
    CKPT_STORAGE_ROOT: z.string().optional(),
    CKPT_CRIU_SOCKET: z.string().optional(),
  })
  .superRefine((env, ctx) => {
    for (const name of Object.keys(env).filter((k) => k.startsWith('CKPT_') && !KNOWN_VARIABLES.includes(k))) {
      const near = closestName(name, KNOWN_VARIABLES);
      ctx.addIssue({ code: 'custom', path: [name], message: `unknown variable${near ? ` (did you mean ${near}?)` : ''}` });
    }
    // Also when a value is bad: every mistake at once.
  }, { when: () => true });

/** CKPT_* variables understood on top of the config file. Throws a ValidationError naming each bad or unknown variable. */
export function overridesFromEnv(env: NodeJS.ProcessEnv = process.env): ConfigOverrides {
  const vars = parseOrThrow(envSchema, env, 'environment');
  return stripUndefined({
    node: vars.CKPT_NODE,
    host: vars.CKPT_HOST,
    port: vars.CKPT_PORT,
    redisUrl: vars.CKPT_REDIS_URL,
    storageRoot: vars.CKPT_STORAGE_ROOT,
    criuSocket: vars.CKPT_CRIU_SOCKET,
  });
}

/**
 * Loads the config: file (YAML) < CKPT_* environment < explicit overrides (CLI flags).
 * Throws a ValidationError naming the file and each bad field; a field set by a variable or a flag names that too.
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
  const fromEnv = overridesFromEnv(env);
  const fromFlags = stripUndefined(overrides);
  /** Where each overridden key's value came from, for the error message. */
  const origins = new Map<string, string>();
  for (const [name, value] of Object.entries({ ...fromEnv, ...fromFlags }) as [keyof ConfigOverrides, unknown][]) {
    const { key, variable, flag } = OVERRIDES[name];
    origins.set(key, name in fromFlags ? (flag ?? 'an override') : variable);
    const [section, field] = key.split('.') as [string, string | undefined];
    if (field === undefined) raw[section] = value;
    else raw[section] = { ...raw[section], [field]: value };
  }
  const subject = file ? `config ${file}` : 'config';
  const result = configSchema.safeParse(raw);
  if (result.success) return result.data;
  const issues = issuesOf(result.error, configSchema).map((issue) => {
    const origin = origins.get(issue.field);
    return origin ? { ...issue, field: `${issue.field} (from ${origin})` } : issue;
  });
  throw new ValidationError(issues, subject);
}

function stripUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
