import type { FastifyInstance } from 'fastify';
import { runHealthChecks, type HealthProbe } from '../../observability/health.js';
import type { Authenticator } from '../../security/auth.js';
import { openApiDocument } from '../openapi.js';

export type { HealthProbe };

export interface OperationsRoutesOptions {
  probes: HealthProbe[];
  metricsText: () => Promise<string>;
  version: string;
  /** Who may see health details and metrics: with tokens required, a read token (a bare liveness answer stays open). */
  auth: Authenticator;
}

/** /healthz, /metrics and /api/v1/openapi.json: what operators and tooling read. */
export async function operationsRoutes(app: FastifyInstance, opts: OperationsRoutesOptions): Promise<void> {
  // Liveness is open to every caller (load balancers); the details (paths, free bytes, versions, errors) need a read
  // token when tokens are required.
  app.get('/healthz', async (req, reply) => {
    const checks = await runHealthChecks(opts.probes);
    const ok = Object.values(checks).every((r) => r.ok);
    const status = ok ? 'ok' : 'unhealthy';
    const detailed = !('status' in opts.auth.authenticate(req.headers, req.url));
    return reply.code(ok ? 200 : 503).send(detailed ? { status, checks } : { status });
  });
  app.get('/metrics', { preHandler: (req, reply) => app.authorize(req, reply, 'read') }, async (_req, reply) =>
    reply.type('text/plain; version=0.0.4').send(await opts.metricsText()),
  );
  app.get('/api/v1/openapi.json', async (req) => openApiDocument(app.routeSpecs, opts.version, `${req.protocol}://${req.host}`));
}
