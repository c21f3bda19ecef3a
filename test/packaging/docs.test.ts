import { existsSync, readFileSync } from 'node:fs';
import test from 'ava';
import { chromium } from 'playwright-core';
import { parse } from 'yaml';
import { ROOT } from '../helpers/process.ts';
import { startTestService } from '../helpers/service.ts';

/**
 * GET /docs (the API reference, rendered by the swagger-ui-dist package the project installs)
 * and GET /openapi.yaml, from a live service: every file the page references is served by
 * hookrelay itself, nothing comes from elsewhere, and in a browser with no way out the
 * reference renders the document's operations.
 */

const CHROMIUM = '/usr/bin/chromium';

test('GET /openapi.yaml serves the document as application/yaml, without a token', async (t) => {
  const svc = await startTestService(t);
  const res = await svc.api('/openapi.yaml', { auth: false });
  t.is(res.status, 200);
  t.regex(res.headers.get('content-type') ?? '', /^application\/yaml/);
  const text = await res.text();
  t.is(text, readFileSync(`${ROOT}openapi.yaml`, 'utf8'));
  t.is(parse(text).openapi, parse(readFileSync(`${ROOT}openapi.yaml`, 'utf8')).openapi);
  const head = await svc.api('/openapi.yaml', { method: 'HEAD', auth: false });
  t.is(head.status, 200);
});

test('GET /docs references only files hookrelay serves, and each is served with its type', async (t) => {
  const svc = await startTestService(t);
  const res = await svc.api('/docs', { auth: false });
  t.is(res.status, 200);
  t.regex(res.headers.get('content-type') ?? '', /^text\/html/);
  t.regex(res.headers.get('content-security-policy') ?? '', /script-src 'self'/);
  const html = await res.text();
  t.notRegex(html, /https?:\/\//, 'no absolute URL (CDN) in the page');
  const refs = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
  t.true(refs.length >= 4, `references found: ${refs.join(', ')}`);
  const expected: Record<string, RegExp> = { css: /^text\/css/, js: /^text\/javascript/, png: /^image\/png/ };
  for (const ref of refs) {
    t.true(ref.startsWith('/docs/'), `${ref} is served by hookrelay under /docs/`);
    const asset = await svc.api(ref, { auth: false });
    t.is(asset.status, 200, ref);
    t.regex(asset.headers.get('content-type') ?? '', expected[ref.split('.').pop()!]!, ref);
    const body = Buffer.from(await asset.arrayBuffer());
    const name = ref.slice('/docs/'.length);
    // Buffer.equals, not t.deepEqual: a deep comparison of 1.7 MB takes seconds.
    if (name !== 'init.js') t.true(body.equals(readFileSync(`${ROOT}node_modules/swagger-ui-dist/${name}`)), `${ref} is the package's file`);
    else t.regex(body.toString('utf8'), /url: '\/openapi\.yaml'/);
  }
  // /docs/ leads to the page; unknown files under /docs are 404 problem documents.
  const slash = await svc.api('/docs/', { auth: false, redirect: 'manual' });
  t.is(slash.status, 302);
  t.is(slash.headers.get('location'), '/docs');
  const missing = await svc.api('/docs/nothing.js', { auth: false });
  t.is(missing.status, 404);
  t.regex(missing.headers.get('content-type') ?? '', /^application\/problem\+json/);
});

if (!existsSync(CHROMIUM)) {
  test.skip(`the /docs browser check is skipped: ${CHROMIUM} is absent (apt-get install chromium)`, () => {});
} else {
  test('in a browser that may reach nothing but hookrelay, /docs renders every operation of the document', async (t) => {
    const svc = await startTestService(t);
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    t.teardown(() => browser.close());
    const page = await (await browser.newContext()).newPage();
    page.setDefaultTimeout(20_000);
    const elsewhere: string[] = [];
    const problems: string[] = [];
    // Any request not to the service is refused, and recorded: the page must not need one.
    await page.route('**/*', (route) => {
      const url = route.request().url();
      if (url.startsWith(`${svc.url}/`) || url.startsWith('data:')) return route.continue();
      elsewhere.push(url);
      return route.abort();
    });
    page.on('pageerror', (err) => problems.push(err.message));
    page.on('console', (msg) => {
      if (msg.type() === 'error') problems.push(msg.text());
    });
    await page.goto(`${svc.url}/docs`);
    await page.locator('.opblock').first().waitFor();
    const doc = parse(readFileSync(`${ROOT}openapi.yaml`, 'utf8')) as { info: { title: string }; paths: Record<string, Record<string, unknown>> };
    const operations = Object.values(doc.paths).flatMap((item) => Object.keys(item).filter((k) => ['get', 'post', 'put', 'patch', 'delete'].includes(k)));
    t.is(await page.locator('.opblock').count(), operations.length);
    t.true((await page.locator('.info .title').innerText()).includes(doc.info.title));
    t.deepEqual(elsewhere, []);
    t.deepEqual(problems, []);
  });
}
