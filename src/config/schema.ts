import os from 'node:os';
import { z } from 'zod';

/**
 * The one schema for ckpt's configuration (config/*.yaml, CKPT_* variables and CLI flags are merged, then parsed here).
 * Every default is written here, so this file is the configuration reference.
 */

const durationMs = z.number().int().nonnegative();

export const tokenSchema = z.object({
  /** A name for logs; never the token itself. */
  name: z.string().min(1),
  token: z.string().min(16, 'must be at least 16 characters'),
  role: z.enum(['read', 'operate']),
});

export const configSchema = z.object({
  /** This host's name in a multi-host setup: jobs carry the node they must run on. */
  node: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'letters, digits, _ . - only (1-64)').default(os.hostname()),
  redis: z
    .object({
      url: z.string().default('redis://127.0.0.1:6379'),
      /** Key prefix for everything ckpt keeps in Redis (BullMQ queues, catalog, schedules, events). */
      prefix: z.string().default('ckpt'),
    })
    .prefault({}),
  api: z
    .object({
      host: z.string().default('127.0.0.1'),
      port: z.number().int().min(0).max(65535).default(7070),
      /** Required when host is not loopback; on loopback they are optional (no token needed when empty). */
      tokens: z.array(tokenSchema).default([]),
      bodyLimitBytes: z.number().int().positive().default(1024 * 1024),
    })
    .prefault({}),
  storage: z
    .object({
      /** Checkpoints live under <root>/<target>/<checkpointId>/ (folders 0700). */
      root: z.string().default('/var/lib/ckpt/checkpoints'),
      /** /healthz reports unhealthy below this much free space. */
      minFreeBytes: z.number().int().nonnegative().default(1024 * 1024 * 1024),
    })
    .prefault({}),
  criu: z
    .object({
      /** A criu binary (>= 4.2); empty: the system criu when new enough, else the private install from scripts/setup.sh. */
      bin: z.string().default(''),
      /** Socket of a running `criu service`; empty: ckpt starts and supervises its own in runtimeDir. */
      socket: z.string().default(''),
      /** Folder (made 0700) for the managed service's socket and log. */
      runtimeDir: z.string().default('/run/ckpt'),
      /** Extra environment for CRIU, e.g. {CRIU_FAULT: "130"} for criu < 4.2 on VMs without hardware breakpoints. */
      env: z.record(z.string(), z.string()).default({}),
      /** CRIU's log level for jobs (0-4); 4 is what makes failures explain themselves. */
      logLevel: z.number().int().min(0).max(4).default(4),
      /** One CRIU request may take this long before it is abandoned. */
      timeoutMs: durationMs.default(10 * 60 * 1000),
    })
    .prefault({}),
  worker: z
    .object({
      /** Jobs one worker process runs at once. */
      concurrency: z.number().int().min(1).max(64).default(2),
      attempts: z.number().int().min(1).max(100).default(5),
      /** Exponential backoff: delay = baseDelayMs * 2^(attempt-1), +-jitter (0..1 fraction), capped at maxDelayMs. */
      backoff: z
        .object({
          baseDelayMs: durationMs.default(1000),
          maxDelayMs: durationMs.default(60_000),
          jitter: z.number().min(0).max(1).default(0.2),
        })
        .prefault({}),
      /** How long a restore waits for the checkpoint's pid to become free. */
      pidFreeTimeoutMs: durationMs.default(5000),
      /** Finished jobs kept in Redis (BullMQ removeOnComplete / removeOnFail). */
      keepCompleted: z.number().int().nonnegative().default(1000),
      keepFailed: z.number().int().nonnegative().default(5000),
    })
    .prefault({}),
  events: z
    .object({
      /** Events kept in the Redis stream for replay (approximate MAXLEN). */
      maxLen: z.number().int().min(100).default(100_000),
    })
    .prefault({}),
  feed: z
    .object({
      heartbeatMs: durationMs.default(30_000),
      maxPayloadBytes: z.number().int().positive().default(64 * 1024),
      /** A client whose unsent data exceeds this is closed (1008); progress is coalesced before that. */
      maxBufferedBytes: z.number().int().positive().default(4 * 1024 * 1024),
    })
    .prefault({}),
  scheduler: z
    .object({
      enabled: z.boolean().default(true),
      /** Missed ticks older than this are not caught up by the runOnce policy. */
      missedTickToleranceMs: durationMs.default(60 * 60 * 1000),
      /** Consecutive failures after which a schedule is marked unhealthy (it keeps running). */
      unhealthyAfter: z.number().int().min(1).default(3),
    })
    .prefault({}),
  policy: z
    .object({
      /** Only processes of these uids may be targets (empty: any uid). */
      allowUids: z.array(z.number().int().nonnegative()).default([]),
      /** Only processes whose command line matches one of these regexes may be targets (empty: any). */
      allowCommands: z.array(z.string()).default([]),
    })
    .prefault({}),
  /** Schedules seeded into Redis at start-up (see src/scheduler). Validated by the scheduler's schema. */
  schedules: z.array(z.unknown()).default([]),
});

export type Config = z.infer<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;
export type ApiToken = z.infer<typeof tokenSchema>;
