import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { repoRoot } from '../common/paths.js';

/**
 * The dashboard's files, by the URL that serves each. Only these are served: nothing from the request ever names a
 * file. They live in src/dashboard/static/ (compiled code runs from dist/, hence repoRoot()) and are read once.
 * uPlot (the plots) is served from its npm package as published: no CDN, nothing loaded from elsewhere.
 */
const FILES: Record<string, { file: string; type: string; from?: 'uplot' }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/dashboard/dashboard.js': { file: 'dashboard.js', type: 'text/javascript; charset=utf-8' },
  '/dashboard/dashboard.css': { file: 'dashboard.css', type: 'text/css; charset=utf-8' },
  '/dashboard/uPlot.esm.js': { file: 'uPlot.esm.js', type: 'text/javascript; charset=utf-8', from: 'uplot' },
  '/dashboard/uPlot.min.css': { file: 'uPlot.min.css', type: 'text/css; charset=utf-8', from: 'uplot' },
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

/** uPlot's dist/ folder, found as Node finds the package (its main file lives there). */
function uplotDir(): string {
  return path.dirname(createRequire(import.meta.url).resolve('uplot'));
}

/**
 * Fastify plugin: serves the dashboard page at / and its script and style under /dashboard/.
 * Unauthenticated on purpose: the page holds no data; everything it shows comes from the API and the feed, which
 * check the token (the page takes it from `?token=`).
 */
export async function registerDashboard(app: FastifyInstance): Promise<void> {
  const dirs = { own: dashboardDir(), uplot: uplotDir() };
  for (const [url, { file, type, from }] of Object.entries(FILES)) {
    const body = readFileSync(path.join(dirs[from ?? 'own'], file));
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
