import v8 from 'node:v8';

/**
 * Lets the old generation of this process fill up to `percent` % past the data a full collection left live, and no
 * further, before the next one (config scheduler.heapGrowthPercent; 0: V8's own factor). Under the scheduler's steady
 * allocation (a few objects per tick, many ticks a second) V8's own factor reaches ~4x: at 10,000 schedules ~30 MiB live
 * became ~100-130 MiB of heap, and RSS followed. A factor, not a cap: the limit still grows with the live data, so a
 * process with more schedules gets more heap, never an out-of-memory crash. V8 reads the flag at each collection,
 * so setting it while running takes effect at the next one. It is process-wide: in `ckpt up` the API, feed and
 * worker share it.
 */
export function limitHeapGrowth(percent: number): void {
  if (percent > 0) v8.setFlagsFromString(`--heap-growing-percent=${percent}`);
}
