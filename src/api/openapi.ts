import { z } from 'zod';
import type { RouteSpec } from './route.js';

/** Builds the OpenAPI 3.1 document from the zod schemas every route was defined with. */
export function openApiDocument(specs: RouteSpec<z.ZodType, z.ZodType, z.ZodType>[], version: string): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const spec of specs) {
    const url = spec.url.replace(/:([A-Za-z_]+)/g, '{$1}');
    const parameters = [
      ...objectParams(spec.params, 'path'),
      ...objectParams(spec.query, 'query'),
    ];
    const op: Record<string, unknown> = {
      summary: spec.summary,
      tags: [spec.tag ?? (spec.url.split('/')[3] || 'service')],
      'x-required-role': spec.role,
      parameters,
      responses: {
        [String(spec.status ?? 200)]: { description: 'success' },
        ...(spec.body || spec.query || spec.params ? { 400: { description: 'invalid input: {error, message, issues: [{field, reason}]}' } } : {}),
        ...(spec.url.includes(':') ? { 404: { description: 'unknown id' } } : {}),
        401: { description: 'missing or invalid token' },
        403: { description: 'token role too low, or target refused by policy' },
      },
    };
    if (spec.body) {
      op.requestBody = { required: true, content: { 'application/json': { schema: toSchema(spec.body, 'input') } } };
    }
    (paths[url] ??= {})[spec.method.toString().toLowerCase()] = op;
  }
  Object.assign(paths, SERVICE_PATHS);
  return {
    openapi: '3.1.0',
    info: { title: 'ckpt', version, description: 'Scheduled CRIU checkpoints as a live job queue' },
    components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    security: [{ bearer: [] }, {}],
    paths,
  };
}

/** Routes outside defineRoute: unauthenticated service endpoints and the WebSocket feed. */
const SERVICE_PATHS: Record<string, Record<string, unknown>> = {
  '/healthz': {
    get: {
      summary: 'Health of Redis, the CRIU service and the storage root (no token needed)',
      tags: ['service'],
      responses: { 200: { description: '{status: "ok", checks}' }, 503: { description: '{status: "unhealthy", checks}' } },
    },
  },
  '/metrics': {
    get: { summary: 'Prometheus metrics (no token needed)', tags: ['service'], responses: { 200: { description: 'text exposition format' } } },
  },
  '/api/v1/openapi.json': {
    get: { summary: 'This document', tags: ['service'], responses: { 200: { description: 'OpenAPI 3.1' } } },
  },
  '/api/v1/feed': {
    get: {
      summary: 'The live feed: a WebSocket upgrade (protocol in the README); needs role read',
      tags: ['feed'],
      'x-required-role': 'read',
      parameters: [{ name: 'token', in: 'query', required: false, schema: { type: 'string' } }],
      responses: { 101: { description: 'switching to WebSocket' }, 401: { description: 'no valid token' } },
    },
  },
};

function toSchema(schema: z.ZodType, io: 'input' | 'output'): Record<string, unknown> {
  return z.toJSONSchema(schema, { io, unrepresentable: 'any' }) as Record<string, unknown>;
}

function objectParams(schema: z.ZodType | undefined, where: 'path' | 'query') {
  if (!schema) return [];
  const json = toSchema(schema, 'input') as { properties?: Record<string, unknown>; required?: string[] };
  return Object.entries(json.properties ?? {}).map(([name, s]) => ({
    name,
    in: where,
    required: where === 'path' || (json.required ?? []).includes(name),
    schema: s,
  }));
}
