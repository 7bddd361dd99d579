import { readLastLines } from '../src/criu/log-tail.js';
import { CriuLogTailer, type LogLines } from './criu-log-tailer.js';
import type { JobReporter } from './job-reporter.js';

/** The end of a failed dump's log kept in its job log: its folder, and the whole log with it, is removed. */
export const FAILED_TAIL_BYTES = 1024 * 1024;

/** The API path of a checkpoint's whole CRIU dump log. */
export function checkpointLogPath(checkpointId: string): string {
  return `/api/v1/checkpoints/${checkpointId}/log`;
}

/**
 * What of CRIU's log of one attempt the job log keeps. CRIU's lines are taken in as the tailer reads them, and kept as
 * text only when they may end up in the job log: every warning and error line, and the latest `tailLines` lines.
 */
export class CriuLogDigest {
  private total = 0;
  private readonly notable: Array<{ line: number; text: string }> = [];
  private tail: string[] = [];

  constructor(private readonly tailLines: number) {}

  add(batch: LogLines): void {
    for (const i of batch.notable()) this.notable.push({ line: batch.firstLine + i, text: batch.line(i) });
    const fresh: string[] = [];
    for (let i = Math.max(0, batch.count - this.tailLines); i < batch.count; i++) fresh.push(batch.line(i));
    this.tail = this.tail.length + fresh.length > this.tailLines ? [...this.tail, ...fresh].slice(-this.tailLines) : [...this.tail, ...fresh];
    this.total = batch.firstLine + batch.count;
  }

  /**
   * The job log's part, in the log's order: the warning and error lines before the tail, the tail (the latest
   * tailLines lines, or `tail` when given: the end of the file as read), then one line saying how many lines are left
   * out and `where` the whole log is.
   */
  summary(where: string, tail: string[] = this.tail): string[] {
    // `tail` read from the file may hold lines written after the last batch: it counts whole.
    const total = Math.max(this.total, tail.length);
    const tailStart = total - tail.length;
    const before = this.notable.filter((n) => n.line < tailStart).map((n) => n.text);
    const leftOut = tailStart - before.length;
    return [
      ...before,
      ...tail,
      `ckpt: ${leftOut} of CRIU's ${total} log lines are left out here (kept: its warning and error lines, and its last ${tail.length}); ${where}`,
    ];
  }
}

export interface BoundedCriuLogOptions {
  /** The log file CRIU writes into the attempt folder. */
  file: string;
  reporter: JobReporter;
  /** Config worker.logTailLines. */
  tailLines: number;
}

/**
 * A dump's CRIU log while CRIU writes it: every batch goes out as a job.log event (bounded, as for every job), and into
 * the job log (Redis) goes only a bounded part, once CRIU is done (CriuLogDigest): the whole log stays in the
 * checkpoint folder (dump.log, listed and hashed in the manifest, served by GET /api/v1/checkpoints/:id/log).
 */
export class BoundedCriuLog {
  private readonly digest: CriuLogDigest;
  private readonly tailer: CriuLogTailer;

  constructor(private readonly options: BoundedCriuLogOptions) {
    const { reporter } = options;
    this.digest = new CriuLogDigest(options.tailLines);
    this.tailer = new CriuLogTailer({
      file: options.file,
      onLines: (lines) => {
        this.digest.add(lines);
        return reporter.logEvent(lines);
      },
    });
  }

  start(): void {
    this.tailer.start();
  }

  /** After a dump that succeeded: the last lines, and where the whole log is (checkpoint `checkpointId`). */
  async finish(checkpointId: string): Promise<void> {
    await this.tailer.stop();
    await noteSummary(this.options.reporter, this.digest.summary(`the whole log: checkpoint ${checkpointId}, GET ${checkpointLogPath(checkpointId)}`));
  }

  /** After a dump that failed, before its folder is removed: up to FAILED_TAIL_BYTES of the log's end, read from the file. */
  async finishFailed(): Promise<void> {
    await this.tailer.stop();
    await keepEndOfLog(this.options.file, this.options.reporter, this.digest, "failed attempt's");
  }
}

/**
 * Before an unfinished attempt's folder is removed (its worker died, so nobody wrote its log to the job log): up to
 * FAILED_TAIL_BYTES of the end of CRIU's log in it, into the job log.
 */
export function keepLogOfUnfinishedAttempt(file: string, reporter: JobReporter): Promise<void> {
  return keepEndOfLog(file, reporter, new CriuLogDigest(0), "unfinished attempt's");
}

/** Up to FAILED_TAIL_BYTES of the end of the log in `file` into the job log, with what `digest` kept before it. */
async function keepEndOfLog(file: string, reporter: JobReporter, digest: CriuLogDigest, attempt: string): Promise<void> {
  const tail = await readLastLines(file, FAILED_TAIL_BYTES);
  await noteSummary(reporter, digest.summary(`the whole log was removed with the ${attempt} folder`, tail));
}

async function noteSummary(reporter: JobReporter, lines: string[]): Promise<void> {
  // Nothing logged (CRIU never wrote its log): nothing to say.
  if (lines.length > 1) await reporter.note(lines.join('\n'));
}
