import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { repoRoot } from '../common/paths.js';

/**
 * The dashboard's files, by the URL that serves each. Only these are served: nothing from the request ever names a
 * file. They live in src/dashboard/static/ (compiled code runs from dist/, hence repoRoot()) and are read once.
 */
const FILES: Record<string, { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/dashboard/dashboard.js': { file: 'dashboard.js', type: 'text/javascript; charset=utf-8' },
  '/dashboard/dashboard.css': { file: 'dashboard.css', type: 'text/css; charset=utf-8' },
};

/**
 * Nothing but this server's own files, the API and the feed on the same origin: a page that cannot load anything
 * from elsewhere, nor be framed. (CSP 'self' in connect-src covers ws:// and wss:// of the same host.)
 */
const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self' data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

export function dashboardDir(): string {
  return path.join(repoRoot(), 'src', 'dashboard', 'static');
}

/**
 * Fastify plugin: serves the dashboard page at / and its script and style under /dashboard/.
 * Unauthenticated on purpose: the page holds no data; everything it shows comes from the API and the feed, which
 * check the token (the page takes it from `?token=`).
 */
export async function registerDashboard(app: FastifyInstance): Promise<void> {
  const dir = dashboardDir();
  for (const [url, { file, type }] of Object.entries(FILES)) {
    const body = readFileSync(path.join(dir, file));
    app.get(url, async (_req, reply) =>
      reply
        .type(type)
        .header('cache-control', 'no-cache')
        .header('content-security-policy', CSP)
        .header('x-content-type-options', 'nosniff')
        .header('referrer-policy', 'no-referrer')
        .send(body),
    );
  }
}
