import type { Redis } from 'ioredis';
import type { Catalog } from '../src/catalog/catalog.js';
import type { CheckpointStore } from '../src/catalog/checkpoint-store.js';
import type { Config } from '../src/config/schema.js';
import type { CriuClient } from '../src/criu/client.js';
import type { queueKeys } from '../src/queue/keys.js';
import type { Signer } from '../src/security/signer.js';
import type { RemoteStore } from '../src/storage/remote-store.js';
import type { TargetPolicy } from '../src/targets/policy.js';
import type { Workloads } from '../src/workloads/workloads.js';
import type { ExitWatcher } from './exit-watcher.js';
import type { JobReporter } from './job-reporter.js';

/** What every processor of a worker shares. */
export interface WorkerContext {
  config: Config;
  /** This worker's node (config.node). */
  node: string;
  criu: CriuClient;
  /** "4.2.1": the CRIU version, for manifests (asked once). */
  criuVersion(): Promise<string>;
  /** The criu binary (config criu.bin, else located once), for what the RPC service cannot do (restore drills). */
  criuBin(): Promise<string>;
  catalog: Catalog;
  store: CheckpointStore;
  /** The bucket (config storage.remote): dumps are uploaded to it, restores of checkpoints not on this node download from it. */
  remote?: RemoteStore;
  policy: TargetPolicy;
  /** Workloads: `{workload}` targets, and the workloads a restore of a workload checkpoint brings back. */
  workloads: Workloads;
  /** Signs what a worker writes back into a job's data (it must verify on the next attempt). */
  signer: Signer;
  /** For locks and semaphores (not BullMQ's connections). */
  redis: Redis;
  keys: ReturnType<typeof queueKeys>;
  /** Restored processes watched for a while after their job completed (restore.exited). */
  exits: ExitWatcher;
}

/** One attempt of one job. */
export interface JobRun {
  /** BullMQ's lock token for the job (needed to move it back to wait or to delayed). */
  token: string;
  reporter: JobReporter;
  /** Aborted when the worker shuts down and the grace period is over (ShutdownAbort: hand the job back), or when an operator cancels the job (CancelAbort). */
  signal: AbortSignal;
}

/** The abort reason CkptWorker uses on shutdown: the processor hands the job back (not a failure). */
export class ShutdownAbort extends Error {
  readonly code = 'ESHUTDOWN';
  constructor() {
    super('worker shutting down');
    this.name = 'ShutdownAbort';
  }
}

/** The abort reason CkptWorker uses when an operator cancels the job: the attempt ends and the job fails (ECANCELLED). */
export class CancelAbort extends Error {
  readonly code = 'ECANCELLED';
  constructor() {
    super('cancelled by an operator');
    this.name = 'CancelAbort';
  }
}
