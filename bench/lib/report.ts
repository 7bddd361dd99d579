import { appendFileSync } from 'node:fs';

/**
 * One figure a benchmark measured: the value, and where there is one, the baseline measured in the same run, the
 * ratio value / baseline and the goal (on the ratio when there is a baseline, else on the value).
 */
export interface Figure {
  /** What was measured, e.g. "job enqueue -> completed, 1024 MiB". */
  name: string;
  value: number;
  unit: string;
  baseline?: { name: string; value: number };
  /** The goal the figure is held to, e.g. { atMost: 1.1 }. */
  goal?: { atMost: number } | { atLeast: number };
  /** The machine's 1-minute load average when it was measured (figures taken under load compare only within a run). */
  loadAverage?: number;
}

/** What `record` writes: a figure with its bench's name and the ratio worked out. */
export interface RecordedFigure extends Figure {
  bench: string;
  ratio?: number;
  met?: boolean;
}

/** The file `scripts/run-bench.js` collects figures in (one JSON line each); unset when a bench runs on its own. */
const FIGURES_FILE = process.env.CKPT_BENCH_FIGURES;

/**
 * Keeps one figure for the suite's JSON file and table. The bench still prints its own lines; this is what the run's
 * summary and `bench/results/latest.json` are made of.
 */
export function record(bench: string, figure: Figure): RecordedFigure {
  const ratio = figure.baseline && figure.baseline.value !== 0 ? figure.value / figure.baseline.value : undefined;
  const judged = ratio ?? figure.value;
  const met =
    figure.goal === undefined ? undefined : 'atMost' in figure.goal ? judged <= figure.goal.atMost : judged >= figure.goal.atLeast;
  const recorded: RecordedFigure = { bench, ...figure, ...(ratio === undefined ? {} : { ratio }), ...(met === undefined ? {} : { met }) };
  if (FIGURES_FILE) appendFileSync(FIGURES_FILE, `${JSON.stringify(recorded)}\n`);
  return recorded;
}
