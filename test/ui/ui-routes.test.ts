import { request } from 'node:http';
import test from 'ava';
import { listAssets } from '../../src/assets.ts';
import { UI_CSP } from '../../src/api/ui.ts';
import { startTestService } from '../helpers/service.ts';

/** The dashboard's static files: types, caching, security headers, and nothing outside ui/. */

/** A request with the path exactly as given (fetch would normalize `..` away). */
function rawGet(url: string, path: string): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url + path, { method: 'GET', path }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString('utf8')));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('/ui serves the page with a strict CSP, and every file in ui/ with its type', async (t) => {
  const svc = await startTestService(t);
  for (const path of ['/ui', '/ui/', '/ui/index.html']) {
    const res = await fetch(svc.url + path);
    t.is(res.status, 200, path);
    t.is(res.headers.get('content-type'), 'text/html; charset=utf-8', path);
    t.is(res.headers.get('content-security-policy'), UI_CSP, path);
    t.is(res.headers.get('x-content-type-options'), 'nosniff');
    t.is(res.headers.get('x-frame-options'), 'DENY');
    t.is(res.headers.get('referrer-policy'), 'no-referrer');
    t.is(res.headers.get('cache-control'), 'no-cache');
    t.regex(await res.text(), /<script type="module" src="\/ui\/app\.js"><\/script>/);
  }
  t.regex(UI_CSP, /script-src 'self'(;|$)/);
  t.notRegex(UI_CSP, /unsafe-inline|unsafe-eval|\*/);

  const types: Record<string, string> = { js: 'text/javascript; charset=utf-8', css: 'text/css; charset=utf-8', html: 'text/html; charset=utf-8', svg: 'image/svg+xml' };
  const files = listAssets('ui');
  t.true(files.includes('app.js') && files.includes('app.css'));
  for (const name of files) {
    const res = await fetch(`${svc.url}/ui/${name}`);
    t.is(res.status, 200, name);
    t.is(res.headers.get('content-type'), types[name.split('.').pop()!] ?? 'unknown type', name);
    const text = await res.text();
    // Works offline: nothing is loaded from another origin (the SVG namespace is a name, not a fetch).
    t.notRegex(text.replaceAll('http://www.w3.org/2000/svg', ''), /https?:\/\//, `${name} refers to another origin`);
  }
});

test('an unchanged file is revalidated with a 304, HEAD answers without a body', async (t) => {
  const svc = await startTestService(t);
  const first = await fetch(`${svc.url}/ui/app.js`);
  const etag = first.headers.get('etag');
  t.truthy(etag);
  const again = await fetch(`${svc.url}/ui/app.js`, { headers: { 'if-none-match': etag! } });
  t.is(again.status, 304);
  t.is(await again.text(), '');
  const stale = await fetch(`${svc.url}/ui/app.js`, { headers: { 'if-none-match': '"something-else"' } });
  t.is(stale.status, 200);
  t.is(await stale.text(), await first.text());
  const head = await fetch(`${svc.url}/ui/app.css`, { method: 'HEAD' });
  t.is(head.status, 200);
  t.is(head.headers.get('content-type'), 'text/css; charset=utf-8');
  t.is(await head.text(), '');
});

test('unknown files, other folders and other methods are refused as problems', async (t) => {
  const svc = await startTestService(t);
  for (const path of ['/ui/nope.js', '/ui/app.exe', '/ui/..%2fpackage.json', '/ui/%2e%2e/package.json', '/ui/../package.json', '/ui/.env', '/ui/sub/app.js']) {
    const res = await rawGet(svc.url, path);
    t.is(res.status, 404, path);
    t.is(String(res.headers['content-type']), 'application/problem+json', path);
    t.notRegex(res.body, /"dependencies"/, path);
  }
  const post = await fetch(`${svc.url}/ui/app.js`, { method: 'POST', body: 'x' });
  t.is(post.status, 405);
  t.is(post.headers.get('allow'), 'GET, HEAD');
  t.is(((await post.json()) as { code: string }).code, 'method_not_allowed');
  // Paths that only start like /ui are the API's business (a 404 problem there).
  const other = await fetch(`${svc.url}/uix`);
  t.is(other.status, 404);
  t.is(other.headers.get('content-security-policy'), null);
  // The pages need no token; the API behind them still does.
  t.is((await svc.api('/api/v1/webhooks', { auth: false })).status, 401);
});
