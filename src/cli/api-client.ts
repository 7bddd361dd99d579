import type { ValidationIssue } from '../common/validation.js';

import type { Checkpoint as CatalogCheckpoint, DeleteResult } from '../catalog/catalog.js';
import type { MigrationEnqueued } from '../queue/job-queue.js';
import type { BatchRestoreJobInput, DumpJobInput, MigrationInput, RestoreJobInput } from '../queue/schemas.js';
import type { JobProgress, JobResult, JobView } from '../queue/job-view.js';
import type { ScheduleInput } from '../scheduler/schema.js';
import type { RunTime, ScheduleView } from '../scheduler/view.js';
import type { TargetSpec } from '../targets/spec.js';
import type { RunWorkloadInput, WorkloadView } from '../workloads/workloads.js';

/**
 * A small typed client for ckpt's HTTP API (/api/v1), on Node's global fetch.
 * The request and response types are the server's own (type-only imports: nothing of the server is loaded).
 */

export type { JobProgress, JobResult, TargetSpec };
export type Job = JobView;
export type Checkpoint = CatalogCheckpoint;
export type DumpRequest = DumpJobInput;
export type RestoreRequest = RestoreJobInput;
export type RestoreBatchRequest = BatchRestoreJobInput;
export type MigrationRequest = MigrationInput;
export type CriuOptions = NonNullable<DumpJobInput['criu']>;
export type ScheduleRequest = ScheduleInput;
/** A schedule as the API shows it: its definition, its run-time state and the next run. */
export type Schedule = ScheduleView;
export type Workload = WorkloadView & { newestCheckpoint?: CatalogCheckpoint | null };
export type { RunTime };

export interface ListQuery {
  [key: string]: string | number | undefined;
}

/** The API answered with an error status. `issues` is set for 400 validation errors. */
export class ApiError extends Error {
  readonly code: string;
  constructor(
    readonly status: number,
    code: string | undefined,
    message: string,
    readonly issues: ValidationIssue[] = [],
  ) {
    super(message);
    this.name = 'ApiError';
    this.code = code ?? `http_${status}`;
  }
}

/** The API could not be reached at all (refused, DNS, reset). */
export class ApiUnreachableError extends Error {
  readonly code = 'EUNREACHABLE';
  constructor(
    readonly url: string,
    cause: unknown,
  ) {
    super(`cannot reach the API at ${url}: ${describeCause(cause)}`);
    this.name = 'ApiUnreachableError';
  }
}

export interface ApiClientOptions {
  /** Base URL of the API server, e.g. http://127.0.0.1:7070 (no /api/v1). */
  url: string;
  /** Sent as `Authorization: Bearer <token>` when set. */
  token?: string;
  /** Abandon a request after this long. Default 30 s. */
  timeoutMs?: number;
}

export class ApiClient {
  readonly baseUrl: string;
  private readonly token?: string;
  private readonly timeoutMs: number;

  constructor(options: ApiClientOptions) {
    this.baseUrl = options.url.replace(/\/+$/, '');
    this.token = options.token || undefined;
    this.timeoutMs = options.timeoutMs ?? 30_000;
  }

  /** /healthz; answers (rather than throws) when unhealthy (503). */
  health(): Promise<{ status: string; checks: Record<string, { ok: boolean; [detail: string]: unknown }> }> {
    return this.request('GET', '/healthz', { acceptStatuses: [503] });
  }

  createDump(body: DumpRequest): Promise<{ jobId: string }> {
    return this.request('POST', '/api/v1/dumps', { body });
  }

  createRestore(body: RestoreRequest): Promise<{ jobId: string }> {
    return this.request('POST', '/api/v1/restores', { body });
  }

  createRestoreBatch(body: RestoreBatchRequest): Promise<{ batchId: string; jobIds: string[] }> {
    return this.request('POST', '/api/v1/restores/batch', { body });
  }

  createMigration(body: MigrationRequest): Promise<MigrationEnqueued> {
    return this.request('POST', '/api/v1/migrations', { body });
  }

  listJobs(query: { state?: string; type?: string; schedule?: string; limit?: number } = {}): Promise<{ items: Job[] }> {
    return this.request('GET', '/api/v1/jobs', { query });
  }

  getJob(id: string): Promise<Job> {
    return this.request('GET', `/api/v1/jobs/${enc(id)}`);
  }

  /** Cancels a job: removed when it was waiting or delayed, aborting when it was active. */
  cancelJob(id: string): Promise<{ id: string; outcome: 'removed' | 'aborting' }> {
    return this.request('DELETE', `/api/v1/jobs/${enc(id)}`);
  }

  /** Runs a failed job again. */
  retryJob(id: string): Promise<{ jobId: string; node: string }> {
    return this.request('POST', `/api/v1/jobs/${enc(id)}/retry`);
  }

  /** CRIU's log of the job, as text. */
  getJobLog(id: string): Promise<string> {
    return this.request('GET', `/api/v1/jobs/${enc(id)}/log`, { text: true });
  }

  listCheckpoints(query: { target?: string; schedule?: string; limit?: number } = {}): Promise<{ items: Checkpoint[] }> {
    return this.request('GET', '/api/v1/checkpoints', { query });
  }

  getCheckpoint(id: string): Promise<Checkpoint> {
    return this.request('GET', `/api/v1/checkpoints/${enc(id)}`);
  }

  /** CRIU's whole dump log of the checkpoint, as text (from its node: the service asked must be that node's). */
  getCheckpointLog(id: string): Promise<string> {
    return this.request('GET', `/api/v1/checkpoints/${enc(id)}/log`, { text: true });
  }

