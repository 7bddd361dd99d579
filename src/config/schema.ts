import os from 'node:os';
import { z } from 'zod';
import { byteSizeSchema } from '../common/byte-size.js';
import { isValidRegex } from '../common/validation.js';
import { retentionSchema } from '../retention/schema.js';

/**
 * The one schema for ckpt's configuration (config/*.yaml, CKPT_* variables and CLI flags are merged, then parsed here).
 * Every default is written here, so this file is the configuration reference.
 */

const durationMs = z.number().int().nonnegative();

export const tokenSchema = z.strictObject({
  /** A name for logs; never the token itself. */
  name: z.string().min(1),
  token: z.string().min(16, 'must be at least 16 characters'),
  role: z.enum(['read', 'operate']),
});

/**
 * Where ckpt's Redis is and how to reach it. Every connection (queues, workers, scheduler, feed, catalog, events,
 * metrics) is made from this by src/queue/redis.ts.
 */
export const redisConfigSchema = z
  .strictObject({
    /**
     * `redis://[user:password@]host:port[/db]`; `rediss://` for TLS. The user and password are an ACL user's (or only a
     * password for `requirepass`). With `sentinels`, host and port are not used: the sentinels name the master.
     */
    url: z
      .string()
      .default('redis://127.0.0.1:6379')
      .refine((u) => URL.canParse(u) && /^rediss?:$/.test(new URL(u).protocol), 'must be a redis:// or rediss:// URL'),
    /** Key prefix for everything ckpt keeps in Redis (BullMQ queues, catalog, schedules, events). */
    prefix: z.string().default('ckpt'),
    /** TLS files for a rediss:// URL (PEM): the CA that signed the server's certificate, and a client certificate and key when the server asks for one. */
    tls: z
      .strictObject({
        ca: z.string().min(1).optional(),
        cert: z.string().min(1).optional(),
        key: z.string().min(1).optional(),
        /** The name the server's certificate must carry, when it is not the host of the URL. */
        servername: z.string().min(1).optional(),
      })
      .refine((t) => !t.cert === !t.key, { message: 'cert and key go together', path: ['key'] })
      .prefault({}),
    /** An API request (or any non-blocking command) fails with 503 when Redis has not answered for this long. */
    commandTimeoutMs: z.number().int().min(100).default(5000),
    /** Redis Sentinel: where the sentinels listen; with `name`, ckpt asks them for the master and follows failovers. */
    sentinels: z.array(z.strictObject({ host: z.string().min(1), port: z.number().int().min(1).max(65535) })).default([]),
    /** The master's name in the sentinels' configuration. */
    name: z.string().min(1).optional(),
    /** Credentials of the sentinels themselves (their own `requirepass` / ACL user), when they have any. */
    sentinelUsername: z.string().min(1).optional(),
    sentinelPassword: z.string().min(1).optional(),
  })
  .refine((r) => r.sentinels.length === 0 || r.name !== undefined, { message: 'required with sentinels', path: ['name'] })
  .refine((r) => !(r.tls.ca || r.tls.cert) || r.url.startsWith('rediss:'), {
    message: 'TLS files are given but the URL is not rediss://',
    path: ['url'],
  });

