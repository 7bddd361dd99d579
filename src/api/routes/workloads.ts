import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { workloadNameSchema } from '../../targets/spec.js';
import { runWorkloadSchema, type RunWorkloadInput, type WorkloadStream } from '../../workloads/workloads.js';
import { textResponse, workloadListResponse, workloadResponse, workloadStoppedResponse } from '../responses.js';
import { defineRoute, NotFoundError } from '../route.js';

/** What the workload routes need (src/workloads' Workloads, and the catalog for each workload's newest checkpoint). */
export interface WorkloadsBackend {
  run(input: RunWorkloadInput): Promise<{ name: string }>;
  list(): Promise<Array<{ name: string }>>;
  get(name: string): Promise<{ name: string } | null>;
  stop(name: string): Promise<unknown | null>;
  readOutput(name: string, stream: WorkloadStream, offset: number, maxBytes: number): Promise<{ text: string; next: number } | null>;
  /** The newest checkpoint of a workload (by its target key), or null. */
  newestCheckpoint(name: string): Promise<unknown | null>;
}

const byName = z.object({ name: workloadNameSchema });
/** Most output one log request returns; ask again from `next` for more. */
const MAX_LOG_BYTES = 1024 * 1024;

export async function workloadRoutes(app: FastifyInstance, opts: { workloads: WorkloadsBackend }): Promise<void> {
  const { workloads } = opts;
  const withCheckpoint = async <T extends { name: string }>(w: T) => ({ ...w, newestCheckpoint: await workloads.newestCheckpoint(w.name) });

  defineRoute(
    app,
    {
      method: 'POST',
      url: '/api/v1/workloads',
      operationId: 'runWorkload',
      response: workloadResponse,
      errors: [403, 409, 422],
      role: 'operate',
      status: 201,
      summary: 'Start a workload: a command run as the init of its own pid namespace, restorable any number of times',
      body: runWorkloadSchema,
    },
    async ({ body }) => workloads.run(body),
  );

  defineRoute(
    app,
    { method: 'GET', url: '/api/v1/workloads', operationId: 'listWorkloads', response: workloadListResponse, role: 'read', summary: 'List workloads with their state and newest checkpoint' },
    async () => ({
      items: await Promise.all((await workloads.list()).map(withCheckpoint)),
    }),
  );

  defineRoute(
    app,
    { method: 'GET', url: '/api/v1/workloads/:name', operationId: 'getWorkload', response: workloadResponse, errors: [404], role: 'read', summary: 'One workload', params: byName },
    async ({ params }) => {
      const w = await workloads.get(params.name);
      if (!w) throw new NotFoundError('workload', params.name);
      return withCheckpoint(w);
    },
  );

  defineRoute(
    app,
    { method: 'DELETE', url: '/api/v1/workloads/:name', operationId: 'stopWorkload', response: workloadStoppedResponse, errors: [404, 422], role: 'operate', summary: 'Stop a workload (SIGTERM, then SIGKILL after workloads.stopGraceMs) and forget it', params: byName },
    async ({ params }) => {
      const stopped = await workloads.stop(params.name);
      if (!stopped) throw new NotFoundError('workload', params.name);
      return stopped;
    },
  );

  defineRoute(
    app,
    {
      method: 'GET',
      url: '/api/v1/workloads/:name/log',
      operationId: 'getWorkloadOutput',
      response: textResponse,
      errors: [404, 422],
      role: 'read',
      summary: "A workload's output as text from byte `offset` on; the X-Next-Offset header says where to ask next (for --follow)",
      params: byName,
      query: z.object({
        stream: z.enum(['stdout', 'stderr']).default('stdout'),
        offset: z.coerce.number().int().min(0).default(0),
      }),
    },
    async ({ params, query }, reply) => {
      const out = await workloads.readOutput(params.name, query.stream, query.offset, MAX_LOG_BYTES);
      if (!out) throw new NotFoundError('workload', params.name);
      return reply.header('x-next-offset', String(out.next)).type('text/plain; charset=utf-8').send(out.text);
    },
  );
}
