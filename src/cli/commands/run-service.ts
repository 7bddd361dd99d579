import { Command, Option } from 'commander';
import type { AppRoles } from '../../app/app.js';
import { startService } from '../../app/start-service.js';
import { packageVersion } from '../../common/paths.js';
import { loadConfig, type ConfigOverrides } from '../../config/load.js';
import { createLogger } from '../../observability/logger.js';

interface ServiceFlags {
  config?: string;
  host?: string;
  port?: number;
  redisUrl?: string;
  storageRoot?: string;
  node?: string;
  scheduler?: boolean;
}

/** `ckpt up` (everything in one process) and `ckpt worker` (only a worker, for more capacity or other hosts). */
export function registerServiceCommands(program: Command): void {
  withConfigFlags(
    program
      .command('up')
      .description('run the API, the live feed, the dashboard, the scheduler and a worker in one process')
      .option('--no-scheduler', 'do not run the scheduler in this process'),
  ).action((flags: ServiceFlags) => run(flags, 'up'));

  // A worker serves no API: no --host / --port.
  withLocalFlags(
    program.command('worker').description("run a worker: takes this node's dump and restore jobs and runs them against CRIU"),
  ).action((flags: ServiceFlags) => run(flags, 'worker'));
}

/** `ckpt up`'s flags: where the API binds, and the local ones. */
function withConfigFlags(cmd: Command): Command {
  return withLocalFlags(
    cmd
      .option('--host <host>', 'API bind address (overrides api.host)')
      .addOption(new Option('--port <port>', 'API port (overrides api.port)').argParser(parsePort)),
  );
}

/** The flags of commands that work on this host's Redis and storage directly (not through the API). */
export function withLocalFlags(cmd: Command): Command {
  return cmd
    .addOption(new Option('--config <file>', 'YAML config file (see config/default.yaml)').env('CKPT_CONFIG'))
    .option('--redis-url <url>', 'Redis URL (overrides redis.url)')
    .option('--storage-root <dir>', 'checkpoint storage root (overrides storage.root)')
    .option('--node <name>', "this host's node name (overrides node)");
}

function parsePort(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new Error(`--port: not a port number: ${v}`);
  return n;
}

async function run(flags: ServiceFlags, command: 'up' | 'worker'): Promise<void> {
  const overrides: ConfigOverrides = {
    host: flags.host,
    port: flags.port,
    redisUrl: flags.redisUrl,
    storageRoot: flags.storageRoot,
    node: flags.node,
  };
  const config = loadConfig(flags.config, overrides);
  const roles: AppRoles =
    command === 'up'
      ? { api: true, worker: true, scheduler: flags.scheduler !== false && config.scheduler.enabled }
      : { api: false, worker: true, scheduler: false };
  const log = createLogger(roles.api ? 'ckpt' : 'ckpt-worker');
  const service = await startService({ config, configFile: flags.config, roles, log, version: packageVersion() });
  if (service.url) {
    const lines = [
      `ckpt ${packageVersion()} is up (node ${config.node})`,
      `  API        ${service.url}/api/v1  (OpenAPI: ${service.url}/api/v1/openapi.json)`,
      `  feed       ${service.url.replace(/^http/, 'ws')}/api/v1/feed`,
      `  dashboard  ${service.url}/`,
      `  health     ${service.url}/healthz   metrics ${service.url}/metrics`,
      `  storage    ${config.storage.root}`,
    ];
    process.stdout.write(lines.join('\n') + '\n');
  } else {
    process.stdout.write(`ckpt worker is running (node ${config.node}, concurrency ${config.worker.concurrency})\n`);
  }
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      log.info({ signal }, 'stopping');
      service.close().then(resolve, resolve);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}

