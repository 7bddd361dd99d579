import { Writable } from 'node:stream';
import type { Logger } from 'pino';
import { createLogger } from '../../src/observability/logger.js';

/** A line of the service log, parsed, with the keys that appeared more than once in its JSON text. */
export interface LogLine {
  level: number;
  msg: string;
  [key: string]: unknown;
}

/** The service's own logger (createLogger: same base fields and redaction), writing into memory. */
export class CapturedLog {
  readonly raw: string[] = [];
  readonly logger: Logger;

  constructor(level = 'info') {
    let partial = '';
    const sink = new Writable({
      write: (chunk: Buffer, _enc, done) => {
        const parts = (partial + chunk.toString('utf8')).split('\n');
        partial = parts.pop()!;
        this.raw.push(...parts.filter((l) => l.length));
        done();
      },
    });
    this.logger = createLogger('ckpt-test', level, sink);
  }

  /** Every line, parsed as JSON (a line that is not JSON fails the test here). */
  lines(): LogLine[] {
    return this.raw.map((l) => JSON.parse(l) as LogLine);
  }

  /** Lines of one job, in order. */
  ofJob(jobId: string): LogLine[] {
    return this.lines().filter((l) => l.jobId === jobId);
  }
}

/**
 * Keys that occur twice in one JSON object of `text` (JSON.parse keeps the last silently; log tools differ).
 * A small scanner over strings and braces: enough for the single-line objects pino writes.
 */
export function duplicateKeys(text: string): string[] {
  const found: string[] = [];
  const stack: (Set<string> | null)[] = [];
  let i = 0;
  const readString = (): string => {
    let out = '';
    for (i++; text[i] !== '"'; i++) {
      if (text[i] === '\\') {
        out += text[i]! + text[i + 1]!;
        i++;
      } else out += text[i];
    }
    i++;
    return out;
  };
  while (i < text.length) {
    const c = text[i]!;
    if (c === '{') {
      stack.push(new Set());
      i++;
    } else if (c === '[') {
      stack.push(null);
      i++;
    } else if (c === '}' || c === ']') {
      stack.pop();
      i++;
    } else if (c === '"') {
      const s = readString();
      const keys = stack[stack.length - 1];
      // A string inside an object followed by ':' is a key.
      let j = i;
      while (text[j] === ' ') j++;
      if (keys && text[j] === ':') {
        if (keys.has(s)) found.push(s);
        keys.add(s);
      }
    } else i++;
  }
  return found;
}
