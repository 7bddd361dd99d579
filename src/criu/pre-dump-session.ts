import type { CriuConnection, RequestControl } from './connection.js';
import { runImagesRequest, withWarning } from './images-request.js';
import { parseDumpOptions, type PreDumpSessionOptions, type PreDumpStepOptions } from './options.js';
import type { DumpResult } from './client.js';

/**
 * An incremental dump on one connection, the way CRIU's service wants it: any number of preDump() calls
 * (PRE_DUMP: memory copied while the tree keeps running), then one dump() (the final DUMP). Each step has its own
 * images folder; point a step at the previous one with parentImg (relative to its images folder, e.g. "../pre-1").
 * CRIU's worker serves the whole sequence: a failed step or close() ends the session. Get one from
 * CriuClient.preDumpSession().
 */
export class PreDumpSession {
  private ended = false;

  constructor(
    private readonly conn: CriuConnection,
    private readonly options: PreDumpSessionOptions,
    private readonly defaultTimeoutMs: number,
  ) {}

  /** True once the final dump was sent, a step failed, or close() was called. */
  get finished(): boolean {
    return this.ended;
  }

  async preDump(step: PreDumpStepOptions, ctl: RequestControl = {}): Promise<{ warning?: string }> {
    const resp = await this.step('PRE_DUMP', step, ctl, false);
    return withWarning({}, resp);
  }

  /** The final DUMP; ends the session. */
  async dump(step: PreDumpStepOptions, ctl: RequestControl = {}): Promise<DumpResult> {
    const resp = await this.step('DUMP', step, ctl, true);
    return withWarning({ restored: resp.dump?.restored ?? false }, resp);
  }

  /** Ends the session without a final dump (CRIU's worker exits; the tree runs on). */
  close(): void {
    this.ended = true;
    this.conn.close();
  }

  private async step(type: 'PRE_DUMP' | 'DUMP', step: PreDumpStepOptions, ctl: RequestControl, last: boolean) {
    if (this.ended) throw new Error(`this pre-dump session has ended; a ${type} needs a new session`);
    // The session's pid always wins: a step cannot retarget the sequence.
    const options = parseDumpOptions({ ...this.options, ...step, pid: this.options.pid });
    try {
      return await runImagesRequest(this.conn, type, options, { ...ctl, timeoutMs: ctl.timeoutMs ?? this.defaultTimeoutMs });
    } catch (err) {
      this.close();
      throw err;
    } finally {
      if (last) this.close();
    }
  }
}
