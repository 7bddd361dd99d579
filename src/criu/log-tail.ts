import { open } from 'node:fs/promises';

/** How CRIU marks an error or a warning line of its log (`(00.012345) Error (criu/...)`, `... Warn  (criu/...)`). */
export const CRIU_ERROR_MARK = 'Error (';
export const CRIU_WARN_MARK = 'Warn  (';

/** Whether a line of CRIU's log is one of its error lines. */
export function isCriuErrorLine(line: string): boolean {
  return line.includes(CRIU_ERROR_MARK);
}

/** A log line without the time CRIU starts it with, "(00.072050) Error (...)" -> "Error (...)". */
export function withoutCriuTime(line: string): string {
  return line.replace(/^\([\d.\s]+\)\s*/, '');
}

export interface LogTailOptions {
  /** Bytes read from the end of the file. Default 1 MiB (a -v4 log of a big dump is several MiB; the errors are at its end). */
  maxBytes?: number;
  /** "Error (" lines kept (the last ones). Default 10. */
  maxErrorLines?: number;
  /** Lines kept from the very end, whatever they say. Default 5. */
  lastLines?: number;
}

/**
 * The part of a CRIU log that explains a failure: its "Error (" lines and the last few lines, in file order.
 * [] when the file does not exist or cannot be read.
 */
export async function readLogTail(file: string, options: LogTailOptions = {}): Promise<string[]> {
  const { maxBytes = 1024 * 1024, maxErrorLines = 10, lastLines = 5 } = options;
  const lines = await readLastLines(file, maxBytes);
  const keep = new Set<number>();
  const errorIdx = lines.flatMap((l, i) => (isCriuErrorLine(l) ? [i] : []));
  for (const i of errorIdx.slice(-maxErrorLines)) keep.add(i);
  for (let i = Math.max(0, lines.length - lastLines); i < lines.length; i++) keep.add(i);
  return [...keep].sort((a, b) => a - b).map((i) => lines[i]!);
}

/**
 * The whole lines (blank ones left out) in the last `maxBytes` bytes of a file, in order: a line cut by the start
 * of that range is dropped. [] when the file does not exist or cannot be read.
 */
export async function readLastLines(file: string, maxBytes: number): Promise<string[]> {
  let text: string;
  try {
    const handle = await open(file, 'r');
    try {
      const { size } = await handle.stat();
      const length = Math.min(size, maxBytes);
      const buf = Buffer.alloc(length);
      await handle.read(buf, 0, length, size - length);
      text = buf.toString('utf8');
      // A cut at the start leaves a partial first line: drop it.
      if (length < size) text = text.slice(text.indexOf('\n') + 1);
    } finally {
      await handle.close();
    }
  } catch {
    return [];
  }
  return text.split('\n').filter((l) => l.trim() !== '');
}
