// Entry point of `ckpt` (bin/ckpt.js imports the compiled dist/src/cli/main.js).
import type { Command } from 'commander';
import { createProgram, runProgram } from './program.js';

/**
 * Commands whose modules load the whole service (BullMQ, fastify, ioredis, protobufjs: over a second to import)
 * are only loaded when they are run or when help lists every command, so that client commands start quickly.
 */
const HEAVY: Record<string, () => Promise<(program: Command) => void>> = {
  catalog: async () => (await import('./commands/catalog.js')).registerCatalogCommands,
  criu: async () => (await import('./commands/criu.js')).registerCriuCommands,
  up: async () => (await import('./commands/run-service.js')).registerServiceCommands,
  worker: async () => (await import('./commands/run-service.js')).registerServiceCommands,
};

/** The command named on the command line: the first word that is neither an option nor a global option's value. */
export function commandOf(args: string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--url' || a === '--token') i++;
    else if (!a.startsWith('-')) return a;
  }
  return undefined;
}

const program = createProgram();
const args = process.argv.slice(2);
const command = commandOf(args);
const listsEverything = command === 'help' || (command === undefined && !args.includes('-V') && !args.includes('--version'));
const heavy = command === undefined ? undefined : HEAVY[command];
const loaders = listsEverything ? Object.values(HEAVY) : heavy ? [heavy] : [];
const registered = new Set<unknown>();
for (const load of loaders) {
  const register = await load();
  if (registered.has(register)) continue;
  registered.add(register);
  register(program);
}
await runProgram(program, process.argv);
