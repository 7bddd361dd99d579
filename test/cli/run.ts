import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { repoRoot } from '../../src/common/paths.js';

/**
 * How to start `ckpt` as a child process: the real bin/ckpt.js (which runs dist/) when the tests themselves run
 * compiled, else the TypeScript entry through tsx, so a single test file run with tsx tests the current source.
 */
export function ckptCommand(): string[] {
  const compiled = fileURLToPath(import.meta.url).includes(`${path.sep}dist${path.sep}`);
  return compiled
    ? [path.join(repoRoot(), 'bin', 'ckpt.js')]
    : ['--import', 'tsx', path.join(repoRoot(), 'src', 'cli', 'main.ts')];
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Starts `ckpt <args>`; stdout and stderr are pipes (not a TTY: no bars, no colors). */
export function spawnCli(args: string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
  const base: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' };
  // The caller's own settings must not leak in.
  for (const k of ['CKPT_URL', 'CKPT_TOKEN', 'FORCE_COLOR']) delete base[k];
  return spawn(process.execPath, [...ckptCommand(), ...args], { cwd: repoRoot(), env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Runs `ckpt <args>` to its end. */
export function runCli(args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 60_000): Promise<CliResult> {
  const child = spawnCli(args, env);
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (c: string) => (stdout += c));
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`ckpt ${args.join(' ')} did not end within ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
