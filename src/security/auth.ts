import { createHash, timingSafeEqual } from 'node:crypto';
import net from 'node:net';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ApiToken } from '../config/schema.js';

/**
 * Who may do what.
 *
 * - Tokens carry a role: `read` (the feed, GETs) or `operate` (everything). `operate` includes `read`.
 * - A token comes in `Authorization: Bearer <token>`, or `?token=<token>` in the URL (browsers cannot set headers on a
 *   WebSocket). The header wins when both are present.
 * - Bound to loopback (127.0.0.0/8, ::1, localhost) with no tokens configured, every local caller is `operate`, except
 *   what looks like a web page's request (see `authenticate`). With tokens configured, a token is always required.
 * - Bound elsewhere with no tokens configured, the API refuses to start (`assertStartable`).
 */

export type Role = 'read' | 'operate';

export interface Principal {
  role: Role;
  /** The token's configured name ('loopback' when no token is needed); never the token itself. */
  name: string;
}

/** Why a caller was turned away: 401 (who are you?) or 403 (not allowed). `reason` is safe to show the caller. */
export type AuthFailure = Unauthenticated | Forbidden;
export interface Unauthenticated {
  status: 401;
  reason: string;
}
export interface Forbidden {
  status: 403;
  reason: string;
}

export interface AuthenticatorOptions {
  /** The host the API binds to (config api.host). */
  host: string;
  /** Configured tokens (config api.tokens). */
  tokens: readonly ApiToken[];
}

/** Raised by assertStartable: the configuration would expose the API without authentication. */
export class AuthConfigError extends Error {
  readonly code = 'EAUTH_CONFIG';
  constructor(message: string) {
    super(message);
    this.name = 'AuthConfigError';
  }
}

type Headers = Record<string, string | string[] | undefined>;

interface StoredToken {
  name: string;
  role: Role;
  digest: Buffer;
}

const LOOPBACK_PRINCIPAL: Principal = Object.freeze({ role: 'operate', name: 'loopback' });

export class Authenticator {
  readonly loopback: boolean;
  private readonly tokens: StoredToken[];

  constructor(private readonly options: AuthenticatorOptions) {
    this.loopback = isLoopbackHost(options.host);
    this.tokens = options.tokens.map((t) => ({ name: t.name, role: t.role, digest: digest(t.token) }));
  }

  /** True when callers must present a token. */
  get tokenRequired(): boolean {
    return this.tokens.length > 0 || !this.loopback;
  }

  /** Throws AuthConfigError when the API would listen beyond this machine with nobody required to authenticate. */
  assertStartable(): void {
    if (!this.loopback && this.tokens.length === 0) {
      throw new AuthConfigError(
        `refusing to start: api.host is ${this.options.host}, which is not loopback, and no api.tokens are configured; ` +
          'add tokens (role read or operate) or bind to 127.0.0.1',
      );
    }
  }

  /**
   * Identifies the caller from request headers and URL (for `?token=`).
   * Without tokens on loopback everyone is `operate`, but only when addressed by a loopback name (Host) and not from a
   * page of another origin (Origin): otherwise any web page the user visits could drive the local API, directly
   * (cross-site WebSocket, form posts) or through DNS rebinding.
   */
  authenticate(headers: Headers, url: string | undefined): Principal | Unauthenticated {
    if (!this.tokenRequired) {
      const refused = browserRisk(headers);
      return refused ? { status: 401, reason: `${refused}; use a token (configure api.tokens)` } : LOOPBACK_PRINCIPAL;
    }
    const presented = presentedToken(headers, url);
    if ('status' in presented) return presented;
    const candidate = digest(presented.token);
    // Compare against every token, without stopping at a match, so timing says nothing about which one matched.
    let match: StoredToken | undefined;
    for (const t of this.tokens) {
      if (timingSafeEqual(t.digest, candidate) && !match) match = t;
    }
    if (!match) return { status: 401, reason: 'invalid token' };
    return { role: match.role, name: match.name };
  }

  /** null when `principal` may do what needs `needed`, else a 403 reason. */
  authorize(principal: Principal, needed: Role): Forbidden | null {
    if (needed === 'operate' && principal.role !== 'operate') {
      return { status: 403, reason: `token '${principal.name}' has role ${principal.role}; this needs role operate` };
    }
    return null;
  }

  /** authenticate, then authorize. */
  check(headers: Headers, url: string | undefined, needed: Role): Principal | AuthFailure {
    const who = this.authenticate(headers, url);
    if (isAuthFailure(who)) return who;
    return this.authorize(who, needed) ?? who;
  }
}

export function isAuthFailure(x: Principal | AuthFailure): x is AuthFailure {
  return 'status' in x;
}

/** The JSON body sent with a 401/403 (same shape as every other API error). */
export function authErrorBody(failure: AuthFailure): { error: 'unauthorized' | 'forbidden'; message: string } {
  return { error: failure.status === 401 ? 'unauthorized' : 'forbidden', message: failure.reason };
}

/**
 * A fastify preHandler enforcing `role`: replies 401/403 `{error, message}` or sets `request.principal`.
 * Usage: `app.route({..., preHandler: authHook(auth, 'operate')})`.
 */
export function authHook(auth: Authenticator, role: Role) {
  return async function enforceRole(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const result = auth.check(request.headers, request.url, role);
    if (isAuthFailure(result)) {
      if (result.status === 401) void reply.header('www-authenticate', 'Bearer');
      await reply.code(result.status).send(authErrorBody(result));
      return;
    }
    (request as FastifyRequest & { principal: Principal }).principal = result;
  };
}

/** 127.0.0.0/8, ::1 (also IPv4-mapped ::ffff:127.x), or the name localhost. */
export function isLoopbackHost(host: string): boolean {
  const h = host.trim().toLowerCase().replace(/^\[(.*)\]$/, '$1');
  if (h === 'localhost') return true;
  if (net.isIPv4(h)) return h.startsWith('127.');
  if (net.isIPv6(h)) {
    if (h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(h);
    return !!mapped && mapped[1]!.startsWith('127.');
  }
  return false;
}

function presentedToken(headers: Headers, url: string | undefined): { token: string } | Unauthenticated {
  const header = first(headers.authorization);
  if (header !== undefined) {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!m) return { status: 401, reason: "Authorization header must be 'Bearer <token>'" };
    return { token: m[1]! };
  }
  const query = url ? new URL(url, 'http://localhost').searchParams.get('token') : null;
  if (query) return { token: query };
  return { status: 401, reason: 'a token is required: Authorization: Bearer <token> or ?token=<token>' };
}

/** Why an unauthenticated local request looks like it comes from a web page rather than a local client, if it does. */
function browserRisk(headers: Headers): string | null {
  const host = first(headers.host);
  if (host !== undefined && !isLoopbackHost(hostName(host))) return `host ${host} is not a loopback name`;
  const origin = first(headers.origin);
  if (origin === undefined) return null;
  try {
    if (host && new URL(origin).host === host.toLowerCase()) return null;
  } catch {
    // An unparsable Origin ("null" from sandboxed frames and files) is foreign.
  }
  return `cross-origin request from ${origin}`;
}

/** The name part of a Host header: "127.0.0.1:7070" -> "127.0.0.1", "[::1]:7070" -> "::1". */
function hostName(host: string): string {
  const bracketed = /^\[([^\]]+)\]/.exec(host);
  if (bracketed) return bracketed[1]!;
  const colon = host.lastIndexOf(':');
  return colon > 0 && host.indexOf(':') === colon ? host.slice(0, colon) : host;
}

/** Fixed-length digests, so timingSafeEqual works whatever the token lengths. */
function digest(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}
