import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { FeedEvent } from '../../events/types.js';
import type { JobOverview } from '../../queue/job-queue.js';
import type { Principal } from '../../security/auth.js';
import { eventListResponse, overviewResponse } from '../responses.js';
import { defineRoute } from '../route.js';

/** What the console routes need: job counts (the queue) and recent history (the event log). */
export interface ConsoleRoutesOptions {
  overview(): Promise<JobOverview>;
  recentEvents(count: number): Promise<FeedEvent[]>;
}

/** Small reads for the dashboard: the header's counts and the caller's role, and the recent events to show on load. */
export async function consoleRoutes(app: FastifyInstance, opts: ConsoleRoutesOptions): Promise<void> {
  defineRoute(
    app,
    { method: 'GET', url: '/api/v1/overview', operationId: 'getOverview', response: overviewResponse, role: 'read', summary: "Job counts per state, each node's workers, and the caller's role" },
    async ({ raw }) => {
      const principal = (raw as unknown as { principal: Principal }).principal;
      return { role: principal.role, ...(await opts.overview()) };
    },
  );

  defineRoute(
    app,
    {
      method: 'GET',
      url: '/api/v1/events',
      operationId: 'listEvents',
      response: eventListResponse,
      role: 'read',
      summary: 'The newest events, oldest first (then follow the feed with since = the last id)',
      query: z.object({ limit: z.coerce.number().int().min(1).max(1000).default(200) }),
    },
    async ({ query }) => ({ items: await opts.recentEvents(query.limit) }),
  );
}
