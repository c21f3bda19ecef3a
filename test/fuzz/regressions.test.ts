import test from 'ava';
import { query } from '../helpers/db.ts';
import { startTestService } from '../helpers/service.ts';

/**
 * Requests the fuzzer (test/fuzz/api.test.ts) found answered with a 500: PostgreSQL text
 * cannot hold a NUL character, and such a value reached a query. Each is now refused before
 * the database, as a documented 4xx, and changes nothing.
 */

test('a path id with a NUL character is a 404, not a 500', async (t) => {
  const svc = await startTestService(t, { HOOKRELAY_ROLES: 'api' });
  for (const path of ['/api/v1/endpoints/a%00b/secret', '/api/v1/webhooks/msg_%00/status', '/api/v1/endpoints/%00', '/api/v1/tokens/tok_%00']) {
    const method = path.startsWith('/api/v1/tokens') ? 'DELETE' : 'GET';
    const res = await svc.api(path, { method });
    t.is(res.status, 404, `${method} ${path}`);
    t.is(((await res.json()) as { code: string }).code, 'not_found', path);
  }
});

test('a query value with a NUL character is a 400 naming the parameter', async (t) => {
  const svc = await startTestService(t, { HOOKRELAY_ROLES: 'api' });
  for (const [path, field] of [['/api/v1/endpoints?url=a%00b', 'url'], ['/api/v1/webhooks?endpointId=ep_%00', 'endpointId'], ['/api/v1/dead-letters?endpointId=%00', 'endpointId']] as const) {
    const res = await svc.api(path);
    t.is(res.status, 400, path);
    const body = (await res.json()) as { code: string; errors: { field: string }[] };
    t.is(body.code, 'validation_failed', path);
    t.deepEqual(body.errors.map((e) => e.field), [field], path);
  }
});

test('a NUL character or a lone surrogate in any body field is a 400 naming the field; nothing is stored', async (t) => {
  const svc = await startTestService(t, { HOOKRELAY_ROLES: 'api' });
  const cases: [string, string, unknown, string][] = [
    ['POST', '/api/v1/dead-letters/replay', { endpointId: 'a\u0000b' }, 'endpointId'],
    ['POST', '/api/v1/webhooks/retry', { status: 'dead', endpointId: 'ep_\u0000' }, 'endpointId'],
    ['POST', '/api/v1/endpoints', { url: 'https://nul.example.com/', description: 'a\u0000b' }, 'description'],
    ['POST', '/api/v1/endpoints', { url: 'https://nul.example.com/', metadata: { note: 'x\uD800' } }, 'metadata.note'],
    ['POST', '/api/v1/webhooks/deliver', { endpointId: 'ep_\u0000', payload: 1 }, 'endpointId'],
    ['POST', '/api/v1/signatures/verify', { body: '{}', headers: {}, endpointId: '\u0000' }, 'endpointId'],
    ['POST', '/api/v1/tokens', { name: 'n\u0000' }, 'name'],
  ];
  for (const [method, path, json, field] of cases) {
    const res = await svc.api(path, { method, json });
    t.is(res.status, 400, `${path} ${JSON.stringify(json)}`);
    const body = (await res.json()) as { code: string; errors: { field: string }[] };
    t.is(body.code, 'validation_failed', path);
    t.deepEqual(body.errors.map((e) => e.field), [field], path);
  }
  const [row] = await query<{ n: number }>(svc.dbUrl, 'SELECT (SELECT count(*) FROM hookrelay.endpoints) + (SELECT count(*) FROM hookrelay.webhooks) AS n');
  t.is(Number(row!.n), 0);
});
