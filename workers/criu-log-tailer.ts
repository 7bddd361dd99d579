import { open, type FileHandle } from 'node:fs/promises';
import { CRIU_ERROR_MARK, CRIU_WARN_MARK } from '../src/criu/log-tail.js';

const NEWLINE = 0x0a;
/** CRIU's warning and error marks as bytes, searched for in what the tailer reads. */
export const CRIU_WARN = Buffer.from(CRIU_WARN_MARK);
export const CRIU_ERROR = Buffer.from(CRIU_ERROR_MARK);

/**
 * A batch of complete lines of a CRIU log, kept as the bytes read: a line becomes a string only when asked for
 * (a -v4 log has thousands of lines, of which the job log and the feed keep few). Empty lines are not lines.
 */
export class LogLines {
  /**
   * @param starts, ends byte ranges of the lines in `buf` (end: the newline's index, excluded)
   * @param firstLine the number of lines of the log before this batch
   */
  constructor(
    private readonly buf: Buffer,
    private readonly starts: number[],
    private readonly ends: number[],
    readonly firstLine = 0,
  ) {}

  get count(): number {
    return this.starts.length;
  }

  /** Line `i` of the batch (0-based). */
  line(i: number): string {
    return this.buf.toString('utf8', this.starts[i], this.ends[i]);
  }

  all(): string[] {
    return this.starts.map((_, i) => this.line(i));
  }

  /** Indexes of the lines holding `marker`, in order: found by searching the bytes, not by decoding each line. */
  linesWith(marker: Buffer): number[] {
    const found: number[] = [];
    const last = this.count - 1;
    let line = 0;
    for (let at = this.buf.indexOf(marker, this.starts[0]); at !== -1 && line <= last; ) {
      while (line <= last && this.ends[line]! <= at) line++;
      // Past the last line: in the bytes after it (no newline yet). A marker holds no newline: one found is inside a line.
      if (line > last) break;
      found.push(line);
      at = this.buf.indexOf(marker, this.ends[line]);
    }
    return found;
  }

  /** Indexes of CRIU's warning and error lines, in order. */
  notable(): number[] {
    const both = new Set([...this.linesWith(CRIU_WARN), ...this.linesWith(CRIU_ERROR)]);
    return [...both].sort((a, b) => a - b);
  }
}

/**
 * The complete lines at the start of `buf` (its last line counts only when it ends with a newline), found by
 * looking for newlines in the bytes, and the bytes after the last newline. A newline byte is never part of a
 * multi-byte UTF-8 character, so a character split across two reads is whole once the next read is appended.
 */
export function splitLines(buf: Buffer, firstLine = 0): { lines: LogLines; rest: Buffer } {
  const starts: number[] = [];
  const ends: number[] = [];
  let from = 0;
  for (let nl = buf.indexOf(NEWLINE); nl !== -1; nl = buf.indexOf(NEWLINE, from)) {
    if (nl > from) {
      starts.push(from);
      ends.push(nl);
    }
    from = nl + 1;
  }
  return { lines: new LogLines(buf, starts, ends, firstLine), rest: buf.subarray(from) };
}

export interface CriuLogTailerOptions {
  /** The log file CRIU writes (it may not exist yet when tailing starts). */
  file: string;
  /** Receives each batch of new complete lines, in order; the next batch waits for it. */
  onLines: (lines: LogLines) => void | Promise<void>;
  /** Time between reads. Default 200 ms. */
  intervalMs?: number;
  /** Bytes read per tick at most, so a flood is spread over ticks. Default 1 MiB. */
  maxBytesPerTick?: number;
}

/**
 * Follows a CRIU log file while CRIU writes it (polling: works on every filesystem, and CRIU writes in bursts),
 * handing complete lines to onLines. stop() reads what is left, including a last line without a newline.
 */
export class CriuLogTailer {
  private handle?: FileHandle;
  private offset = 0;
  /** The start of a line whose newline has not been read yet. */
  private partial: Buffer = Buffer.alloc(0);
  /** Lines delivered so far. */
  private lineCount = 0;
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private stopped = false;
  private readonly intervalMs: number;
  private readonly maxBytesPerTick: number;

  constructor(private readonly options: CriuLogTailerOptions) {
    this.intervalMs = options.intervalMs ?? 200;
    this.maxBytesPerTick = options.maxBytesPerTick ?? 1024 * 1024;
  }

  start(): void {
    this.schedule();
  }

  /** Stops following; delivers every line still unread. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
    try {
      // Everything left, however much.
      while (await this.readOnce()) {
        /* keep reading */
      }
      if (this.partial.length) {
        const { lines } = splitLines(Buffer.concat([this.partial, Buffer.of(NEWLINE)]), this.lineCount);
        this.partial = Buffer.alloc(0);
        await this.deliver(lines);
      }
    } finally {
      await this.handle?.close();
      this.handle = undefined;
    }
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.readOnce()
        .then(() => undefined)
        .catch(() => undefined)
        .finally(() => this.schedule());
    }, this.intervalMs);
  }

  /** Reads up to maxBytesPerTick new bytes; true when there may be more. */
  private async readOnce(): Promise<boolean> {
    if (!this.handle) {
      try {
        this.handle = await open(this.options.file, 'r');
      } catch {
        return false; // not written yet
      }
    }
    const { size } = await this.handle.stat();
    if (size < this.offset) {
      // Truncated (a new attempt reusing the name): start over.
      this.offset = 0;
      this.partial = Buffer.alloc(0);
    }
    const length = Math.min(size - this.offset, this.maxBytesPerTick);
    if (length <= 0) return false;
    // Not zeroed: only the bytes read are used.
    const chunk = Buffer.allocUnsafe(length);
    const { bytesRead } = await this.handle.read(chunk, 0, length, this.offset);
    this.offset += bytesRead;
    const read = chunk.subarray(0, bytesRead);
    const { lines, rest } = splitLines(this.partial.length ? Buffer.concat([this.partial, read]) : read, this.lineCount);
    // A copy: the rest must not hold on to the whole chunk until the next read.
    this.partial = Buffer.from(rest);
    await this.deliver(lines);
    return this.offset < size;
  }

  private async deliver(lines: LogLines): Promise<void> {
    if (!lines.count) return;
    this.lineCount += lines.count;
    await this.options.onLines(lines);
  }
}
