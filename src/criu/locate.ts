import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { dataDir } from '../common/paths.js';

const run = promisify(execFile);

export const MIN_CRIU = { major: 4, minor: 2 } as const;

export interface LocatedCriu {
  bin: string;
  version: string;
}

export class CriuNotFoundError extends Error {
  readonly code = 'ECRIUNOTFOUND';
  constructor(readonly tried: string[]) {
    super(
      `no working criu >= ${MIN_CRIU.major}.${MIN_CRIU.minor} found (tried: ${tried.join('; ') || 'nothing'}); ` +
        'run `npm run setup` to install one, or set criu.bin',
    );
  }
}

/** `criu --version` of a binary, or a reason why it is unusable. */
async function probe(bin: string, env: Record<string, string>): Promise<{ version?: string; problem?: string }> {
  try {
    const { stdout } = await run(bin, ['--version'], { env: { ...process.env, ...env }, timeout: 10_000 });
    const m = /Version:\s*(\d+)\.(\d+)(?:\.(\d+))?/.exec(stdout);
    if (!m) return { problem: `${bin}: no version in its output` };
    const [major, minor] = [Number(m[1]), Number(m[2])];
    const version = `${m[1]}.${m[2]}${m[3] ? '.' + m[3] : ''}`;
    if (major < MIN_CRIU.major || (major === MIN_CRIU.major && minor < MIN_CRIU.minor)) {
      return { problem: `${bin}: version ${version} is older than ${MIN_CRIU.major}.${MIN_CRIU.minor}` };
    }
    await run(bin, ['check'], { env: { ...process.env, ...env }, timeout: 30_000 }).catch((err) => {
      throw new Error(`${bin}: 'criu check' failed: ${String(err.stderr || err.message).trim().split('\n').pop()}`);
    });
    return { version };
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    // execFile's own failure reads "spawn BIN ENOENT": named like the other problems instead.
    return { problem: e.syscall?.startsWith('spawn') ? `${bin}: cannot run it (${e.code})` : e.message };
  }
}

/**
 * Finds a working CRIU: the configured binary, else the system criu when >= 4.2 and `criu check` passes,
 * else the private install made by scripts/setup.sh.
 */
export async function locateCriu(configured = '', env: Record<string, string> = {}): Promise<LocatedCriu> {
  const candidates = configured
    ? [configured]
    : [...systemCriuPaths(), path.join(dataDir(), 'criu', 'bin', 'criu')].filter((p) => existsSync(p));
  const tried: string[] = [];
  for (const bin of candidates) {
    const { version, problem } = await probe(bin, env);
    if (version) return { bin, version };
    tried.push(problem!);
  }
  throw new CriuNotFoundError(configured ? tried : tried.length ? tried : ['no criu on PATH, no private install']);
}

function systemCriuPaths(): string[] {
  return (process.env.PATH ?? '')
    .split(':')
    .filter(Boolean)
    .map((d) => path.join(d, 'criu'));
}
