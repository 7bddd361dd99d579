import { readProcStat } from '../src/common/proc.js';

/** A restored process: pid and start time (which tells it from a later process given the same pid). */
export interface RestoredProcess {
  pid: number;
  startTime: number;
  /** When CRIU reported it restored (ms since the epoch). */
  restoredAt: number;
}

export interface ExitWatcherOptions {
  /** How long after its restore a process is watched. */
  watchMs: number;
  /** How often /proc is looked at. Default 100 ms. */
  intervalMs?: number;
}

interface Watch {
  process: RestoredProcess;
  onExit(afterMs: number): void;
}

/**
 * Watches restored processes for a bounded time and reports an exit (a restored process is not ckpt's child: it
 * is reparented to pid 1, so /proc is all there is). A restore job completes when CRIU says so; this tells whether
 * the process then kept running. One timer for all watched processes.
 *
 * Two steps so an exit is never reported before the job's completion: the processor records the process
 * (`expect`), the worker starts the watch once it has published job.completed (`start`), or drops it (`forget`).
 */
export class ExitWatcher {
  private readonly expected = new Map<string, RestoredProcess>();
  private readonly watching = new Map<string, Watch>();
  private timer?: NodeJS.Timeout;
  private polling = false;

  constructor(private readonly options: ExitWatcherOptions) {}

  expect(jobId: string, process: RestoredProcess): void {
    this.expected.set(jobId, process);
  }

  /** Starts watching what `jobId` restored; `onExit` is called at most once, with the time since the restore. */
  start(jobId: string, onExit: (afterMs: number) => void): void {
    const process = this.expected.get(jobId);
    this.expected.delete(jobId);
    if (!process || this.options.watchMs <= 0) return;
    this.watching.set(jobId, { process, onExit });
    this.timer ??= setInterval(() => void this.poll(), this.options.intervalMs ?? 100).unref();
    void this.poll();
  }

  forget(jobId: string): void {
    this.expected.delete(jobId);
  }

  close(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.expected.clear();
    this.watching.clear();
  }

  private async poll(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      const now = Date.now();
      for (const [jobId, w] of this.watching) {
        const st = await readProcStat(w.process.pid);
        const exited = !st || st.state === 'Z' || st.state === 'X' || st.startTime !== w.process.startTime;
        if (exited) w.onExit(Date.now() - w.process.restoredAt);
        if (exited || now - w.process.restoredAt >= this.options.watchMs) this.watching.delete(jobId);
      }
      if (!this.watching.size) {
        clearInterval(this.timer);
        this.timer = undefined;
      }
    } finally {
      this.polling = false;
    }
  }
}