/** `storage.remote`: where checkpoints go besides the local disk, and how they are packed on the way. */
export const remoteStorageSchema = z.strictObject({
  /** The S3 endpoint, e.g. `https://s3.eu-west-1.amazonaws.com` or `http://127.0.0.1:9000` (MinIO). */
  endpoint: z.string().refine((u) => URL.canParse(u) && /^https?:$/.test(new URL(u).protocol), 'must be an http(s):// URL'),
  /** The bucket (3-63 characters, S3's rule); it must exist. */
  bucket: z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'not a bucket name (3-63 of a-z 0-9 . -)'),
  /** Key prefix inside the bucket: objects are `<prefix>/<targetKey>/<checkpointId>/...`. */
  prefix: z.string().regex(/^[A-Za-z0-9_.\/-]*$/, 'letters, digits, _ . - / only').default('ckpt'),
  region: z.string().min(1).default('us-east-1'),
  /** Path-style URLs (`endpoint/bucket/key`): what MinIO, Ceph and most self-hosted stores want. */
  forcePathStyle: z.boolean().default(true),
  /**
   * A JSON file `{accessKeyId, secretAccessKey, sessionToken?}`, owned by root (or ckpt's user) and mode 0600, else
   * refused. Empty: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN) from the environment.
   */
  credentialsFile: z.string().default(''),
  /** How each file is compressed on the way out (see bench/storage.ts for the figures behind the default). */
  compression: z.enum(['none', 'lz4', 'zstd']).default('zstd'),
  /** zstd's level (1 fastest, 19 smallest); 1 was as small as 3 and faster on checkpoints (README, bench/storage). */
  zstdLevel: z.number().int().min(1).max(19).default(1),
  /**
   * Encrypt every object (AES-256-GCM, authenticated per 64 KiB chunk) with the 32-byte key in this file (64 hex
   * digits; owned by root, mode 0600). Empty: objects are not encrypted. Every node needs the same file.
   */
  encryptionKeyFile: z.string().default(''),
  /** Parts of a multipart upload (S3's minimum is 5 MiB). */
  partBytes: byteSizeSchema(5 * 1024 * 1024).default(8 * 1024 * 1024),
});

