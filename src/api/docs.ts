import type { Middleware } from 'koa';
import { readAsset } from '../assets.ts';

/**
 * The API reference, served by hookrelay itself: GET /openapi.yaml (the document as shipped)
 * and GET /docs (the document rendered by Swagger UI from the swagger-ui-dist package). Every
 * file comes from this process (through src/assets.ts, so the single binary has them too): the
 * page works offline and loads nothing from a CDN. These routes sit outside the openapi.yaml
 * router on purpose: they describe the API, they are not part of it. No token is needed.
 */

const SWAGGER_UI_DIR = 'node_modules/swagger-ui-dist';

/** The swagger-ui-dist files the page uses; scripts/build.ts embeds exactly these. */
export const SWAGGER_UI_FILES = ['swagger-ui.css', 'swagger-ui-bundle.js', 'favicon-32x32.png', 'favicon-16x16.png'] as const;

export const SWAGGER_UI_ASSETS = SWAGGER_UI_FILES.map((name) => `${SWAGGER_UI_DIR}/${name}`);

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>hookrelay API reference</title>
<link rel="stylesheet" href="/docs/swagger-ui.css">
<link rel="icon" type="image/png" sizes="32x32" href="/docs/favicon-32x32.png">
<link rel="icon" type="image/png" sizes="16x16" href="/docs/favicon-16x16.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script>
</body>
</html>
`;

// validatorUrl: null keeps Swagger UI from sending the document to its online validator.
const INIT = `window.ui = SwaggerUIBundle({
  url: '/openapi.yaml',
  dom_id: '#swagger-ui',
  deepLinking: true,
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis],
  layout: 'BaseLayout',
});
`;

// Swagger UI sets styles inline; scripts and everything else come only from this origin.
const CSP = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

interface File {
  type: string;
  body: Buffer;
}

const TYPES: Record<string, string> = {
  css: 'text/css; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  png: 'image/png',
};

/** Koa middleware answering GET/HEAD /docs, /docs/* (the page's files) and /openapi.yaml. */
export function docsRoutes(): Middleware {
  const files = new Map<string, File>();
  files.set('/openapi.yaml', { type: 'application/yaml; charset=utf-8', body: readAsset('openapi.yaml') });
  files.set('/docs', { type: 'text/html; charset=utf-8', body: Buffer.from(PAGE) });
  files.set('/docs/init.js', { type: TYPES.js!, body: Buffer.from(INIT) });
  for (const name of SWAGGER_UI_FILES) {
    files.set(`/docs/${name}`, { type: TYPES[name.split('.').pop()!]!, body: readAsset(`${SWAGGER_UI_DIR}/${name}`) });
  }
  return async (ctx, next) => {
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') return next();
    if (ctx.path === '/docs/') {
      ctx.redirect('/docs');
      return;
    }
    const file = files.get(ctx.path);
    if (!file) return next();
    ctx.type = file.type;
    ctx.body = file.body;
    ctx.set('X-Content-Type-Options', 'nosniff');
    if (ctx.path === '/docs') ctx.set('Content-Security-Policy', CSP);
    // The files change only with a new release; the document and the page are re-read each time.
    ctx.set('Cache-Control', ctx.path.startsWith('/docs/') ? 'public, max-age=3600' : 'no-cache');
  };
}
