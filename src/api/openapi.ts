import { z } from 'zod';
import { errorResponse, textResponse } from './responses.js';
import type { RouteSpec } from './route.js';

type AnySpec = RouteSpec<z.ZodType, z.ZodType, z.ZodType>;

const ERROR_TEXT: Record<number, string> = {
  400: 'invalid input: each bad field named in issues ({field, reason})',
  401: 'missing or invalid token',
  403: 'the token role is too low (or the target is refused by policy)',
  404: 'no such id',
  409: 'conflicts with the current state (pinned, in use, exists, finished, skipped)',
  422: 'the target does not resolve to exactly one process, or no live worker serves the node the job needs (liveNodes lists those that are served)',
  503: 'Redis does not answer, or the service is shutting down',
};

/**
 * Builds the OpenAPI 3.1 document from the zod schemas every route was defined with: parameters and bodies from
 * the schemas the route validates with, responses from its response schema, one error body for every error status.
 * `serverUrl` is where this document was asked for (the API's own origin).
 */
export function openApiDocument(specs: AnySpec[], version: string, serverUrl: string): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const spec of specs) {
    const url = spec.url.replace(/:([A-Za-z_]+)/g, '{$1}');
    const successBody = {
      description: 'success',
      content:
        spec.response === textResponse
          ? { 'text/plain': { schema: { type: 'string' } } }
          : { 'application/json': { schema: toSchema(spec.response, 'output') } },
    };
    const errors = new Set([401, 403, 503, ...(spec.errors ?? [])]);
    if (spec.body || spec.query || spec.params) errors.add(400);
    if (spec.url.includes(':')) errors.add(404);
    const op: Record<string, unknown> = {
      operationId: spec.operationId,
      summary: spec.summary,
      tags: [spec.tag ?? (spec.url.split('/')[3] || 'service')],
      'x-required-role': spec.role,
      parameters: [...objectParams(spec.params, 'path'), ...objectParams(spec.query, 'query')],
      responses: {
        [String(spec.status ?? 200)]: successBody,
        ...(spec.alsoStatus ? { [String(spec.alsoStatus)]: successBody } : {}),
        ...Object.fromEntries(
          [...errors].sort().map((s) => [String(s), { description: ERROR_TEXT[s] ?? 'error', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } }]),
        ),
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
    servers: [{ url: serverUrl }],
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
      schemas: { Error: toSchema(errorResponse, 'output') },
    },
    security: [{ bearer: [] }, {}],
    paths,
  };
}

/** Routes outside defineRoute: unauthenticated service endpoints and the WebSocket feed. */
const SERVICE_PATHS: Record<string, Record<string, unknown>> = {
  '/healthz': {
    get: {
      operationId: 'getHealth',
      summary:
        'Health of Redis, the CRIU service and the storage root. Open to every caller as bare liveness ({status}); ' +
        'the checks (paths, free bytes, errors) only with a read token when tokens are configured',
      tags: ['service'],
      security: [{ bearer: [] }, {}],
      responses: {
        200: { description: '{status: "ok", checks?}', content: { 'application/json': { schema: { type: 'object' } } } },
        503: { description: '{status: "unhealthy", checks?}', content: { 'application/json': { schema: { type: 'object' } } } },
      },
    },
  },
  '/metrics': {
    get: {
      operationId: 'getMetrics',
      summary: 'Prometheus metrics (a read token when tokens are configured)',
      tags: ['service'],
      responses: {
        200: { description: 'text exposition format', content: { 'text/plain': { schema: { type: 'string' } } } },
        401: { description: 'no valid token', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } },
      },
    },
  },
  '/api/v1/openapi.json': {
    get: {
      operationId: 'getOpenApi',
      summary: 'This document',
      tags: ['service'],
      security: [],
      responses: { 200: { description: 'OpenAPI 3.1', content: { 'application/json': { schema: { type: 'object' } } } } },
    },
  },
  '/api/v1/feed': {
    get: {
      operationId: 'openFeed',
      summary: 'The live feed: a WebSocket upgrade (protocol in the README); needs role read',
      tags: ['feed'],
      'x-required-role': 'read',
      parameters: [{ name: 'token', in: 'query', required: false, schema: { type: 'string' } }],
      responses: { 101: { description: 'switching to WebSocket' }, 401: { description: 'no valid token' } },
    },
  },
};

/** JSON Schema 2020-12 (OpenAPI 3.1's dialect) of a zod schema, without its own $schema key. */
function toSchema(schema: z.ZodType, io: 'input' | 'output'): Record<string, unknown> {
  const { $schema: _, ...json } = z.toJSONSchema(schema, { io, unrepresentable: 'any' }) as Record<string, unknown>;
  return json;
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