  deleteCheckpoint(id: string, force = false): Promise<DeleteResult> {
    return this.request('DELETE', `/api/v1/checkpoints/${enc(id)}`, { query: { force: force ? 'true' : undefined } });
  }

  verifyCheckpoint(id: string): Promise<{ jobId: string; node: string }> {
    return this.request('POST', `/api/v1/checkpoints/${encodeURIComponent(id)}/verify`);
  }

  pinCheckpoint(id: string, pinned: boolean): Promise<Checkpoint> {
    return this.request('POST', `/api/v1/checkpoints/${enc(id)}/${pinned ? 'pin' : 'unpin'}`);
  }

  runWorkload(body: RunWorkloadInput): Promise<Workload> {
    return this.request('POST', '/api/v1/workloads', { body });
  }

  listWorkloads(): Promise<{ items: Workload[] }> {
    return this.request('GET', '/api/v1/workloads');
  }

  getWorkload(name: string): Promise<Workload> {
    return this.request('GET', `/api/v1/workloads/${enc(name)}`);
  }

  stopWorkload(name: string): Promise<{ name: string; outcome: string }> {
    return this.request('DELETE', `/api/v1/workloads/${enc(name)}`);
  }

  /** A workload's output from byte `offset` on, and where to ask next. */
  async workloadOutput(name: string, stream: 'stdout' | 'stderr', offset: number): Promise<{ text: string; next: number }> {
    const res = await this.raw('GET', `/api/v1/workloads/${enc(name)}/log`, { stream, offset });
    return { text: res.text, next: Number(res.headers.get('x-next-offset') ?? offset) };
  }

  listSchedules(): Promise<{ items: Schedule[] }> {
    return this.request('GET', '/api/v1/schedules');
  }

  getSchedule(id: string): Promise<Schedule> {
    return this.request('GET', `/api/v1/schedules/${enc(id)}`);
  }

  createSchedule(body: ScheduleRequest): Promise<Schedule> {
    return this.request('POST', '/api/v1/schedules', { body });
  }

  deleteSchedule(id: string): Promise<{ id: string; deleted: boolean }> {
    return this.request('DELETE', `/api/v1/schedules/${enc(id)}`);
  }

  /** pause or resume: the schedule as it is now. */
  setSchedulePaused(id: string, paused: boolean): Promise<Schedule> {
    return this.request('POST', `/api/v1/schedules/${enc(id)}/${paused ? 'pause' : 'resume'}`);
  }

  /** Enqueues one dump of the schedule's target now. */
  triggerSchedule(id: string): Promise<{ jobId: string }> {
    return this.request('POST', `/api/v1/schedules/${enc(id)}/trigger`);
  }

  nextRuns(id: string, n?: number, from?: string): Promise<{ id: string; cron: string; timezone: string; dst: string; items: RunTime[] }> {
    return this.request('GET', `/api/v1/schedules/${enc(id)}/next-runs`, { query: { n, from } });
  }

  async request<T>(
    method: string,
    path: string,
    options: { query?: ListQuery; body?: unknown; text?: boolean; acceptStatuses?: number[] } = {},
  ): Promise<T> {
    const { text: raw, status } = await this.raw(method, path, options.query, options);
    if (options.text) return raw as T;
    if (!raw) return undefined as T;
    try {
      return JSON.parse(raw) as T;
    } catch {
      throw new ApiError(status, 'bad_response', `${method} ${path}: the server answered ${status} with something that is not JSON`);
    }
  }

  /** One HTTP exchange: the answer's text, status and headers; an error status (unless accepted) throws ApiError. */
  private async raw(
    method: string,
    path: string,
    query: ListQuery = {},
    options: { body?: unknown; text?: boolean; acceptStatuses?: number[] } = { text: true },
  ): Promise<{ text: string; status: number; headers: Headers }> {
    const url = new URL(this.baseUrl + path);
    for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== '') url.searchParams.set(k, String(v));
    const headers: Record<string, string> = { accept: options.text ? 'text/plain, application/json' : 'application/json' };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    if (options.body !== undefined) headers['content-type'] = 'application/json';
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers,
        body: options.body === undefined ? undefined : JSON.stringify(options.body),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      throw new ApiUnreachableError(this.baseUrl, err);
    }
    const text = await res.text();
    if (!res.ok && !options.acceptStatuses?.includes(res.status)) throw errorFromResponse(res, text);
    return { text, status: res.status, headers: res.headers };
  }
}

function errorFromResponse(res: Response, raw: string): ApiError {
  let body: { error?: unknown; message?: unknown; issues?: unknown } = {};
  try {
    body = JSON.parse(raw);
  } catch {
    // Not JSON (a proxy's error page, say): the status line says enough.
  }
  const code = typeof body.error === 'string' ? body.error : undefined;
  const message = typeof body.message === 'string' && body.message ? body.message : `${res.status} ${res.statusText}`.trim();
  const issues = Array.isArray(body.issues)
    ? body.issues.map((i: { field?: unknown; reason?: unknown }) => ({ field: String(i.field ?? ''), reason: String(i.reason ?? '') }))
    : [];
  return new ApiError(res.status, code, message, issues);
}

function enc(id: string): string {
  return encodeURIComponent(id);
}

/** fetch wraps the socket error in `cause`; the code (ECONNREFUSED...) is what a user can act on. */
function describeCause(err: unknown): string {
  const e = err as { name?: string; message?: string; cause?: { code?: string; message?: string } };
  if (e?.name === 'TimeoutError') return 'timed out';
  return e?.cause?.code ?? e?.cause?.message ?? e?.message ?? String(err);
}
