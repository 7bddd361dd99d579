import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import type { Command } from 'commander';
import { repoRoot } from '../../src/common/paths.js';
import { configSchema } from '../../src/config/schema.js';
import { createProgram } from '../../src/cli/program.js';
import { registerCatalogCommands } from '../../src/cli/commands/catalog.js';
import { registerCriuCommands } from '../../src/cli/commands/criu.js';
import { registerServiceCommands } from '../../src/cli/commands/run-service.js';

// The README's config and CLI tables are checked against the code itself: a key added to the config schema or a flag
// added to a command fails here until the README lists it.

const readme = readFileSync(path.join(repoRoot(), 'README.md'), 'utf8');

/** The rows (cells split on unescaped `|`) of the first table after the heading `## <title>`. */
function tableRows(title: string): string[][] {
  const start = readme.indexOf(`\n## ${title}\n`);
  assert.ok(start >= 0, `README has a "## ${title}" section`);
  const lines = readme.slice(start).split('\n');
  const first = lines.findIndex((l) => l.startsWith('|'));
  const rows: string[][] = [];
  for (const line of lines.slice(first + 2)) {
    if (!line.startsWith('|')) break;
    rows.push(line.slice(1, -1).split(/(?<!\\)\|/).map((c) => c.trim()));
  }
  return rows;
}

/** The code spans of a cell, with the README's shorthand `a.b.c`, `.d` expanded to `a.b.d`. */
function keysOf(cell: string): string[] {
  const keys: string[] = [];
  let parent = '';
  for (const [, span] of cell.matchAll(/`([^`]+)`/g)) {
    if (span!.startsWith('.') && parent) keys.push(parent + span);
    else {
      keys.push(span!);
      parent = span!.includes('.') ? span!.slice(0, span!.lastIndexOf('.')) : '';
    }
  }
  return keys;
}

interface ZodLike {
  def: { type: string; innerType?: ZodLike; shape?: Record<string, ZodLike>; in?: ZodLike };
}

/** Every configurable key of the schema as a dotted path; arrays and records are one key (their items are described in the row). */
function configKeys(schema: ZodLike, prefix = ''): string[] {
  let s = schema;
  while (s.def.innerType || (s.def.type === 'pipe' && s.def.in)) s = s.def.innerType ?? s.def.in!;
  if (s.def.type !== 'object' || !s.def.shape) return [prefix];
  return Object.entries(s.def.shape).flatMap(([k, v]) => configKeys(v, prefix ? `${prefix}.${k}` : k));
}

test('the README config table lists every key of the config schema', () => {
  const rows = tableRows('Configuration');
  const schemaKeys = configKeys(configSchema as unknown as ZodLike);
  assert.ok(schemaKeys.length > 60, `the schema walk found the keys (${schemaKeys.length})`);
  // A key is listed when its row names it, or names its parent object and the key's own name (`worker.backoff` with
  // `{baseDelayMs, ...}` in its default).
  const missing = schemaKeys.filter((key) => {
    if (rows.some(([cell]) => keysOf(cell ?? '').includes(key))) return false;
    const parent = key.slice(0, key.lastIndexOf('.'));
    const leaf = key.slice(key.lastIndexOf('.') + 1);
    return !rows.some((row) => keysOf(row[0] ?? '').includes(parent) && row.slice(1).join(' ').includes(leaf));
  });
  assert.deepEqual(missing, [], 'config keys missing from the README table');
  // And the other way: every key the table names exists.
  const stale = rows.flatMap(([cell]) => keysOf(cell ?? '')).filter((k) => !schemaKeys.some((s) => s === k || s.startsWith(k + '.')));
  assert.deepEqual(stale, [], 'README config rows for keys the schema does not have');
});

/** Every command with its full name (`schedules add`) and long flags, the program's own global flags excluded. */
function commandsOf(cmd: Command, prefix = ''): { name: string; flags: string[] }[] {
  return cmd.commands.flatMap((c) => {
    const name = prefix ? `${prefix} ${c.name()}` : c.name();
    const flags = c.options.map((o) => o.long).filter((l): l is string => Boolean(l) && l !== '--help');
    return [{ name, flags }, ...commandsOf(c, name)];
  });
}

test('the README CLI table lists every command and every flag', () => {
  const program = createProgram();
  for (const register of [registerServiceCommands, registerCatalogCommands, registerCriuCommands]) register(program);
  const rows = tableRows('CLI').map((row) => row.join(' | '));
  const commands = commandsOf(program);
  assert.ok(commands.length > 30, `the walk found the commands (${commands.length})`);
  const problems: string[] = [];
  for (const { name, flags } of commands) {
    const words = name.split(' ');
    // The rows that document this command: they start with `ckpt <top>` and name the subcommand, if any.
    const documented = rows.filter((r) => r.includes(`ckpt ${words[0]}`) && words.slice(1).every((w) => new RegExp(`\\b${w}\\b`).test(r)));
    if (!documented.length) {
      problems.push(`${name}: no row`);
      continue;
    }
    for (const flag of flags) {
      // `--no-scheduler` is its own flag; `--replicas` must not be satisfied by `--replicas-x`.
      if (!documented.some((r) => new RegExp(`${flag}(?![\\w-])`).test(r))) problems.push(`${name}: ${flag}`);
    }
  }
  for (const global of program.options.map((o) => o.long!)) {
    if (!readme.slice(readme.indexOf('\n## CLI\n')).split('\n| command')[0]!.includes(`\`${global}\``)) problems.push(`global flag ${global}`);
  }
  assert.deepEqual(problems, [], 'commands and flags missing from the README CLI table');
});
