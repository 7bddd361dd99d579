import type { Command } from 'commander';
import { contextOf } from '../context.js';
import { EXIT } from '../errors.js';

/** `ckpt health`: the server's /healthz (Redis, CRIU service, free space), one line per check; exit 1 when unhealthy. */
export function registerHealthCommand(program: Command): void {
  program
    .command('health')
    .description("the server's health: Redis, the CRIU service, free space under the storage root")
    .action(async function (this: Command) {
      const ctx = contextOf(this);
      const health = await ctx.client.health();
      if (health.status !== 'ok') process.exitCode = EXIT.failed;
      if (ctx.json) return ctx.printJson(health);
      ctx.out(`${health.status === 'ok' ? ctx.c.green('ok') : ctx.c.red(health.status)}  ${ctx.client.baseUrl}`);
      for (const [name, check] of Object.entries(health.checks)) {
        const { ok, ...details } = check;
        const text = Object.entries(details)
          .map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : String(v)}`)
          .join(' ');
        ctx.out(`  ${(name + ':').padEnd(9)} ${ok ? ctx.c.green('ok') : ctx.c.red('FAIL')}  ${text}`);
      }
    });
}
