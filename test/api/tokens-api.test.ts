import { createHash } from 'node:crypto';
import test from 'ava';
import { createToken } from '../../src/api/tokens.ts';
import { query } from '../helpers/db.ts';
import { startTestService } from '../helpers/service.ts';

/** The token API: create, list, revoke; admins only; input checked field by field. */

const TOKEN = /^hr_[0-9A-Za-z]{32}_[0-9A-Za-z]{6}$/;
const sha256 = (text: string) => createHash('sha256').update(text).digest();

test('create, list and revoke through the API; the token is shown once and works at once', async (t) => {
  const svc = await startTestService(t, { HOOKRELAY_ROLES: 'api' });
  const expiresAt = new Date(Date.now() + 86_400_000).toISOString();
  const res = await svc.api('/api/v1/tokens', { method: 'POST', json: { name: 'ci', scopes: ['webhooks:read'], expiresAt, rateLimitPerSecond: 10 } });
  t.is(res.status, 201);
  t.is(res.headers.get('cache-control'), 'no-store');
  const created = (await res.json()) as Record<string, any>;
  t.regex(created.token, TOKEN);
  t.is(created.name, 'ci');
  t.deepEqual(created.scopes, ['webhooks:read']);
  t.is(created.expiresAt, expiresAt);
  t.is(created.revokedAt, null);
  t.is(created.rateLimitPerSecond, 10);
  t.is(created.rateLimitBurst, null);
  t.is(typeof created.createdAt, 'string');
  const [row] = await query(svc.dbUrl, 'SELECT token_hash FROM hookrelay.api_tokens WHERE id = $1', [created.id]);
  t.true((row!.token_hash as Buffer).equals(sha256(created.token)));

  const auth = { authorization: `Bearer ${created.token}` };
  t.is((await svc.api('/api/v1/webhooks', { headers: auth })).status, 200);
  t.is((await svc.api('/api/v1/endpoints', { headers: auth })).status, 403);

  // Defaults: every scope but admin, no expiry.
  const plain = (await (await svc.api('/api/v1/tokens', { method: 'POST', json: { name: 'plain' } })).json()) as Record<string, any>;
  t.deepEqual(plain.scopes, ['webhooks:write', 'webhooks:read', 'endpoints:write', 'endpoints:read']);
  t.is(plain.expiresAt, null);

  // The list pages by cursor and never shows a token or a hash.
  const first = await svc.api('/api/v1/tokens?limit=2');
  t.is(first.status, 200);
  const firstText = await first.text();
  const page1 = JSON.parse(firstText) as { data: Record<string, any>[]; nextCursor: string | null };
  t.is(page1.data.length, 2);
  t.is(typeof page1.nextCursor, 'string');
  const page2 = (await (await svc.api(`/api/v1/tokens?limit=2&cursor=${encodeURIComponent(page1.nextCursor!)}`)).json()) as { data: Record<string, any>[]; nextCursor: string | null };
  t.is(page2.nextCursor, null);
  const all = [...page1.data, ...page2.data];
  t.deepEqual(all.map((d) => d.name), ['test', 'ci', 'plain']);
  for (const d of all) {
    t.false('token' in d);
    t.false('tokenHash' in d || 'token_hash' in d);
  }
  t.false(firstText.includes(created.token));
  t.false(firstText.includes(sha256(created.token).toString('hex')));
  t.false(firstText.includes(sha256(created.token).toString('base64')));

  // Revoke: the record with revokedAt; refused from the next request; idempotent.
  const revoked = await svc.api(`/api/v1/tokens/${created.id}`, { method: 'DELETE' });
  t.is(revoked.status, 200);
  const record = (await revoked.json()) as Record<string, any>;
  t.is(record.id, created.id);
  t.is(typeof record.revokedAt, 'string');
  t.false('token' in record);
  t.is((await svc.api('/api/v1/webhooks', { headers: auth })).status, 401);
  const again = (await (await svc.api(`/api/v1/tokens/${created.id}`, { method: 'DELETE' })).json()) as Record<string, any>;
  t.is(again.revokedAt, record.revokedAt, 'a second revoke keeps the first time');
  const missing = await svc.api('/api/v1/tokens/tok_missing', { method: 'DELETE' });
  t.is(missing.status, 404);
  t.is(((await missing.json()) as { code: string }).code, 'token_not_found');
});

