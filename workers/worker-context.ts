import type { Redis } from 'ioredis';
import type { Catalog } from '../src/catalog/catalog.js';
import type { CheckpointStore } from '../src/catalog/checkpoint-store.js';
import type { Config } from '../src/config/schema.js';
import type { CriuClient } from '../src/criu/client.js';
import type { queueKeys } from '../src/queue/keys.js';
import type { TargetPolicy } from '../src/targets/policy.js';
import type { JobReporter } from './job-reporter.js';

/** What every processor of a worker shares. */
export interface WorkerContext {
  config: Config;
  /** This worker's node (config.node). */
  node: string;
  criu: CriuClient;
  /** "4.2.1": the CRIU version, for manifests (asked once). */
  criuVersion(): Promise<string>;
  catalog: Catalog;
  store: CheckpointStore;
  policy: TargetPolicy;
  /** For locks and semaphores (not BullMQ's connections). */
  redis: Redis;
  keys: ReturnType<typeof queueKeys>;
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
