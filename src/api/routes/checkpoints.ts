import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { checkpointDeletedResponse, checkpointListResponse, checkpointResponse, textResponse } from '../responses.js';
import { defineRoute } from '../route.js';

/** What the checkpoint routes need from the catalog (src/catalog's Catalog provides it; unknown ids throw code ECHECKPOINT_NOT_FOUND). */
export interface CheckpointsBackend {
  list(filter: { targetKey?: string; scheduleId?: string; limit?: number; offset?: number }): Promise<unknown[]>;
  get(id: string): Promise<unknown>;
  delete(id: string, opts?: { force?: boolean }): Promise<unknown>;
  pin(id: string): Promise<unknown>;
  unpin(id: string): Promise<unknown>;
}

/** CRIU's whole dump log of a checkpoint, from its folder on this node (src/catalog's readDumpLog). */
export type CheckpointLogReader = (id: string) => Promise<Buffer>;

const checkpointId = z.object({ id: z.string().regex(/^[A-Za-z0-9_.-]{1,128}$/, 'not a checkpoint id') });

export async function checkpointRoutes(app: FastifyInstance, opts: { catalog: CheckpointsBackend; readLog: CheckpointLogReader }): Promise<void> {
  const { catalog, readLog } = opts;

  defineRoute(
    app,
    {
      method: 'GET',
      url: '/api/v1/checkpoints',
      operationId: 'listCheckpoints',
      response: checkpointListResponse,
      role: 'read',
      summary: 'List checkpoints, newest first',
      query: z.object({
        target: z.string().min(1).max(128).optional(),
        schedule: z.string().min(1).max(64).optional(),
        limit: z.coerce.number().int().min(1).max(1000).default(100),
        offset: z.coerce.number().int().min(0).default(0),
      }),
    },
    // The public names (`target`, `schedule`) are documented query parameters; the catalog's are targetKey, scheduleId.
    async ({ query: { target, schedule, ...page } }) => ({ items: await catalog.list({ ...page, targetKey: target, scheduleId: schedule }) }),
  );

  defineRoute(app, { method: 'GET', url: '/api/v1/checkpoints/:id', operationId: 'getCheckpoint', response: checkpointResponse, role: 'read', summary: 'One checkpoint (its manifest)', params: checkpointId }, async ({ params }) =>
    catalog.get(params.id),
  );

  defineRoute(
    app,
    {
      method: 'GET',
      url: '/api/v1/checkpoints/:id/log',
      operationId: 'getCheckpointLog',
      response: textResponse,
      errors: [409, 422],
      role: 'read',
      summary:
        "CRIU's whole dump log of a checkpoint (its dump.log), as text, from its folder on this node " +
        '(422 naming the node that has its files when this one does not; 409 unsafe_path when its folder or log is a symbolic link)',
      params: checkpointId,
    },
    async ({ params }, reply) => reply.type('text/plain; charset=utf-8').send(await readLog(params.id)),
  );

  defineRoute(
    app,
    {
      method: 'DELETE',
      url: '/api/v1/checkpoints/:id',
      operationId: 'deleteCheckpoint',
      response: checkpointDeletedResponse,
      errors: [409],
      role: 'operate',
      summary: 'Delete a checkpoint and its files (409 when pinned or in use by a restore, unless force; 409 unsafe_path when its folder leads out of the storage root)',
      params: checkpointId,
      query: z.object({ force: z.enum(['true', 'false']).default('false') }),
    },
    async ({ params, query }) => catalog.delete(params.id, { force: query.force === 'true' }),
  );

  defineRoute(app, { method: 'POST', url: '/api/v1/checkpoints/:id/pin', operationId: 'pinCheckpoint', response: checkpointResponse, role: 'operate', summary: 'Pin: retention never removes it', params: checkpointId }, async ({ params }) =>
    catalog.pin(params.id),
  );

  defineRoute(app, { method: 'POST', url: '/api/v1/checkpoints/:id/unpin', operationId: 'unpinCheckpoint', response: checkpointResponse, role: 'operate', summary: 'Unpin', params: checkpointId }, async ({ params }) =>
    catalog.unpin(params.id),
  );
}
