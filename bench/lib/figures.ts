/** Figures the benchmarks print: medians of samples, and milliseconds in a fixed-width column. */

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export function fmtMs(ms: number, width = 10): string {
  return `${ms.toFixed(1)} ms`.padStart(width);
}

/** Milliseconds since `started` (process.hrtime.bigint()). */
export function msSince(started: bigint): number {
  return Number(process.hrtime.bigint() - started) / 1e6;
}