export const configSchema = z.strictObject({
  /** This host's name in a multi-host setup: jobs carry the node they must run on. */
  node: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'letters, digits, _ . - only (1-64)').default(os.hostname()),
  redis: redisConfigSchema.prefault({}),
  api: z
    .strictObject({
      host: z.string().default('127.0.0.1'),
      port: z.number().int().min(0).max(65535).default(7070),
      /** Required when host is not loopback; on loopback they are optional (no token needed when empty). */
      tokens: z.array(tokenSchema).default([]),
      bodyLimitBytes: byteSizeSchema(1).default(1024 * 1024),
    })
    .prefault({}),
  storage: z
    .strictObject({
      /** Checkpoints live under <root>/<target>/<checkpointId>/ (folders 0700). */
      root: z.string().default('/var/lib/ckpt/checkpoints'),
      /**
       * /healthz reports unhealthy below this much free space, and a dump whose expected size (the target's memory)
       * would leave less is refused before CRIU runs (ESTORAGE_FULL, with both figures).
       */
      minFreeBytes: byteSizeSchema().default(1024 * 1024 * 1024),
      /**
       * Retention for the checkpoints no schedule made (manual dumps, `ckpt dump`), applied per target after each
       * such checkpoint and at start: `{keepLast, maxAge, maxTotalBytes}` as a schedule's retention. Pinned and
       * in-use checkpoints are never removed, nor a target's newest. Unset: such checkpoints are kept until deleted.
       */
      retention: retentionSchema.optional(),
      /**
       * Flush a checkpoint's files to disk before it is listed, so it survives a crash or power loss whole.
       * false trades that for speed (measured here: ~5 ms for a small process, ~30 ms per 64 MiB).
       */
      sync: z.boolean().default(true),
      /**
       * The root is one shared filesystem mounted at the same path on every node (NFS, CephFS, Lustre): any node
       * restores any checkpoint in place, without copying. Every node of the deployment must say the same.
       */
      shared: z.boolean().default(false),
      /**
       * An S3-compatible bucket (AWS S3, MinIO, Ceph RGW) every checkpoint is uploaded to after its local commit, so it
       * outlives its node and restores on any node. Absent: checkpoints stay on the local disk only.
       */
      remote: remoteStorageSchema.optional(),
      /** With `remote`: keep the local copy after the upload (false: the bucket holds the only copy once uploaded). */
      keepLocal: z.boolean().default(true),
      /**
       * With `remote`: local copies of uploaded checkpoints (made here or downloaded for a restore) are dropped, oldest
       * first, while together they exceed this many bytes; never one in use. 0: no bound.
       */
      localCacheBytes: byteSizeSchema().default(0),
    })
    .prefault({}),
  workloads: z
    .strictObject({
      /** Workloads (`ckpt run`) keep their output here: <root>/<name>/stdout.log, stderr.log, status (folders 0700, files 0600). */
      root: z.string().default('/var/lib/ckpt/workloads'),
      /** Stopping a workload (DELETE, replace): SIGTERM, then SIGKILL after this long. */
      stopGraceMs: durationMs.default(5000),
      /** How often a worker looks at the workloads of its node, to announce those that exited (workload.exited). */
      watchIntervalMs: durationMs.min(100).default(1000),
    })
    .prefault({}),
  criu: z
    .strictObject({
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
      /**
       * How CRIU locks the network for jobs with tcpEstablished (they may override it). nftables works in-process;
       * iptables needs the iptables program, which many hosts no longer have. Other jobs leave CRIU's default, which
       * locks nothing when there is no connection to keep (nftables would cost ~90 ms per dump for nothing).
       */
      networkLock: z.enum(['iptables', 'nftables', 'skip']).default('nftables'),
      /** One CRIU request may take this long before it is abandoned. */
      timeoutMs: durationMs.default(10 * 60 * 1000),
    })
    .prefault({}),
  worker: z
    .strictObject({
      /** Jobs one worker process runs at once. */
      concurrency: z.number().int().min(1).max(64).default(2),
      attempts: z.number().int().min(1).max(100).default(5),
      /** Exponential backoff: delay = baseDelayMs * 2^(attempt-1), +-jitter (0..1 fraction), capped at maxDelayMs. */
      backoff: z
        .strictObject({
          baseDelayMs: durationMs.default(1000),
          maxDelayMs: durationMs.default(60_000),
          jitter: z.number().min(0).max(1).default(0.2),
        })
        .prefault({}),
      /**
       * How long a restore waits for a pid it needs while a dying process holds it (a zombie not reaped yet, a
       * process being killed, the original a replace stopped). A pid held by a live process fails the restore at once.
       */
      pidFreeTimeoutMs: durationMs.default(5000),
      /** A restore with replace: true sends the running original's tree SIGTERM, and SIGKILL after this long. */
      replaceGraceMs: durationMs.default(5000),
      /** After a restore, its process is watched this long; an exit within it is published as restore.exited. */
      exitWatchMs: durationMs.default(60_000),
      /** A restore drill's tree must still be whole (every task there, stopped) this long after CRIU restored it. */
      drillHoldMs: durationMs.default(1000),
      /** Finished jobs kept in Redis (BullMQ removeOnComplete / removeOnFail). */
      keepCompleted: z.number().int().nonnegative().default(1000),
      keepFailed: z.number().int().nonnegative().default(5000),
      /**
       * A worker renews the lock of each job it runs; a job whose worker died (lock not renewed for this long) is
       * found by the next stalled check (every stalledIntervalMs) and handed to another worker.
       */
      lockDurationMs: durationMs.min(1000).default(30_000),
      stalledIntervalMs: durationMs.min(500).default(30_000),
      /** Times a job may be taken back from a dead worker before it fails. */
      maxStalledCount: z.number().int().min(0).default(2),
      /** A dump's lock on its target (one dump of a process at a time) lapses this long after its holder died. */
      targetLeaseMs: durationMs.min(1000).default(15_000),
      /** A dump that finds its target busy (another dump, or a CRIU still holding it) waits this long, then the attempt fails and is retried. */
      busyWaitMs: durationMs.default(30_000),
      /** On SIGTERM, running jobs get this long to finish; then they are aborted and handed back to the queue. */
      shutdownGraceMs: durationMs.default(30_000),
      /** CRIU log lines per job.log event at most (more in one batch: the rest are counted as dropped). */
      logLinesPerEvent: z.number().int().min(1).max(1000).default(50),
      /**
       * A dump's job log (in Redis) keeps CRIU's warning and error lines and this many of its last lines; the whole log
       * stays in the checkpoint folder (dump.log, GET /api/v1/checkpoints/:id/log).
       */
      logTailLines: z.number().int().min(0).max(100_000).default(200),
      /** job.progress events (and BullMQ progress updates) per job at most this often, except on a stage change. */
      progressIntervalMs: durationMs.default(250),
      /**
       * A worker announces its node in Redis every third of this; a node whose workers have all stopped announcing
       * for this long is gone: jobs for it are refused (422 listing the live nodes) instead of waiting forever.
       */
      presenceTtlMs: durationMs.min(1000).default(15_000),
    })
    .prefault({}),
  events: z
    .strictObject({
      /** Events kept in the Redis stream for replay (approximate MAXLEN). */
      maxLen: z.number().int().min(100).default(100_000),
    })
    .prefault({}),
  feed: z
    .strictObject({
      heartbeatMs: durationMs.default(30_000),
      maxPayloadBytes: byteSizeSchema(1).default(64 * 1024),
      /**
       * A client whose unsent data exceeds this is closed (1008); progress is coalesced before that.
       * The feed's worst-case memory is clients x this, so it is kept small.
       */
      maxBufferedBytes: byteSizeSchema(1).default(1024 * 1024),
    })
    .prefault({}),
  scheduler: z
    .strictObject({
      enabled: z.boolean().default(true),
      /** Missed ticks older than this are not caught up by the runOnce policy. */
      missedTickToleranceMs: durationMs.default(60 * 60 * 1000),
      /** Consecutive failures after which a schedule is marked unhealthy (it keeps running). */
      unhealthyAfter: z.number().int().min(1).default(3),
      /** A scheduler that claimed a tick and has not finished it this long after is presumed dead: another takes the tick over. */
      claimLeaseMs: durationMs.min(500).default(15_000),
      /**
       * How long a tick's claim is kept, so that tick is never handled twice. No scheduler tries a tick older than
       * missedTickToleranceMs, so it must exceed that (plus clock skew). Each claim takes ~330 bytes of Redis memory:
       * a schedule every minute keeps ttl/60 s of them (2 h: 120, ~40 KB).
       */
      tickClaimTtlMs: durationMs.default(2 * 60 * 60 * 1000),
      /** How often each scheduler looks for ticks whose owner died before finishing them. */
      sweepIntervalMs: durationMs.min(100).default(2000),
      /** How often each scheduler checks whether it missed a change (pub/sub brings them at once) and then re-reads all schedules. */
      reloadIntervalMs: durationMs.min(500).default(30_000),
      /** Lease of the one scheduler that follows the event stream (retention, schedule health); others take over when it lapses. */
      eventsLeaseMs: durationMs.min(500).default(10_000),
      /**
       * In a process that runs the scheduler: how far (%) past its live data the old generation may fill with garbage
       * before a full collection (V8's heap growing factor; 0: V8's own, up to 300). See src/scheduler/heap-growth.ts.
       */
      heapGrowthPercent: z.number().int().min(0).max(300).default(30),
    })
    .refine((s) => s.tickClaimTtlMs > s.missedTickToleranceMs, {
      message: 'tickClaimTtlMs must be longer than missedTickToleranceMs (a caught-up tick must still find its claim)',
      path: ['tickClaimTtlMs'],
    })
    .prefault({}),
  policy: z
    .strictObject({
      /** Only processes of these uids may be targets (empty: any uid). */
      allowUids: z.array(z.number().int().nonnegative()).default([]),
      /** Only processes whose command line matches one of these regexes may be targets (empty: any). */
      allowCommands: z.array(z.string().refine(isValidRegex, 'not a valid regular expression')).default([]),
    })
    .prefault({}),
  security: z
    .strictObject({
      /**
       * The key that signs every job (API, scheduler) and every checkpoint manifest (worker, at commit); workers refuse
       * jobs and restores whose signature does not verify. Made (0600) at first start when missing; every node of a
       * deployment needs the same file. Empty: `job.key` in the storage root's parent (`/var/lib/ckpt/job.key`).
       */
      jobKeyFile: z.string().default(''),
    })
    .prefault({}),
  /** Schedules seeded into Redis at start-up (see src/scheduler). Validated by the scheduler's schema. */
  schedules: z.array(z.unknown()).default([]),
});

export type Config = z.infer<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;
export type ApiToken = z.infer<typeof tokenSchema>;
