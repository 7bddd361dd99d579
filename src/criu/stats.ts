import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { decodeStatsEntry } from './codec.js';
import type { StatsEntry } from './stats-messages.js';

/** CRIU image magics: the file-kind magic of every image, then the stats one. */
const IMG_COMMON_MAGIC = 0x55105940;
const STATS_MAGIC = 0x57093306;

/** What a dump took (stats-dump). Times in microseconds; pages of 4096 bytes. */
export interface DumpStats {
  freezingTimeUs: number;
  frozenTimeUs: number;
  memdumpTimeUs: number;
  memwriteTimeUs: number;
  pagesScanned: number;
  pagesSkippedParent: number;
  pagesWritten: number;
  irmapResolve?: number;
  pagesLazy: number;
  pagePipes?: number;
  pagePipeBufs?: number;
  shpagesScanned?: number;
  shpagesSkippedParent?: number;
  shpagesWritten?: number;
}

/** What a restore took (stats-restore). Times in microseconds. */
export interface RestoreStats {
  pagesCompared: number;
  pagesSkippedCow: number;
  forkingTimeUs: number;
  restoreTimeUs: number;
  pagesRestored?: number;
}

export class CriuStatsError extends Error {
  readonly code = 'ECRIU_STATS';
  constructor(
    readonly file: string,
    reason: string,
  ) {
    super(`${file}: ${reason}`);
    this.name = 'CriuStatsError';
  }
}

/** Reads <workDir>/stats-dump, written by a successful dump (the work dir is the images dir unless workDirFd was set). */
export async function readDumpStats(dir: string): Promise<DumpStats> {
  const file = path.join(dir, 'stats-dump');
  const e = (await readStatsEntry(file)).dump;
  if (!e) throw new CriuStatsError(file, 'holds no dump statistics');
  return stripUndefined({
    freezingTimeUs: e.freezing_time,
    frozenTimeUs: e.frozen_time,
    memdumpTimeUs: e.memdump_time,
    memwriteTimeUs: e.memwrite_time,
    pagesScanned: e.pages_scanned,
    pagesSkippedParent: e.pages_skipped_parent,
    pagesWritten: e.pages_written,
    irmapResolve: e.irmap_resolve,
    pagesLazy: e.pages_lazy,
    pagePipes: e.page_pipes,
    pagePipeBufs: e.page_pipe_bufs,
    shpagesScanned: e.shpages_scanned,
    shpagesSkippedParent: e.shpages_skipped_parent,
    shpagesWritten: e.shpages_written,
  });
}

/**
 * What is missing from a finished dump's folder, by what CRIU says it wrote: an empty image, or page images holding
 * fewer bytes than stats-dump's pages written. Null when nothing is. For images CRIU wrote before the machine went
 * down: an image the kernel had not written out yet comes back empty or short, never with another file's bytes (ext4,
 * data=ordered), so its size tells.
 */
export async function missingFromDump(dir: string): Promise<string | null> {
  let pagesWritten: number;
  try {
    ({ pagesWritten } = await readDumpStats(dir));
  } catch (err) {
    if (err instanceof CriuStatsError) return err.message;
    throw err;
  }
  const images = (await readdir(dir)).filter((name) => name.endsWith('.img'));
  const sizes = await Promise.all(images.map(async (name) => ({ name, size: (await stat(path.join(dir, name))).size })));
  const empty = sizes.filter((f) => f.size === 0).map((f) => f.name);
  if (empty.length) return `empty: ${empty.join(', ')}`;
  const pageBytes = sizes.filter((f) => /^pages-\d+\.img$/.test(f.name)).reduce((sum, f) => sum + f.size, 0);
  if (pageBytes < pagesWritten * PAGE_BYTES) return `page images hold ${pageBytes} bytes, CRIU wrote ${pagesWritten} pages of ${PAGE_BYTES}`;
  return null;
}

const PAGE_BYTES = 4096;

/** Reads <workDir>/stats-restore, written by a successful restore. */
export async function readRestoreStats(dir: string): Promise<RestoreStats> {
  const file = path.join(dir, 'stats-restore');
  const e = (await readStatsEntry(file)).restore;
  if (!e) throw new CriuStatsError(file, 'holds no restore statistics');
  return stripUndefined({
    pagesCompared: e.pages_compared,
    pagesSkippedCow: e.pages_skipped_cow,
    forkingTimeUs: e.forking_time,
    restoreTimeUs: e.restore_time,
    pagesRestored: e.pages_restored,
  });
}

/**
 * Layout: u32 common magic, u32 stats magic, then one u32 length + that many bytes of stats_entry. CRIU writes the
 * integers in its host's byte order; they are read as little-endian here (x86-64, arm64: the hosts CRIU runs on).
 */
async function readStatsEntry(file: string): Promise<StatsEntry> {
  let buf: Buffer;
  try {
    buf = await readFile(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new CriuStatsError(file, code === 'ENOENT' ? 'does not exist (no successful dump/restore here?)' : `cannot be read (${code})`);
  }
  if (buf.length < 12) throw new CriuStatsError(file, `truncated: ${buf.length} bytes, a stats file has at least 12`);
  const [common, magic] = [buf.readUInt32LE(0), buf.readUInt32LE(4)];
  if (common !== IMG_COMMON_MAGIC || magic !== STATS_MAGIC) {
    throw new CriuStatsError(file, `not a CRIU stats file (magics 0x${hex(common)} 0x${hex(magic)})`);
  }
  const length = buf.readUInt32LE(8);
  if (buf.length < 12 + length) {
    throw new CriuStatsError(file, `truncated: the entry says ${length} bytes, ${buf.length - 12} are there`);
  }
  try {
    return decodeStatsEntry(buf.subarray(12, 12 + length));
  } catch (err) {
    throw new CriuStatsError(file, `undecodable stats entry: ${(err as Error).message}`);
  }
}

function hex(n: number): string {
  return n.toString(16).padStart(8, '0');
}

function stripUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
