/**
 * Node flags every way of starting `ckpt up` passes to node (deploy/systemd/ckpt.service, the Dockerfile's entry point,
 * `npm start`; test/deploy checks they agree). Unlike scheduler.heapGrowthPercent they cannot be set once running:
 * V8 sizes the young generation when the process starts.
 *
 * `--max-semi-space-size=2`: the young generation stays at 2 x 2 MiB. By default V8 grows it to 2 x 16 MiB under the
 * scheduler's steady allocation; with 2 MiB the ticks cost about the same CPU (1 MiB cost ~20% more: scavenges too
 * often). Measured with 10,000 schedules: see README, Performance, "The scheduler".
 */
export const SERVICE_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=2'];

/**
 * Environment every way of starting `ckpt up` gives node (the same three places; libuv reads it before any of ckpt's
 * code runs, so it cannot be set from inside).
 *
 * `UV_THREADPOOL_SIZE=16`: a dump's commit flushes every file of the checkpoint at once, and each `fdatasync` holds
 * one of libuv's threads for as long as the disk takes; with the default 4 the reads that hash the images waited
 * behind them (a small dump's seal: 17.5 ms with 4 threads, 14-15 ms with 16, same run; README, Performance).
 */
export const SERVICE_ENV: Readonly<Record<string, string>> = { UV_THREADPOOL_SIZE: '16' };
