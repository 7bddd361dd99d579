import type { Logger } from 'pino';
import type { EventInput } from '../events/types.js';

/** Who a transition line is about: every line carries these, so `jq 'select(.jobId == ...)'` finds a job's story. */
export interface JobLogContext {
  jobId: string;
  type: string;
  /** The target key once known (`python3-4242`), else the target spec as asked (`pid 4242`, `match train.py`). */
  target: string;
  node: string;
}

/**
 * One service-log line per job transition (started, retrying, completed, failed, cancelled, stalled), written by the worker that
 * saw it. Keys never repeat pino's own (`pid`, `name`, `level`, `time`, `msg`): a duplicated key is read differently
 * by each log tool. Other events (progress, log lines) are not transitions and are not logged.
 */
export function logJobTransition(log: Logger, context: JobLogContext, event: EventInput): void {
  switch (event.event) {
    case 'job.active':
      log.info({ ...context, attempt: event.data.attempt }, 'job started');
      return;
    case 'job.retrying':
      log.warn({ ...context, attempt: event.data.attempt, delayMs: event.data.delayMs, reason: event.data.reason }, 'job retrying');
      return;
    case 'job.failed':
      // A failure that will be retried is told by its 'job retrying' line (with the reason).
      if (!event.data.final) return;
      log.error({ ...context, attemptsMade: event.data.attemptsMade, code: event.data.code, reason: event.data.reason }, 'job failed');
      return;
    case 'job.cancelled':
      log.warn({ ...context, state: event.data.state }, 'job cancelled');
      return;
    case 'job.stalled':
      log.warn({ ...context, attemptsMade: event.data.attemptsMade }, 'job stalled: its worker stopped answering');
      return;
    case 'job.completed': {
      const result = event.data.result;
      const stats = (result.stats ?? {}) as Record<string, unknown>;
      const frozenUs = typeof stats.frozenTimeUs === 'number' ? stats.frozenTimeUs : undefined;
      log.info(
        {
          ...context,
          attemptsMade: event.data.attemptsMade,
          checkpointId: result.checkpointId,
          restoredPid: result.restoredPid,
          bytes: result.bytes,
          durationMs: result.durationMs,
          frozenMs: frozenUs === undefined ? undefined : frozenUs / 1000,
          skipped: result.skipped,
          adopted: result.adopted,
        },
        'job completed',
      );
      return;
    }
    default:
      return;
  }
}
