import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { repoRoot } from '../../src/common/paths.js';

/** One measured figure, with the baseline it is compared against (measured in the same run) when it has one. */
export interface Figure {
  value: number;
  unit: string;
  baseline?: { name: string; value: number };
  /** value / baseline. */
  ratio?: number;
  /** The goal it is held to, in words (`<= 200 ms`). */
  goal?: string;
}

/**
 * Writes a benchmark's figures to `bench/results/<name>.json` with when and where they were measured (CPUs, load
 * average: figures from a loaded machine read differently); returns the file's path.
 */
export function writeFigures(name: string, params: Record<string, unknown>, figures: Record<string, Figure>): string {
  const dir = path.join(repoRoot(), 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${name}.json`);
  const machine = { cpus: os.cpus().length, memoryMiB: Math.round(os.totalmem() / 2 ** 20), loadAverage: os.loadavg(), node: process.version };
  writeFileSync(file, `${JSON.stringify({ bench: name, at: new Date().toISOString(), machine, params, figures }, null, 2)}\n`);
  return file;
}

/** A figure and its ratio to a baseline. */
export function against(value: number, unit: string, baseline: { name: string; value: number }, goal?: string): Figure {
  return { value, unit, baseline, ratio: value / baseline.value, ...(goal ? { goal } : {}) };
}
