import cliProgress from 'cli-progress';
import type { JobProgress } from './api-client.js';
import { describeProgress, formatMiB, type Colors } from './format.js';

/** How `--wait` shows jobs while they run: bars on a terminal, stage lines when piped, nothing with --json. */
export interface ProgressView {
  add(jobId: string, label: string): void;
  update(jobId: string, change: { state?: string; progress?: Partial<JobProgress> }): void;
  /** A line about one job (a retry, a stall) printed above the bars. */
  note(jobId: string, text: string): void;
  /** A line about the whole wait (the feed reconnecting). */
  log(text: string): void;
  stop(): void;
}

export function createProgressView(kind: 'bars' | 'lines' | 'none', stream: NodeJS.WriteStream, c: Colors): ProgressView {
  if (kind === 'bars') return barsView(stream);
  if (kind === 'lines') return linesView(stream, c);
  return { add() {}, update() {}, note() {}, log() {}, stop() {} };
}

interface Shown {
  label: string;
  state: string;
  progress: Partial<JobProgress>;
}

/** One cli-progress bar per job: label, state, bar, percent, stage, MiB written / expected. */
function barsView(stream: NodeJS.WriteStream): ProgressView {
  const multi = new cliProgress.MultiBar(
    {
      stream,
      format: '{label} {state} |{bar}| {percentage}% {stage} {bytes}',
      // What is left of the line after label, state, stage and bytes (about 60 columns).
      barsize: Math.max(10, Math.min(40, (stream.columns ?? 100) - 62)),
      hideCursor: true,
      clearOnComplete: false,
      stopOnComplete: false,
      autopadding: true,
      fps: 10,
    },
    cliProgress.Presets.shades_classic,
  );
  const bars = new Map<string, { bar: cliProgress.SingleBar; shown: Shown }>();
  const payload = (s: Shown) => ({
    label: s.label,
    state: s.state.padEnd(9),
    stage: s.progress.stage ?? '',
    bytes: s.progress.bytesWritten || s.progress.bytesExpected ? `${formatMiB(s.progress.bytesWritten)}/${formatMiB(s.progress.bytesExpected)} MiB` : '',
  });
  return {
    add(jobId, label) {
      const shown: Shown = { label, state: 'queued', progress: {} };
      bars.set(jobId, { bar: multi.create(100, 0, payload(shown)), shown });
    },
    update(jobId, change) {
      const b = bars.get(jobId);
      if (!b) return;
      if (change.state) b.shown.state = change.state;
      if (change.progress) b.shown.progress = { ...b.shown.progress, ...change.progress };
      const percent = b.shown.state === 'completed' ? 100 : (b.shown.progress.percent ?? 0);
      b.bar.update(Math.max(0, Math.min(100, Math.round(percent))), payload(b.shown));
    },
    note(jobId, text) {
      const label = bars.get(jobId)?.shown.label ?? `job ${jobId}`;
      multi.log(`${label}: ${text}\n`);
    },
    log(text) {
      multi.log(text + '\n');
    },
    stop() {
      multi.stop();
    },
  };
}

/** Plain lines for logs and pipes: one when a job changes state or stage. */
function linesView(stream: NodeJS.WriteStream, c: Colors): ProgressView {
  const jobs = new Map<string, Shown>();
  const write = (s: Shown, text: string) => stream.write(`${c.dim(s.label + ':')} ${text}\n`);
  return {
    add(jobId, label) {
      jobs.set(jobId, { label, state: 'queued', progress: {} });
    },
    update(jobId, change) {
      const s = jobs.get(jobId);
      if (!s) return;
      if (change.state && change.state !== s.state) {
        s.state = change.state;
        write(s, change.state);
      }
      if (change.progress) {
        const stageChanged = change.progress.stage !== undefined && change.progress.stage !== s.progress.stage;
        s.progress = { ...s.progress, ...change.progress };
        if (stageChanged) write(s, `stage ${describeProgress(s.progress)}`);
      }
    },
    note(jobId, text) {
      const s = jobs.get(jobId);
      if (s) write(s, text);
    },
    log(text) {
      stream.write(c.dim(text) + '\n');
    },
    stop() {},
  };
}
