import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { childrenOf, readMemoryRollup } from '../src/common/proc.js';

export interface PageBytesSamplerOptions {
  /** The attempt folder CRIU writes its images into. */
  imagesDir: string;
  /** Called with the bytes of page images written so far, after each sample. */
  onSample: (bytesWritten: number) => void;
  /** Time between samples. Default 250 ms. */
  intervalMs?: number;
}

/**
 * Measures how far a dump is: the size of CRIU's pages-*.img files (the process memory, by far the biggest part),
 * sampled a few times a second while CRIU writes them.
 */
export class PageBytesSampler {
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private stopped = false;

  constructor(private readonly options: PageBytesSamplerOptions) {}

  start(): void {
    this.schedule();
  }

  /** Stops sampling; once it resolves, no sample is delivered any more. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = pageBytes(this.options.imagesDir)
        .then((bytes) => {
          if (!this.stopped) this.options.onSample(bytes);
        })
        .catch(() => undefined)
        .finally(() => this.schedule());
    }, this.options.intervalMs ?? 250);
  }
}

/** Total size of pages-*.img in `dir` (0 when there are none yet). */
export async function pageBytes(dir: string): Promise<number> {
  let total = 0;
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    if (!/^pages-\d+\.img$/.test(name)) continue;
    total += (await stat(path.join(dir, name)).catch(() => null))?.size ?? 0;
  }
  return total;
}

/**
 * What a dump of `pid`'s tree will write, roughly: the memory CRIU copies (anonymous and swapped-out pages, plus
 * shared memory) of the process and all its descendants, from /proc/<pid>/smaps_rollup, read before the dump.
 * Rss would overcount: it includes the clean pages of mapped files (libraries), which CRIU does not copy. Measured
 * here: a small Python process, Rss 13.2 MiB, Anonymous 6.75 MiB, pages-1.img 6.77 MiB; with 64 MiB of ballast,
 * Anonymous 70.75 MiB, pages-1.img 70.76 MiB. 0 when unknown.
 */
export async function treeDumpBytes(pid: number): Promise<number> {
  let total = 0;
  const seen = new Set<number>();
  const queue = [pid];
  // Bounded by the number of processes; `seen` guards against pid reuse loops.
  while (queue.length) {
    const p = queue.shift()!;
    if (seen.has(p)) continue;
    seen.add(p);
    total += await dumpedBytes(p);
    queue.push(...(await childrenOf(p)));
  }
  return total;
}

async function dumpedBytes(pid: number): Promise<number> {
  const memory = await readMemoryRollup(pid);
  return memory ? memory.anonymousBytes + memory.swapBytes + memory.shmemPssBytes : 0;
}

/** Percent of a dump done: bytes written against bytes expected, held below 100 until the dump has finished. */
export function dumpPercent(bytesWritten: number, bytesExpected: number): number {
  if (bytesExpected <= 0) return 0;
  return Math.min(99, Math.floor((bytesWritten / bytesExpected) * 100));
}
