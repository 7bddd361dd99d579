import type { Checkpoint, Job, JobProgress, Schedule, TargetSpec } from './api-client.js';
import type { FeedEventMessage } from './feed-client.js';

/** Human-readable output for the terminal. Pure functions: everything here is unit-tested. */

export interface Colors {
  red(s: string): string;
  green(s: string): string;
  yellow(s: string): string;
  blue(s: string): string;
  cyan(s: string): string;
  dim(s: string): string;
  bold(s: string): string;
}

/** ANSI colors when `enabled`, identity otherwise. */
export function colors(enabled: boolean): Colors {
  const wrap = (open: number, close: number) => (s: string) => (enabled ? `\x1b[${open}m${s}\x1b[${close}m` : s);
  return {
    red: wrap(31, 39),
    green: wrap(32, 39),
    yellow: wrap(33, 39),
    blue: wrap(34, 39),
    cyan: wrap(36, 39),
    dim: wrap(2, 22),
    bold: wrap(1, 22),
  };
}

/** Colors on a terminal unless NO_COLOR is set; FORCE_COLOR turns them on anywhere. */
export function useColor(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.NO_COLOR) return false;
  if (env.FORCE_COLOR && env.FORCE_COLOR !== '0') return true;
  return Boolean(stream.isTTY);
}

const MiB = 1024 * 1024;

/** 1536 -> "1.5 KiB"; sizes of checkpoints. */
export function formatBytes(bytes: number | undefined | null): string {
  if (bytes === undefined || bytes === null || !Number.isFinite(bytes)) return '-';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}

/** Always in MiB with one decimal, so "written / expected" line up while a dump runs. */
export function formatMiB(bytes: number | undefined | null): string {
  if (bytes === undefined || bytes === null || !Number.isFinite(bytes)) return '?';
  return (bytes / MiB).toFixed(1);
}

/** 812 -> "812 ms", 61234 -> "1m 1.2s". */
export function formatDuration(ms: number | undefined | null): string {
  if (ms === undefined || ms === null || !Number.isFinite(ms)) return '-';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  const m = Math.floor(ms / 60_000);
  const s = (ms % 60_000) / 1000;
  if (m < 60) return `${m}m ${s.toFixed(0)}s`;
  return `${Math.floor(m / 60)}h ${m % 60}m`;
}

/** CRIU reports times in microseconds. */
export function formatMicros(us: number | undefined | null): string {
  if (us === undefined || us === null || !Number.isFinite(us)) return '-';
  return us < 1000 ? `${us} µs` : formatDuration(us / 1000);
}

/** A timestamp (ms or ISO string) as local "YYYY-MM-DD HH:MM:SS". */
export function formatTime(t: number | string | undefined | null): string {
  if (t === undefined || t === null || t === '') return '-';
  const d = new Date(t);
  if (Number.isNaN(d.getTime())) return String(t);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** "HH:MM:SS.mmm" for feed lines. */
export function formatClock(ms: number): string {
  const d = new Date(ms);
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

export function describeTarget(t: TargetSpec | string | undefined | null): string {
  if (!t) return '-';
  if (typeof t === 'string') return t;
  if ('pid' in t) return `pid ${t.pid}`;
  if ('pidFile' in t) return `pid-file ${t.pidFile}`;
  if ('match' in t) return `match /${t.match}/`;
  return JSON.stringify(t);
}

export function describeProgress(p: Partial<JobProgress>): string {
  const parts: string[] = [];
  if (p.stage) parts.push(p.stage);
  if (typeof p.percent === 'number') parts.push(`${Math.round(p.percent)}%`);
  if (p.bytesWritten || p.bytesExpected) {
    parts.push(`${formatMiB(p.bytesWritten)}/${formatMiB(p.bytesExpected)} MiB`);
  }
  return parts.join(' ');
}

/** Frozen time, pages and bytes of a dump, or the restored pid; the one line that says how a job went. */
export function describeResult(type: string | undefined, r: Job['result']): string {
  if (!r) return '';
  const s = (r.stats ?? {}) as Record<string, number | undefined>;
  const parts: string[] = [];
  if (r.checkpointId && type !== 'restore') parts.push(`checkpoint ${r.checkpointId}`);
  if (r.workloads?.length) parts.push(`restored ${r.workloads.map((w) => `${w.name} (pid ${w.hostPid})`).join(', ')}`);
  else if (r.restoredPid !== undefined) parts.push(`restored pid ${r.restoredPid}`);
  const frozen = s.frozenTimeUs ?? s.frozenTime;
  if (frozen !== undefined) parts.push(`frozen ${formatMicros(frozen)}`);
  const pages = s.pagesWritten ?? s.pagesRestored;
  if (pages !== undefined) parts.push(`${pages} pages`);
  if (r.bytes !== undefined) parts.push(formatBytes(r.bytes));
  if (r.items) parts.push(`${r.succeeded ?? 0} of ${r.items.length} restored`);
  if (r.skipped) parts.push(`skipped: ${r.reason ?? 'busy'}`);
  if (r.durationMs !== undefined) parts.push(`took ${formatDuration(r.durationMs)}`);
  return parts.join(', ');
}

/** A plain-text table: columns padded to their widest cell; the last column is not padded. */
export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(visibleLength(h), ...rows.map((r) => visibleLength(r[i] ?? ''))));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c + ' '.repeat(widths[i]! - visibleLength(c))))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

