import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { CancelResult, ListJobsFilter, MigrationEnqueued } from '../../queue/job-queue.js';
import { isCheckpointId } from '../../common/checkpoint-id.js';
import { withoutCommandLine, type JobView } from '../../queue/job-view.js';
import type { Principal } from '../../security/auth.js';
import { JOB_TYPES } from '../../common/job-kinds.js';
import { batchRestoreJobSchema, dumpJobSchema, migrationSchema, restoreJobSchema, type DumpJob, type Migration } from '../../queue/schemas.js';
import { batchEnqueuedResponse, cancelResponse, enqueuedResponse, jobListResponse, jobResponse, migrationEnqueuedResponse, textResponse } from '../responses.js';
import { defineRoute, NotFoundError } from '../route.js';

/** What the job routes need from the queue (src/queue's JobQueue provides it). */
export interface JobsBackend {
  /** Gets the body as dumpJobSchema parsed it. */
  enqueueDump(input: DumpJob): Promise<{ jobId: string; node: string }>;
  enqueueRestore(input: unknown): Promise<{ jobId: string; node: string }>;
  enqueueBatchRestore(input: unknown): Promise<{ batchId: string; jobIds: string[] }>;
  enqueueVerify(input: unknown): Promise<{ jobId: string; node: string }>;
  /** Gets the body as migrationSchema parsed it. */
  enqueueMigration(input: Migration): Promise<MigrationEnqueued>;
  getJob(id: string): Promise<JobView | null>;
  listJobs(filter: ListJobsFilter): Promise<JobView[]>;
  getJobLog(id: string): Promise<string | null>;
  cancelJob(id: string): Promise<CancelResult | null>;
  retryJob(id: string): Promise<{ jobId: string; node: string } | null>;
}

const jobId = z.object({ id: z.string().min(1).max(200) });

export async function jobRoutes(app: FastifyInstance, opts: { jobs: JobsBackend }): Promise<void> {
  const { jobs } = opts;

  defineRoute(app, { method: 'POST', url: '/api/v1/dumps', operationId: 'createDump', response: enqueuedResponse, errors: [403, 422], role: 'operate', status: 202, summary: 'Enqueue a dump job', body: dumpJobSchema }, async ({ body }) =>
    jobs.enqueueDump(body),
  );

  defineRoute(
    app,
    { method: 'POST', url: '/api/v1/restores', operationId: 'createRestore', response: enqueuedResponse, errors: [404, 409, 422], role: 'operate', status: 202, summary: 'Enqueue a restore of a checkpoint', body: restoreJobSchema },
    async ({ body }) => jobs.enqueueRestore(body),
  );

  defineRoute(
    app,
    { method: 'POST', url: '/api/v1/restores/batch', operationId: 'createRestoreBatch', response: batchEnqueuedResponse, errors: [404, 409, 422], role: 'operate', status: 202, summary: 'Enqueue a batch restore (one child job per checkpoint)', body: batchRestoreJobSchema },
    async ({ body }) => jobs.enqueueBatchRestore(body),
  );

  defineRoute(
    app,
    {
      method: 'POST',
      url: '/api/v1/migrations',
      operationId: 'createMigration',
      response: migrationEnqueuedResponse,
      errors: [403, 422],
      role: 'operate',
      status: 202,
      summary: 'Enqueue a migration: dump and stop the process on its node, then restore it on toNode (one job chain)',
      body: migrationSchema,
    },
    async ({ body }) => jobs.enqueueMigration(body),
  );

  defineRoute(
    app,
    {
      method: 'POST',
      url: '/api/v1/checkpoints/:id/verify',
      operationId: 'verifyCheckpoint',
      response: enqueuedResponse,
      errors: [404, 422],
      role: 'operate',
      status: 202,
      summary: 'Enqueue a restore drill of a checkpoint: restored stopped in a throwaway pid namespace, checked whole, removed',
      params: jobId,
    },
    async ({ params }) => {
      // Like the other /checkpoints/:id routes: an id that names no checkpoint is a 404, whatever its shape.
      if (!isCheckpointId(params.id)) throw new NotFoundError('checkpoint', params.id);
      return jobs.enqueueVerify({ checkpointId: params.id });
    },
  );

  defineRoute(
    app,
    {
      method: 'GET',
      url: '/api/v1/jobs',
      operationId: 'listJobs',
      response: jobListResponse,
      role: 'read',
      summary: 'List jobs, newest first',
      query: z.object({
        state: z.enum(['waiting', 'delayed', 'active', 'completed', 'failed', 'waiting-children', 'prioritized']).optional(),
        type: z.enum(JOB_TYPES).optional(),
        schedule: z.string().min(1).max(64).optional(),
        limit: z.coerce.number().int().min(1).max(5000).default(100),
      }),
    },
    async ({ query, raw }) => {
      const items = await jobs.listJobs({ state: query.state, type: query.type, scheduleId: query.schedule, limit: query.limit });
      return { items: items.map((job) => forCaller(raw, job)) };
    },
  );

  defineRoute(app, { method: 'GET', url: '/api/v1/jobs/:id', operationId: 'getJob', response: jobResponse, role: 'read', summary: 'One job: state, progress, result or failure reason', params: jobId }, async ({ params, raw }) => {
    const job = await jobs.getJob(params.id);
    if (!job) throw new NotFoundError('job', params.id);
    return forCaller(raw, job);
  });

  defineRoute(app, { method: 'GET', url: '/api/v1/jobs/:id/log', operationId: 'getJobLog', response: textResponse, role: 'read', summary: "CRIU's log of a job, as text", params: jobId }, async ({ params }, reply) => {
    const log = await jobs.getJobLog(params.id);
    if (log === null) throw new NotFoundError('job', params.id);
    return reply.type('text/plain; charset=utf-8').send(log);
  });

  defineRoute(
    app,
    {
      method: 'DELETE',
      url: '/api/v1/jobs/:id',
      operationId: 'cancelJob',
      alsoStatus: 202,
      response: cancelResponse,
      errors: [409],
      role: 'operate',
      summary: 'Cancel a job: a waiting or delayed one is removed (200), an active one is aborted by its worker (202; it ends failed, code ECANCELLED)',
      params: jobId,
    },
    async ({ params }, reply) => {
      const result = await jobs.cancelJob(params.id);
      if (!result) throw new NotFoundError('job', params.id);
      return reply.code(result.outcome === 'aborting' ? 202 : 200).send(result);
    },
  );

  defineRoute(
    app,
    { method: 'POST', url: '/api/v1/jobs/:id/retry', operationId: 'retryJob', response: enqueuedResponse, errors: [409, 422], role: 'operate', status: 202, summary: 'Run a failed (or cancelled) job again from its first attempt', params: jobId },
    async ({ params }) => {
      const result = await jobs.retryJob(params.id);
      if (!result) throw new NotFoundError('job', params.id);
      return result;
    },
  );
}

/** A job as the caller may see it: the target's command line only for the operate role. */
function forCaller(raw: unknown, job: JobView): JobView {
  return (raw as { principal: Principal }).principal.role === 'operate' ? job : withoutCommandLine(job);
}
