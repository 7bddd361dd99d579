import Fastify, {
  LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { ValidationError } from '../common/validation.js';
import { NodeUnservedError } from '../queue/errors.js';
import { isRedisUnavailable } from '../queue/redis.js';
import type { Authenticator, Principal, Role } from '../security/auth.js';

export interface ApiServerOptions {
  logger: Logger;
  auth: Authenticator;
  /** Largest accepted request body. */
  bodyLimitBytes: number;
}

/** Maps errors with well-known codes (from the queue, catalog, targets, policy) to HTTP statuses. */
const STATUS_BY_CODE: Record<string, [number, string]> = {
  EVALIDATION: [400, 'validation'],
  ECHECKPOINT_NOT_FOUND: [404, 'not_found'],
  ESCHEDULE_NOT_FOUND: [404, 'not_found'],
  EPINNED: [409, 'pinned'],
  EINUSE: [409, 'in_use'],
  /** A checkpoint folder that leads out of the storage root (a planted symlink): refused, nothing removed. */
  EUNSAFE_PATH: [409, 'unsafe_path'],
  EPOLICY: [403, 'policy'],
  ETARGET_NONE: [422, 'target'],
  ETARGET_AMBIGUOUS: [422, 'target'],
  ETARGET_GONE: [422, 'target'],
  ETARGET_PIDFILE: [422, 'target'],
  ETARGET_MATCH_TIMEOUT: [422, 'target'],
  ECRON: [400, 'validation'],
  /** Cancel of a finished job, retry of one that did not fail. */
  EJOB_STATE: [409, 'job_state'],
  /** A trigger-now the schedule's overlap policy turned down (its previous run is still going). */
  ESKIPPED: [409, 'skipped'],
  /** A checkpoint's files (its CRIU log) asked of a node that does not have them: the message names the one that does. */
  ECHECKPOINT_ELSEWHERE: [422, 'node'],
  EFILE_MISSING: [404, 'not_found'],
  EWORKLOAD_EXISTS: [409, 'exists'],
  EWORKLOAD_NODE: [422, 'node'],
  EWORKLOAD_START: [422, 'workload'],
  /** A job for a node no live worker serves; the answer lists the live nodes. */
  ENODE_UNSERVED: [422, 'node'],
  /** A migration with nothing to carry its checkpoint across, or to the node it is on. */
  EMIGRATION_REFUSED: [422, 'migration'],
};

/**
 * The HTTP server: JSON API under /api/v1, /healthz, /metrics, the dashboard at /, and (attached by the feed)
 * the WebSocket upgrade at /api/v1/feed. Routes are registered by the caller through defineRoute.
 */
export function createApiServer(options: ApiServerOptions): FastifyInstance {
  const app = Fastify({
    loggerInstance: options.logger as unknown as FastifyBaseLogger,
    bodyLimit: options.bodyLimitBytes,
    // One line per API request comes from our onResponse hook instead of fastify's two.
    logController: new LogController({ disableRequestLogging: true }),
    return503OnClosing: true,
  });
  app.decorate('routeSpecs', []);
  app.decorateRequest('principal', null);
  app.decorate('authorize', async (req: FastifyRequest, reply: FastifyReply, role: Role) => {
    const who = options.auth.authenticate(req.headers, req.url);
    if ('status' in who) {
      await reply.code(401).header('www-authenticate', 'Bearer').send({ error: 'unauthorized', message: who.reason });
      return;
    }
    const denied = options.auth.authorize(who, role);
    if (denied) {
      await reply.code(403).send({ error: 'forbidden', message: denied.reason });
      return;
    }
    (req as FastifyRequest & { principal: Principal }).principal = who;
  });

  app.addHook('onResponse', async (req, reply) => {
    if (req.url.startsWith('/api/')) {
      req.log.debug({ method: req.method, url: req.url.split('?')[0], status: reply.statusCode, ms: Math.round(reply.elapsedTime) }, 'request');
    }
  });

  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send({ error: 'not_found', message: `no route ${req.method} ${req.url.split('?')[0]}` });
  });

  app.setErrorHandler((err: Error & { code?: string; statusCode?: number; issues?: unknown }, req, reply) => {
    if (err instanceof ValidationError) {
      return reply.code(400).send({ error: 'validation', message: err.message, issues: err.issues });
    }
    const mapped = err.code ? STATUS_BY_CODE[err.code] : undefined;
    if (err instanceof NodeUnservedError) {
      return reply.code(422).send({
        error: 'node',
        code: err.code,
        message: err.message,
        issues: [{ field: err.field, reason: err.message }],
        liveNodes: err.liveNodes,
      });
    }
    if (mapped) return reply.code(mapped[0]).send({ error: mapped[1], code: err.code, message: err.message });
    if (isRedisUnavailable(err)) {
      // Redis hung, down or failing over: the request cannot be served now, and says so at once.
      req.log.warn({ err }, 'request failed: Redis does not answer');
      return reply
        .code(503)
        .header('retry-after', '5')
        .send({ error: 'unavailable', code: 'EREDIS_UNAVAILABLE', message: `Redis does not answer (${err.message}); try again later` });
    }
    if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) {
      // fastify's own (bad JSON, body too large, wrong content type) and our NotFoundError / ConflictError.
      const error = err.statusCode === 404 ? 'not_found' : err.statusCode === 409 ? (err.code ?? 'conflict') : 'bad_request';
      return reply.code(err.statusCode).send({ error, message: err.message });
    }
    req.log.error({ err }, 'request failed');
    return reply.code(500).send({ error: 'internal', message: err.message });
  });
  return app;
}
