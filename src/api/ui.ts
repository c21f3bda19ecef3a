import { createHash } from 'node:crypto';
import type Koa from 'koa';
import { readAsset } from '../assets.ts';
import { AppError } from '../errors.ts';

/**
 * The operator dashboard: static files from the top-level `ui/` folder at `/ui`. They are
 * served outside the openapi.yaml router on purpose: they are pages, not API operations, and
 * they call the public /api/v1 with a token the operator pastes, like any other client.
 *
 * The folder is flat (no subfolders), so every file is addressed by a plain name and nothing
 * here ever joins a path a client chose beyond one checked file name.
 */

/**
 * Pages may load scripts, styles and images from this origin only and talk to this origin
 * only; no inline script or style (a stored payload shown in a page can never run), no
 * framing, no plugins, no <base> rewriting.
 */
export const UI_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "font-src 'self'",
  "manifest-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

const TYPES: Record<string, string> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
  svg: 'image/svg+xml',
  png: 'image/png',
  ico: 'image/x-icon',
  json: 'application/json; charset=utf-8',
};

/** A file name in ui/: letters, digits, dashes and dots, one known extension. */
const FILE_NAME = /^[a-z0-9][a-z0-9-]*(?:\.[a-z0-9-]+)*\.([a-z]+)$/;

interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

export interface UiOptions {
  /** Where files come from; readAsset (the shipped files) unless a test gives another. */
  read?: (relPath: string) => Buffer;
  /** Keep files in memory after the first read (the default); off, every request reads anew. */
  cache?: boolean;
}

/** Koa middleware answering GET and HEAD for /ui, /ui/ and /ui/<file>; other paths pass through. */
export function uiRoutes(options: UiOptions = {}): Koa.Middleware {
  const read = options.read ?? readAsset;
  const cache = new Map<string, Asset | null>();
  const load = (name: string): Asset | null => {
    if (options.cache !== false && cache.has(name)) return cache.get(name)!;
    let asset: Asset | null = null;
    const ext = FILE_NAME.exec(name)?.[1];
    const type = ext ? TYPES[ext] : undefined;
    if (type) {
      try {
        const body = read(`ui/${name}`);
        asset = { body, type, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"` };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT' && (err as NodeJS.ErrnoException).code !== 'EISDIR') throw err;
      }
    }
    if (options.cache !== false) cache.set(name, asset);
    return asset;
  };

  return async (ctx, next) => {
    const path = ctx.path;
    if (path !== '/ui' && !path.startsWith('/ui/')) return next();
    const name = path === '/ui' || path === '/ui/' ? 'index.html' : path.slice('/ui/'.length);
    ctx.set('Content-Security-Policy', UI_CSP);
    ctx.set('X-Content-Type-Options', 'nosniff');
    ctx.set('Referrer-Policy', 'no-referrer');
    ctx.set('X-Frame-Options', 'DENY');
    ctx.set('Cross-Origin-Opener-Policy', 'same-origin');
    ctx.set('Cross-Origin-Resource-Policy', 'same-origin');
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') {
      throw new AppError(405, 'method_not_allowed', `${ctx.method} is not allowed on ${path}; the dashboard answers GET and HEAD`, { headers: { Allow: 'GET, HEAD' } });
    }
    const asset = load(name);
    if (!asset) throw new AppError(404, 'not_found', `no dashboard file ${JSON.stringify(name.slice(0, 100))}`);
    // The names carry no content hash, so browsers revalidate every time: an upgrade is seen
    // at the next load, and an unchanged file costs a 304 without a body.
    ctx.set('Cache-Control', 'no-cache');
    ctx.set('ETag', asset.etag);
    ctx.type = asset.type;
    if (ctx.get('if-none-match').split(/\s*,\s*/).includes(asset.etag)) {
      ctx.status = 304;
      return;
    }
    ctx.status = 200;
    ctx.body = asset.body;
  };
}
