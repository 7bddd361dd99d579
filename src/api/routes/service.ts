import type { FastifyInstance } from 'fastify';
import { runHealthChecks, type HealthProbe } from '../../observability/health.js';
import { openApiDocument } from '../openapi.js';

export type { HealthProbe };

export interface ServiceRoutesOptions {
  probes: HealthProbe[];
  metricsText: () => Promise<string>;
  version: string;
}

/** /healthz, /metrics and /api/v1/openapi.json: what operators and tooling read. */
export async function serviceRoutes(app: FastifyInstance, opts: ServiceRoutesOptions): Promise<void> {
  // Unauthenticated on purpose: load balancers and Prometheus scrape these; they reveal no process data.
  app.get('/healthz', async (_req, reply) => {
    const checks = await runHealthChecks(opts.probes);
    const ok = Object.values(checks).every((r) => r.ok);
    return reply.code(ok ? 200 : 503).send({ status: ok ? 'ok' : 'unhealthy', checks });
  });
  app.get('/metrics', async (_req, reply) => reply.type('text/plain; version=0.0.4').send(await opts.metricsText()));
  app.get('/api/v1/openapi.json', async (req) => openApiDocument(app.routeSpecs, opts.version, `${req.protocol}://${req.host}`));
}