function visibleLength(s: string): number {
  // eslint-disable-next-line no-control-regex
  return s.replace(/\x1b\[[0-9;]*m/g, '').length;
}

export function colorState(state: string, c: Colors): string {
  switch (state) {
    case 'completed':
      return c.green(state);
    case 'failed':
      return c.red(state);
    case 'active':
      return c.cyan(state);
    case 'waiting':
    case 'delayed':
    case 'waiting-children':
    case 'prioritized':
      return c.yellow(state);
    default:
      return state;
  }
}

export function jobsTable(jobs: Job[], c: Colors): string {
  return table(
    ['ID', 'TYPE', 'STATE', 'TARGET', 'PROGRESS', 'TRIES', 'CREATED', 'RESULT'],
    jobs.map((j) => [
      j.id,
      j.type,
      colorState(j.state, c),
      jobTarget(j),
      j.state === 'active' ? describeProgress(j.progress) : '',
      String(j.attemptsMade ?? 0),
      formatTime(j.createdAt),
      j.state === 'failed' ? c.red(firstLine(j.failedReason ?? '')) : describeResult(j.type, j.result),
    ]),
  );
}

/** What a job works on: the dump's target, the restore's checkpoint, or the batch's size. */
export function jobTarget(j: Job): string {
  const d = (j.data ?? {}) as { target?: TargetSpec; checkpointId?: string; checkpointIds?: string[] };
  if (j.type === 'dump' && d.target) return describeTarget(d.target);
  if (j.type === 'restore' && d.checkpointId) return d.checkpointId;
  if (d.checkpointIds) return `${d.checkpointIds.length} checkpoints`;
  return '-';
}

export function jobDetails(j: Job, c: Colors): string {
  const rows: [string, string][] = [
    ['id', j.id],
    ['type', j.type],
    ['state', colorState(j.state, c)],
    ['target', jobTarget(j)],
  ];
  if (j.scheduleId) rows.push(['schedule', j.scheduleId]);
  if (j.node) rows.push(['node', j.node]);
  rows.push(['attempts', String(j.attemptsMade ?? 0)]);
  rows.push(['created', formatTime(j.createdAt)]);
  if (j.finishedAt) rows.push(['finished', formatTime(j.finishedAt)]);
  const progress = describeProgress(j.progress ?? {});
  if (progress && j.state !== 'completed') rows.push(['progress', progress]);
  if (j.result) rows.push(['result', describeResult(j.type, j.result)]);
  if (j.failedReason) rows.push(['reason', c.red(j.failedReason)]);
  const out = rows.map(([k, v]) => `${(k + ':').padEnd(10)} ${v}`);
  const stats = j.result?.stats;
  if (stats && Object.keys(stats).length) {
    out.push('stats:');
    for (const [k, v] of Object.entries(stats)) out.push(`  ${k.padEnd(22)} ${v}`);
  }
  for (const item of j.result?.items ?? []) {
    out.push(`  ${item.jobId}  ${item.checkpointId}  ${colorState(item.state, c)}  ${item.restoredPid ? `pid ${item.restoredPid}` : (item.reason ?? '')}`);
  }
  return out.join('\n');
}

export function checkpointsTable(items: Checkpoint[]): string {
  return table(
    ['ID', 'TARGET', 'PID', 'CREATED', 'SIZE', 'PINNED', 'VERIFIED', 'SCHEDULE', 'NODE', 'WHERE'],
    items.map((cp) => [
      cp.id,
      cp.target.key,
      String(cp.target.pid),
      formatTime(cp.created),
      formatBytes(cp.bytes),
      cp.pinned ? 'yes' : '',
      cp.verified ? `${cp.verified.ok ? 'ok' : 'FAILED'} ${formatTime(cp.verified.at)}` : '',
      cp.scheduleId ?? '',
      cp.node,
      cp.location,
    ]),
  );
}

export function checkpointDetails(cp: Checkpoint): string {
  const s = cp.stats as Record<string, number | undefined>;
  const rows: [string, string][] = [
    ['id', cp.id],
    ['target', `${cp.target.key} (pid ${cp.target.pid}, uid ${cp.target.uid})`],
    ['command', cp.target.cmdline],
    ['created', formatTime(cp.created)],
    ['node', cp.node],
    ['size', formatBytes(cp.bytes)],
    ['where', cp.location],
    ['pinned', cp.pinned ? 'yes' : 'no'],
    ['verified', cp.verified ? `${cp.verified.ok ? 'ok' : `FAILED: ${cp.verified.reason ?? ''}`} (drill at ${formatTime(cp.verified.at)})` : 'never drilled'],
    ['stopped', cp.leaveRunning ? 'no (left running)' : 'yes'],
    ['frozen', formatMicros(s.frozenTimeUs ?? s.frozenTime)],
    ['took', formatDuration(cp.durationMs)],
    ['criu', cp.criuVersion],
    ['job', cp.jobId],
  ];
  if (cp.scheduleId) rows.push(['schedule', cp.scheduleId]);
  if (Object.keys(cp.options).length) rows.push(['options', JSON.stringify(cp.options)]);
  return rows.map(([k, v]) => `${(k + ':').padEnd(10)} ${v}`).join('\n');
}

export function schedulesTable(items: Schedule[], c: Colors): string {
  return table(
    ['ID', 'CRON', 'TIME ZONE', 'TARGET', 'STATE', 'HEALTH', 'NEXT RUN', 'LAST JOB'],
    items.map((s) => [
      s.id,
      s.cron,
      s.timezone || 'UTC',
      describeTarget(s.target),
      scheduleState(s, c),
      scheduleHealth(s, c),
      formatTime(s.nextRunAt),
      s.state.lastJobId ?? '',
    ]),
  );
}

export function scheduleState(s: Schedule, c: Colors): string {
  if (!s.enabled) return c.dim('disabled');
  if (s.state.paused) return c.yellow('paused');
  return c.green('active');
}

export function scheduleHealth(s: Schedule, c: Colors): string {
  if (s.state.healthy) {
    return s.state.consecutiveFailures ? c.yellow(`healthy (${s.state.consecutiveFailures} failed)`) : c.green('healthy');
  }
  return c.red(`unhealthy (${s.state.consecutiveFailures} failures)`);
}

/** What a `snapshot` (sent after a reset) holds, in a few words. */
export function describeSnapshot(data: unknown): string {
  if (!data || typeof data !== 'object') return String(data);
  return Object.entries(data as Record<string, unknown>)
    .map(([k, v]) => (Array.isArray(v) ? `${v.length} ${k}` : `${k}: ${JSON.stringify(v)}`))
    .join(', ');
}

/** One readable line per feed event, for `ckpt watch`; CRIU's log lines only with `logLines` (else their count). */
export function formatEvent(e: FeedEventMessage, c: Colors, logLines = false): string {
  const d = e.data ?? {};
  const name = e.event.padEnd(18);
  const coloredName = e.event.endsWith('failed') || e.event.endsWith('unhealthy') || e.event === 'job.refused'
    ? c.red(name)
    : e.event.endsWith('completed') || e.event === 'checkpoint.created'
      ? c.green(name)
      : e.event.endsWith('retrying') || e.event.endsWith('stalled') || e.event.endsWith('skipped')
        ? c.yellow(name)
        : e.event === 'job.log'
          ? c.dim(name)
          : c.cyan(name);
  const subject =
    e.scheduleId && (e.event.startsWith('schedule.') || !e.jobId) ? `schedule ${e.scheduleId}` : e.jobId ? `${e.jobType ?? 'job'} ${e.jobId}` : '';
  return [c.dim(formatClock(e.ts)), coloredName, subject, describeEventData(e, logLines)].filter(Boolean).join(' ').trimEnd();
}

function describeEventData(e: FeedEventMessage, logLines: boolean): string {
  const d = e.data ?? {};
  switch (e.event) {
    case 'job.progress':
      return describeProgress(d as JobProgress);
    case 'job.log': {
      const lines: string[] = Array.isArray(d.lines) ? d.lines : [];
      const count = lines.length + (d.dropped ?? 0);
      const summary = `${count} log line${count === 1 ? '' : 's'}${d.dropped ? ` (${d.dropped} not sent live)` : ''}`;
      return logLines ? [summary, ...lines.map((l) => `    ${l}`)].join('\n') : summary;
    }
    case 'job.completed':
      return describeResult(e.jobType, d.result);
    case 'job.failed':
      return `${d.final === false ? '(will retry) ' : ''}${firstLine(String(d.reason ?? ''))}${d.attemptsMade ? ` [attempt ${d.attemptsMade}]` : ''}`;
    case 'job.retrying':
      return [d.attempt ?? d.attemptsMade ? `attempt ${d.attempt ?? d.attemptsMade}` : '', d.delayMs ? `in ${formatDuration(d.delayMs)}` : '', firstLine(String(d.reason ?? ''))]
        .filter(Boolean)
        .join(' ');
    case 'schedule.fired':
      return d.jobId ? `-> job ${d.jobId}` : '';
    case 'job.refused':
    case 'schedule.skipped':
    case 'schedule.unhealthy':
      return String(d.reason ?? '');
    case 'checkpoint.created':
      return [d.checkpointId ?? d.id, e.target ? `target ${e.target}` : '', d.bytes !== undefined ? formatBytes(d.bytes) : '']
        .filter(Boolean)
        .join(' ');
    case 'checkpoint.pruned':
      return [d.checkpointId ?? d.id ?? (Array.isArray(d.ids) ? d.ids.join(',') : ''), d.bytes !== undefined ? `freed ${formatBytes(d.bytes)}` : '', d.reason ?? '']
        .filter(Boolean)
        .join(' ');
    default:
      return e.target ? `target ${e.target}` : '';
  }
}

function firstLine(s: string): string {
  const i = s.indexOf('\n');
  return i < 0 ? s : s.slice(0, i) + ' …';
}
