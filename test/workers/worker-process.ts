import { spawn, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Config } from '../../src/config/schema.js';

export interface WorkerProcess {
  child: ChildProcess;
  /** Everything it printed so far. */
  output(): string;
  exited: Promise<number | null>;
}

/** Starts fixtures/worker-process in a child process (the same loader as this one: tsx, or compiled JS). */
export async function spawnWorkerProcess(config: Config, dir: string): Promise<WorkerProcess> {
  const here = fileURLToPath(import.meta.url);
  const script = path.join(path.dirname(here), 'fixtures', `worker-process${path.extname(here)}`);
  const configFile = path.join(dir, `worker-${config.node}-${Date.now()}.json`);
  await writeFile(configFile, JSON.stringify(config), { mode: 0o600 });
  const execArgv = process.execArgv.filter((a) => !a.startsWith('--test'));
  const child = spawn(process.execPath, [...execArgv, script, configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    const check = () => {
      if (out.includes('ready\n')) resolve();
    };
    child.stdout!.on('data', check);
    void exited.then((code) => reject(new Error(`worker process exited (${code}) before it was ready: ${out}`)));
  });
  return { child, output: () => out, exited };
}
