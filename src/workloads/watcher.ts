import type { EventLog } from '../events/event-log.js';
import { isSameProcess } from '../common/proc.js';
import { readWorkloadEnd } from './launcher.js';
import type { WorkloadRegistry } from './registry.js';

export interface WorkloadWatcherOptions {
  registry: WorkloadRegistry;
  eventLog: EventLog;
  /** Only this node's workloads are looked at (their processes are in this host's /proc). */
  node: string;
  /** config.workloads.watchIntervalMs */
  intervalMs: number;
  /** Errors of a round (Redis trouble); the next round tries again. */
  onError?: (err: Error) => void;
}

/**
 * Notices when a workload of this node ends: records how (exit code or signal, from the status its init wrote) and
 * announces it once (workload.exited). Runs in every worker, so an exit is seen even when ckpt did not start the
 * process (a copy restored from a checkpoint is a child of the host's init).
 */
export class WorkloadWatcher {
  private timer?: NodeJS.Timeout;
  private round: Promise<void> = Promise.resolve();

  constructor(private readonly options: WorkloadWatcherOptions) {}

  start(): void {
    this.timer ??= setInterval(() => {
      this.round = this.round.then(() => this.check()).catch((err: Error) => this.options.onError?.(err));
    }, this.options.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.round;
  }

  /** One look at every running workload of this node. */
  async check(): Promise<void> {
    const { registry, eventLog, node } = this.options;
    const { items } = await registry.list();
    for (const record of items) {
      if (record.node !== node || record.ended) continue;
      if (await isSameProcess({ pid: record.hostPid, startTime: record.startTime })) continue;
      // Read again: a restore may have given the workload a new process since the listing.
      const current = await registry.get(record.name);
      if (!current || current.ended || current.hostPid !== record.hostPid || current.startTime !== record.startTime) continue;
      const ended = await readWorkloadEnd(current.dir);
      // Only if no restore gave it a new record meanwhile (possibly on another node), which must not be overwritten.
      if (!(await registry.replaceIfUnchanged(current, { ...current, ended }))) continue;
      await eventLog.publish({
        event: 'workload.exited',
        target: `workload.${current.name}`,
        data: { name: current.name, node, hostPid: current.hostPid, ...ended },
      });
    }
  }
}
