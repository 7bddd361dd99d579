import type { FastifyInstance } from 'fastify';
import { openApiDocument } from '../openapi.js';

/** One dependency /healthz looks at. */
export interface HealthProbe {
  name: string;
  check(): Promise<{ ok: boolean; [detail: string]: unknown }>;
}

export interface ServiceRoutesOptions {
  probes: HealthProbe[];
  metricsText: () => Promise<string>;
  version: string;
}

/** /healthz, /metrics and /api/v1/openapi.json: what operators and tooling read. */
export async function serviceRoutes(app: FastifyInstance, opts: ServiceRoutesOptions): Promise<void> {
  // Unauthenticated on purpose: load balancers and Prometheus scrape these; they reveal no process data.
  app.get('/healthz', async (_req, reply) => {
    const results = await Promise.all(
      opts.probes.map(async (p) => {
        try {
          return [p.name, await withTimeout(p.check(), 3000)] as const;
        } catch (err) {
          return [p.name, { ok: false, error: (err as Error).message }] as const;
        }
      }),
    );
    const checks = Object.fromEntries(results);
    const ok = results.every(([, r]) => r.ok);
    return reply.code(ok ? 200 : 503).send({ status: ok ? 'ok' : 'unhealthy', checks });
  });
  app.get('/metrics', async (_req, reply) => reply.type('text/plain; version=0.0.4').send(await opts.metricsText()));
  app.get('/api/v1/openapi.json', async () => openApiDocument(app.routeSpecs, opts.version));
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    p.then(resolve, reject).finally(() => clearTimeout(timer));
  });
}