test('an admin may revoke the token it is using: that request succeeds, the next is 401', async (t) => {
  const svc = await startTestService(t, { HOOKRELAY_ROLES: 'api' });
  const admin = await createToken(svc.service.db.db, 'self', { scopes: ['admin'] });
  const id = (await query(svc.dbUrl, `SELECT id FROM hookrelay.api_tokens WHERE name = 'self'`))[0]!.id as string;
  const headers = { authorization: `Bearer ${admin.token}` };
  t.is((await svc.api(`/api/v1/tokens/${id}`, { method: 'DELETE', headers })).status, 200);
  t.is((await svc.api('/api/v1/tokens', { headers })).status, 401);
});

test('tokens without admin get 403 insufficient_scope on the token API', async (t) => {
  const svc = await startTestService(t, { HOOKRELAY_ROLES: 'api' });
  const { token } = await createToken(svc.service.db.db, 'not admin');
  const headers = { authorization: `Bearer ${token}` };
  for (const [method, path, json] of [['POST', '/api/v1/tokens', { name: 'x', scopes: ['admin'] }], ['GET', '/api/v1/tokens', undefined], ['DELETE', '/api/v1/tokens/tok_x', undefined]] as const) {
    const res = await svc.api(path, { method, headers, json });
    t.is(res.status, 403, `${method} ${path}`);
    t.regex(res.headers.get('content-type') ?? '', /^application\/problem\+json/);
    const body = (await res.json()) as Record<string, any>;
    t.is(body.code, 'insufficient_scope');
    t.regex(body.detail, /\badmin\b/);
    t.is(res.headers.get('www-authenticate'), 'Bearer realm="hookrelay", error="insufficient_scope", scope="admin"');
  }
  const [row] = await query(svc.dbUrl, 'SELECT count(*)::int AS n FROM hookrelay.api_tokens');
  t.is(row!.n, 2, 'nothing was created');
});

test('bad input is a 400 naming the field: unknown scope, expiresAt in the past, empty or blank name', async (t) => {
  const svc = await startTestService(t, { HOOKRELAY_ROLES: 'api' });
  const cases: [string, unknown, RegExp][] = [
    ['unknown scope', { name: 'x', scopes: ['webhooks:delete'] }, /^scopes\b/],
    ['no scopes', { name: 'x', scopes: [] }, /^scopes$/],
    ['expiresAt in the past', { name: 'x', expiresAt: '2001-01-01T00:00:00Z' }, /^expiresAt$/],
    ['expiresAt not a date', { name: 'x', expiresAt: 'tomorrow' }, /^expiresAt$/],
    ['empty name', { name: '' }, /^name$/],
    ['blank name', { name: '   ' }, /^name$/],
    ['no name', { scopes: ['admin'] }, /^name$/],
    ['rate 0', { name: 'x', rateLimitPerSecond: 0 }, /^rateLimitPerSecond$/],
    ['unknown field', { name: 'x', token: 'hr_mine' }, /^token$/],
  ];
  for (const [label, json, field] of cases) {
    const res = await svc.api('/api/v1/tokens', { method: 'POST', json });
    t.is(res.status, 400, label);
    const body = (await res.json()) as Record<string, any>;
    t.true(body.errors?.some((e: { field: string }) => field.test(e.field)), `${label}: ${JSON.stringify(body.errors)}`);
    t.regex(body.detail, new RegExp(field.source.replace(/[\^$]/g, '').replace(/\\b/g, '')), label);
  }
  const [row] = await query(svc.dbUrl, 'SELECT count(*)::int AS n FROM hookrelay.api_tokens');
  t.is(row!.n, 1, 'only the test token');
});

test('lastUsedAt is null until a token is used, then says when (to the minute)', async (t) => {
  const svc = await startTestService(t);
  const created = (await (await svc.api('/api/v1/tokens', { method: 'POST', json: { name: 'used-later' } })).json()) as Record<string, any>;
  const listed = async () => ((await (await svc.api('/api/v1/tokens?limit=200')).json()) as { data: Record<string, any>[] }).data.find((r) => r.id === created.id)!;
  t.is((await listed()).lastUsedAt, null);
  const before = Date.now();
  t.is((await svc.api('/api/v1/webhooks', { headers: { authorization: `Bearer ${created.token}` } })).status, 200);
  const used = await listed();
  t.truthy(used.lastUsedAt);
  t.true(Math.abs(Date.parse(used.lastUsedAt) - before) < 60_000);
});
