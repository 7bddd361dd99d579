import type { Command } from 'commander';
import { Catalog } from '../../catalog/catalog.js';
import { jobKeyFileOf, loadSigner } from '../../security/key-file.js';
import { CheckpointStore } from '../../catalog/checkpoint-store.js';
import { RemoteStore } from '../../storage/remote-store.js';
import { loadConfig } from '../../config/load.js';
import { createRedis, redactRedisUrl } from '../../queue/redis.js';
import { contextOf } from '../context.js';
import { CliError } from '../errors.js';
import { withLocalFlags } from './run-service.js';

interface LocalFlags {
  config?: string;
  redisUrl?: string;
  storageRoot?: string;
  node?: string;
}

/** `ckpt catalog rebuild`: works on this host's storage root and Redis directly, so it needs no running service. */
export function registerCatalogCommands(program: Command): void {
  const group = program.command('catalog').description("this host's catalog in Redis");
  withLocalFlags(
    group
      .command('rebuild')
      .description("list again every checkpoint of this node whose folder holds a complete manifest, and every one in the bucket (after Redis lost its data)"),
  ).action(async function (this: Command, flags: LocalFlags) {
    const ctx = contextOf(this);
    const config = loadConfig(flags.config, { redisUrl: flags.redisUrl, storageRoot: flags.storageRoot, node: flags.node });
    const redis = createRedis(config.redis);
    redis.on('error', () => undefined); // the command's own failure says what went wrong
    try {
      await redis.ping().catch((err: Error) => {
        throw new CliError(`Redis at ${redactRedisUrl(config.redis.url)} does not answer: ${err.message}`);
      });
      const signer = loadSigner(jobKeyFileOf(config));
      const store = new CheckpointStore({ root: config.storage.root, signer });
      const remote = config.storage.remote && new RemoteStore({ config: config.storage.remote, signer });
      try {
        const result = await new Catalog(redis, { prefix: config.redis.prefix, store, node: config.node, sharedStorage: config.storage.shared, ...(remote && { remote }) }).rebuild();
        if (ctx.json) return ctx.printJson(result);
        ctx.out(
          `catalog of node ${config.node} rebuilt from ${store.root}${remote ? ` and bucket ${remote.where}` : ''}: ${result.added.length} added, ` +
            `${result.present.length} listed already, ${result.skipped.length} skipped`,
        );
        for (const s of result.skipped) ctx.out(`  skipped ${s.dir}: ${s.reason}`);
      } finally {
        remote?.close();
      }
    } finally {
      redis.disconnect();
    }
  });
}
