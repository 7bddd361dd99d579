import { open, type FileHandle } from 'node:fs/promises';
import { StringDecoder } from 'node:string_decoder';

export interface CriuLogTailerOptions {
  /** The log file CRIU writes (it may not exist yet when tailing starts). */
  file: string;
  /** Receives each batch of new complete lines, in order; the next batch waits for it. */
  onLines: (lines: string[]) => void | Promise<void>;
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
  private partial = '';
  /** Keeps a multi-byte character split across two reads whole. */
  private decoder = new StringDecoder('utf8');
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
      const last = this.partial + this.decoder.end();
      if (last) {
        this.partial = '';
        await this.options.onLines([last]);
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
      this.partial = '';
      this.decoder = new StringDecoder('utf8');
    }
    const length = Math.min(size - this.offset, this.maxBytesPerTick);
    if (length <= 0) return false;
    // Not zeroed: only the bytes read are used.
    const buf = Buffer.allocUnsafe(length);
    const { bytesRead } = await this.handle.read(buf, 0, length, this.offset);
    this.offset += bytesRead;
    const text = this.partial + this.decoder.write(buf.subarray(0, bytesRead));
    const lines = text.split('\n');
    this.partial = lines.pop() ?? '';
    const complete = lines.filter((l) => l !== '');
    if (complete.length) await this.options.onLines(complete);
    return this.offset < size;
  }
}
