import type { FastifyInstance, FastifyReply, FastifyRequest, HTTPMethods } from 'fastify';
import { z } from 'zod';
import { issuesOf } from '../common/validation.js';
import type { Role } from '../security/auth.js';


export interface RouteSpec<P extends z.ZodType, Q extends z.ZodType, B extends z.ZodType> {
  method: HTTPMethods;
  /** fastify URL pattern, e.g. /api/v1/jobs/:id */
  url: string;
  /** Least role that may call it: GETs are 'read', anything that changes state is 'operate'. */
  role: Role;
  summary: string;
  params?: P;
  query?: Q;
  body?: B;
  /** Documented success status; default 200. */
  status?: number;
  /** Another success status the route may answer with the same body (e.g. 202 while a cancel is under way). */
  alsoStatus?: number;
  /** Name of the operation in the OpenAPI document (what generated clients call the method). */
  operationId: string;
  /** The success body (the OpenAPI document's response schema; the API tests check every answer against it). */
  response: z.ZodType;
  /** Error statuses beyond what the spec implies (400 for input, 401/403 for the role, 404 for an :id): 403, 409, 422, ... */
  errors?: number[];
  /** Tag for the OpenAPI document (defaults to the first path segment after /api/v1). */
  tag?: string;
}

export interface ValidatedRequest<P, Q, B> {
  params: P;
  query: Q;
  body: B;
  raw: FastifyRequest;
}

/** Thrown by handlers for an unknown id; rendered as 404 {error: 'not_found', message}. */
export class NotFoundError extends Error {
  readonly statusCode = 404;
  constructor(what: string, id: string) {
    super(`${what} ${id} not found`);
  }
}

/** Thrown by handlers when the request is well-formed but cannot be done now (409 {error: code, message}). */
export class ConflictError extends Error {
  readonly statusCode = 409;
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

type AnySpec = RouteSpec<z.ZodType, z.ZodType, z.ZodType>;

declare module 'fastify' {
  interface FastifyInstance {
    /** Every route defined through defineRoute, for the OpenAPI document (decorated by the server). */
    routeSpecs: AnySpec[];
    /** Rejects (401/403) a request whose principal lacks `role` (decorated by the server). */
    authorize(req: FastifyRequest, reply: FastifyReply, role: Role): Promise<void>;
  }
}

/**
 * Defines a route whose params, query and body are parsed by zod schemas before the handler runs.
 * Bad input answers 400 {error: 'validation', message, issues: [{field, reason}]}; each field is prefixed with
 * where it was (body., query., params.). The role is checked by the `authorize` decorator installed by the server.
 */
export function defineRoute<P extends z.ZodType = z.ZodUnknown, Q extends z.ZodType = z.ZodUnknown, B extends z.ZodType = z.ZodUnknown>(
  app: FastifyInstance,
  spec: RouteSpec<P, Q, B>,
  handler: (req: ValidatedRequest<z.output<P>, z.output<Q>, z.output<B>>, reply: FastifyReply) => Promise<unknown>,
): void {
  app.routeSpecs.push(spec as AnySpec);
  app.route({
    method: spec.method,
    url: spec.url,
    preHandler: async (req, reply) => {
      await app.authorize(req, reply, spec.role);
    },
    handler: async (req, reply) => {
      const params = check(spec.params, req.params, 'params');
      const query = check(spec.query, req.query, 'query');
      const body = check(spec.body, req.body ?? {}, 'body');
      const issues = [...params.issues, ...query.issues, ...body.issues];
      if (issues.length) {
        return reply.code(400).send({
          error: 'validation',
          message: issues.map((i) => `${i.field}: ${i.reason}`).join('; '),
          issues,
        });
      }
      const parsed = { params: params.data, query: query.data, body: body.data, raw: req } as ValidatedRequest<
        z.output<P>,
        z.output<Q>,
        z.output<B>
      >;
      const result = await handler(parsed, reply);
      if (reply.sent) return reply;
      if (spec.status) reply.code(spec.status);
      return result;
    },
  });
}

function check(schema: z.ZodType | undefined, value: unknown, where: string) {
  if (!schema) return { data: value, issues: [] };
  const r = schema.safeParse(value);
  if (r.success) return { data: r.data, issues: [] };
  return {
    data: undefined,
    issues: issuesOf(r.error, schema).map((i) => ({ field: i.field ? `${where}.${i.field}` : where, reason: i.reason })),
  };
}
