import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { CronExpression } from '../../scheduler/cron.js';
import { ScheduleStoreError, type ScheduleStore } from '../../scheduler/schedule-store.js';
import { scheduleIdSchema } from '../../queue/schemas.js';
import { scheduleFieldsSchema, scheduleRules, scheduleSchema } from '../../scheduler/schema.js';
import { listScheduleViews, toRunTime, toScheduleView } from '../../scheduler/view.js';
import { nextRunsResponse, scheduleDeletedResponse, scheduleListResponse, scheduleResponse, triggeredResponse } from '../responses.js';
import { ConflictError, defineRoute } from '../route.js';

/** What the schedule routes need: the store, and trigger-now (src/scheduler's Scheduler provides it). */
export interface SchedulesRoutesOptions {
  store: ScheduleStore;
  scheduler: { trigger(id: string): Promise<{ jobId: string }> };
}

// Any string is looked up (an id that cannot exist is simply not found: 404), bounded in length.
const byId = z.object({ id: z.string().min(1).max(200) });

/** PUT body: the schedule without its id (the URL names it); an id in the body must agree. */
const putBody = scheduleFieldsSchema.omit({ id: true }).extend({ id: scheduleIdSchema.optional() }).superRefine(scheduleRules);

/**
 * /api/v1/schedules: list, create (201), get, replace, delete, pause, resume, trigger-now (202), next runs.
 * Invalid schedules answer 400 naming each field and the reason (one zod schema with config files); unknown ids 404.
 */
export async function scheduleRoutes(app: FastifyInstance, opts: SchedulesRoutesOptions): Promise<void> {
  const { store, scheduler } = opts;

  const view = async (id: string) => {
    const record = await store.get(id);
    if (!record) throw new ScheduleStoreError('ESCHEDULE_NOT_FOUND', `schedule ${id} not found`, id);
    return toScheduleView(record, await store.getState(id));
  };

  defineRoute(app, { method: 'GET', url: '/api/v1/schedules', operationId: 'listSchedules', response: scheduleListResponse, role: 'read', summary: 'List schedules with their state and next run' }, async () => {
    return { items: await listScheduleViews(store) };
  });

  defineRoute(
    app,
    { method: 'POST', url: '/api/v1/schedules', operationId: 'createSchedule', response: scheduleResponse, errors: [409], role: 'operate', status: 201, summary: 'Create a schedule (409 when the id exists)', body: scheduleSchema },
    async ({ body }) => {
      try {
        await store.create(body, 'api');
      } catch (err) {
        if (err instanceof ScheduleStoreError && err.code === 'EEXISTS') throw new ConflictError('exists', err.message);
        throw err;
      }
      return view(body.id);
    },
  );

  defineRoute(app, { method: 'GET', url: '/api/v1/schedules/:id', operationId: 'getSchedule', response: scheduleResponse, role: 'read', summary: 'One schedule with its state', params: byId }, async ({ params }) =>
    view(params.id),
  );

  defineRoute(
    app,
    {
      method: 'PUT',
      url: '/api/v1/schedules/:id',
      operationId: 'replaceSchedule',
      response: scheduleResponse,
      role: 'operate',
      summary: 'Replace a schedule (it then belongs to the API: config seeding no longer changes it)',
      params: byId,
      body: putBody,
    },
    async ({ params, body }, reply) => {
      if (body.id !== undefined && body.id !== params.id) {
        return reply.code(400).send({
          error: 'validation',
          message: `body.id: must be the id in the URL (${params.id})`,
          issues: [{ field: 'body.id', reason: `must be the id in the URL (${params.id})` }],
        });
      }
      await store.update({ ...body, id: params.id });
      return view(params.id);
    },
  );

  defineRoute(
    app,
    { method: 'DELETE', url: '/api/v1/schedules/:id', operationId: 'deleteSchedule', response: scheduleDeletedResponse, role: 'operate', summary: 'Delete a schedule (its checkpoints stay)', params: byId },
    async ({ params }) => {
      await store.delete(params.id);
      return { id: params.id, deleted: true };
    },
  );

  defineRoute(app, { method: 'POST', url: '/api/v1/schedules/:id/pause', operationId: 'pauseSchedule', response: scheduleResponse, role: 'operate', summary: 'Pause: no ticks until resumed', params: byId }, async ({ params }) => {
    await store.pause(params.id);
    return view(params.id);
  });

  defineRoute(
    app,
    { method: 'POST', url: '/api/v1/schedules/:id/resume', operationId: 'resumeSchedule', response: scheduleResponse, role: 'operate', summary: 'Resume (ticks missed while paused are not caught up)', params: byId },
    async ({ params }) => {
      await store.resume(params.id);
      return view(params.id);
    },
  );

  defineRoute(
    app,
    {
      method: 'POST',
      url: '/api/v1/schedules/:id/trigger',
      operationId: 'triggerSchedule',
      response: triggeredResponse,
      errors: [403, 409, 422],
      role: 'operate',
      status: 202,
      summary: 'Enqueue a dump now (422 when the target does not resolve)',
      params: byId,
    },
    async ({ params }) => scheduler.trigger(params.id),
  );

  defineRoute(
    app,
    {
      method: 'GET',
      url: '/api/v1/schedules/:id/next-runs',
      operationId: 'getScheduleNextRuns',
      response: nextRunsResponse,
      role: 'read',
      summary: 'The next run times, in UTC and in the schedule time zone; runs DST moved or repeated are marked',
      params: byId,
      query: z.object({
        n: z.coerce.number().int().min(1).max(100).default(5),
        /** Runs after this instant instead of now (to see what a DST change does to them). */
        from: z.iso.datetime({ offset: true, error: 'an ISO 8601 date-time, like 2027-03-13T00:00:00Z' }).optional(),
      }),
    },
    async ({ params, query }) => {
      const record = await store.get(params.id);
      if (!record) throw new ScheduleStoreError('ESCHEDULE_NOT_FOUND', `schedule ${params.id} not found`, params.id);
      const { cron, timezone, dst } = record.schedule;
      const runs = CronExpression.parse(cron).runs(query.from ? Date.parse(query.from) : Date.now(), query.n, timezone, dst);
      return { id: params.id, cron, timezone, dst: dst ?? 'cron', items: runs.map((run) => toRunTime(run, timezone)) };
    },
  );
}
