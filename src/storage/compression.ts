import { spawn } from 'node:child_process';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { StorageError } from './errors.js';

export type Compression = 'none' | 'lz4' | 'zstd';

/** How much of a compressor's stderr is kept for the error message. */
const STDERR_LIMIT = 2000;

/**
 * `input` compressed with the zstd or lz4 program (streaming, one process per stream: Node 20's zlib has neither),
 * or as it is for 'none'. `level` is zstd's.
 */
export function compress(input: Readable, compression: Compression, level: number): Readable {
  if (compression === 'none') return input;
  return compression === 'zstd'
    ? filterThrough('zstd', ['-q', '-c', `-${level}`, '-T1'], input, 'zstd')
    : filterThrough('lz4', ['-q', '-c'], input, 'lz4');
}

/** The reverse of compress(); `what` names the object in errors (a damaged frame fails the stream: EDAMAGED). */
export function decompress(input: Readable, compression: Compression, what: string): Readable {
  if (compression === 'none') return input;
  return filterThrough(compression, ['-q', '-d', '-c'], input, what);
}

/** Runs `bin` with `input` on its stdin; its stdout, which errors unless the program exits 0. */
function filterThrough(bin: string, args: string[], input: Readable, what: string): Readable {
  const child = spawn(bin, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  const out = new PassThrough();
  let stderr = '';
  let failed = false;
  const fail = (err: Error) => {
    if (failed) return;
    failed = true;
    child.kill('SIGKILL');
    out.destroy(err);
  };
  child.stderr.on('data', (d: Buffer) => {
    if (stderr.length < STDERR_LIMIT) stderr += d.toString();
  });
  child.on('error', (err) =>
    fail(new StorageError('ECOMPRESSOR', `${bin} could not be started (${err.message}); scripts/setup.sh installs it`)),
  );
  // The program's early exit shows as EPIPE here: its exit code says why.
  pipeline(input, child.stdin).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') fail(err);
  });
  child.stdout.pipe(out, { end: false });
  child.on('close', (code, signal) => {
    if (failed) return;
    if (code === 0) out.end();
    else fail(new StorageError('EDAMAGED', `${what}: ${bin} failed (${signal ?? `exit ${code}`}): ${stderr.trim() || 'no message'}`));
  });
  out.on('close', () => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  return out;
}
