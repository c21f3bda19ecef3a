import test, { type ExecutionContext } from 'ava';
import { createToken, SCOPES, type Scope } from '../../src/api/tokens.ts';
import { loadSpec, type Operation } from '../../src/api/spec.ts';
import { query } from '../helpers/db.ts';
import { startTestService, type TestService } from '../helpers/service.ts';
import { VALID_BODIES } from '../helpers/api.ts';

/** Scopes: what the document names for each operation is what the router enforces. */

const spec = loadSpec();
const secured = [...spec.operations.values()].filter((op) => op.secured);

/** What the issue asks each operation to need; the document must say the same. */
const EXPECTED: Record<string, Scope> = {
  deliverWebhook: 'webhooks:write',
  retryWebhooks: 'webhooks:write',
  retryWebhook: 'webhooks:write',
  replayDeadLetter: 'webhooks:write',
  replayDeadLetters: 'webhooks:write',
  getWebhookStatus: 'webhooks:read',
  getWebhook: 'webhooks:read',
  listWebhooks: 'webhooks:read',
  listDeadLetters: 'webhooks:read',
  verifySignature: 'webhooks:read',
  getStats: 'webhooks:read',
  createEndpoint: 'endpoints:write',
  updateEndpoint: 'endpoints:write',
  deleteEndpoint: 'endpoints:write',
  rotateEndpointSecret: 'endpoints:write',
  getEndpointSecret: 'endpoints:write',
  getEndpoint: 'endpoints:read',
  listEndpoints: 'endpoints:read',
  getEndpointHealth: 'endpoints:read',
  getEndpointPublicKey: 'endpoints:read',
  createApiToken: 'admin',
  listApiTokens: 'admin',
  revokeApiToken: 'admin',
  getMetrics: 'admin',
};

let n = 0;
function request(op: Operation): { path: string; init: RequestInit & { json?: unknown } } {
  const path = op.path.replace(/\{[^}]+\}/g, 'id_that_does_not_exist');
  const init: RequestInit & { json?: unknown } = { method: op.method };
  if (op.body) {
    if (!(op.operationId in VALID_BODIES)) throw new Error(`scopes.test.ts: no valid body for ${op.operationId}`);
    // A fresh URL per endpoint creation: a second one with the same URL would be a 409.
    init.json = op.operationId === 'createEndpoint' ? { url: `http://127.0.0.1:1/endpoint-${++n}` } : VALID_BODIES[op.operationId];
  }
  return { path, init };
}

async function call(svc: TestService, op: Operation, token: string): Promise<{ status: number; body: any; headers: Headers }> {
  const { path, init } = request(op);
  const res = await svc.api(path, { ...init, headers: { authorization: `Bearer ${token}` } });
  const text = await res.text();
  const json = /json/.test(res.headers.get('content-type') ?? '');
  return { status: res.status, body: text && json ? JSON.parse(text) : text || undefined, headers: res.headers };
}

async function assertForbidden(t: ExecutionContext, r: { status: number; body: any; headers: Headers }, scope: string, label: string): Promise<void> {
  t.is(r.status, 403, label);
  t.regex(r.headers.get('content-type') ?? '', /^application\/problem\+json/, label);
  t.is(r.body.code, 'insufficient_scope', label);
  t.true(String(r.body.detail).includes(scope), `${label}: detail names ${scope}: ${r.body.detail}`);
  t.is(r.headers.get('www-authenticate'), `Bearer realm="hookrelay", error="insufficient_scope", scope="${scope}"`, label);
}

test('every secured operation names exactly one known scope, the one the issue assigns; open ones none', (t) => {
  for (const op of spec.operations.values()) {
    const declared = spec.document.paths[op.path][op.method.toLowerCase()].security;
    if (!op.secured) {
      t.deepEqual(op.scopes, [], op.operationId);
      continue;
    }
    t.true(Array.isArray(declared) && declared.length === 1, `${op.operationId} has its own security requirement`);
    t.deepEqual(Object.keys(declared[0]), ['bearerAuth'], op.operationId);
    t.is(op.scopes.length, 1, `${op.operationId} names exactly one scope`);
    t.true((SCOPES as readonly string[]).includes(op.scopes[0]!), op.operationId);
    t.deepEqual(declared[0].bearerAuth, [...op.scopes], `${op.operationId}: spec.ts reads what the document says`);
    t.is(op.scopes[0], EXPECTED[op.operationId], op.operationId);
  }
  t.deepEqual(secured.map((op) => op.operationId).sort(), Object.keys(EXPECTED).sort());
});

test('each scope reaches exactly the operations the document gives it, and is 403 on the others', async (t) => {
  const svc = await startTestService(t, { HOOKRELAY_ROLES: 'api' });
  for (const scope of SCOPES.filter((s) => s !== 'admin')) {
    const { token } = await createToken(svc.service.db.db, `only ${scope}`, { scopes: [scope] });
    for (const op of secured) {
      const r = await call(svc, op, token);
      const label = `${scope} → ${op.operationId}`;
      if (op.scopes.includes(scope)) {
        // Past the scope check the valid request reaches its handler: a success or a 404 for the made-up id.
        t.true(r.status < 300 || r.status === 404, `${label}: ${r.status} ${JSON.stringify(r.body)}`);
      } else {
        await assertForbidden(t, r, op.scopes[0]!, label);
      }
    }
  }
  // Nothing was created by a refused request: the only endpoints are those endpoints:write made.
  const [row] = await query(svc.dbUrl, 'SELECT (SELECT count(*) FROM hookrelay.webhooks)::int AS webhooks, (SELECT count(*) FROM hookrelay.api_tokens)::int AS tokens');
  t.is(row!.webhooks, 1, 'only the webhooks:write token delivered');
  t.is(row!.tokens, 5, 'the test token and the four made here: no token was made without admin');
});

test('admin can do everything; so can a token holding every scope but admin, except the token API', async (t) => {
  const svc = await startTestService(t, { HOOKRELAY_ROLES: 'api' });
  const admin = await createToken(svc.service.db.db, 'admin', { scopes: ['admin'] });
  const byDefault = await createToken(svc.service.db.db, 'default scopes');
  for (const op of secured) {
    const r = await call(svc, op, admin.token);
    t.true(r.status < 300 || r.status === 404, `admin → ${op.operationId}: ${r.status}`);
    const d = await call(svc, op, byDefault.token);
    if (op.scopes[0] === 'admin') await assertForbidden(t, d, 'admin', `default → ${op.operationId}`);
    else t.true(d.status < 300 || d.status === 404, `default → ${op.operationId}: ${d.status}`);
  }
});

test('HOOKRELAY_ADMIN_TOKEN has the admin scope, in the table too', async (t) => {
  const ADMIN = 'admin-token-for-the-scopes-test-41b2';
  const svc = await startTestService(t, { HOOKRELAY_ROLES: 'api', HOOKRELAY_ADMIN_TOKEN: ADMIN });
  const res = await svc.api('/api/v1/tokens', { headers: { authorization: `Bearer ${ADMIN}` } });
  t.is(res.status, 200);
  const rows = await query(svc.dbUrl, `SELECT scopes FROM hookrelay.api_tokens WHERE name = 'HOOKRELAY_ADMIN_TOKEN'`);
  t.deepEqual(rows.map((r) => r.scopes), [['admin']]);
});

test('expired and revoked tokens are 401 invalid_token on every route; a token with time left works', async (t) => {
  const svc = await startTestService(t, { HOOKRELAY_ROLES: 'api' });
  const db = svc.service.db.db;
  const expired = await createToken(db, 'expired', { scopes: ['admin'], expiresAt: new Date(Date.now() + 60_000) });
  await query(svc.dbUrl, `UPDATE hookrelay.api_tokens SET expires_at = now() - interval '1 second' WHERE id = $1`, [expired.id]);
  const revoked = await createToken(db, 'revoked', { scopes: ['admin'] });
  await query(svc.dbUrl, 'UPDATE hookrelay.api_tokens SET revoked_at = now() WHERE id = $1', [revoked.id]);
  const fresh = await createToken(db, 'fresh', { scopes: ['webhooks:read'], expiresAt: new Date(Date.now() + 3_600_000) });
  for (const op of secured) {
    for (const [label, token] of [['expired', expired.token], ['revoked', revoked.token]] as const) {
      const r = await call(svc, op, token);
      t.is(r.status, 401, `${label} → ${op.operationId}`);
      t.is(r.body.code, 'invalid_token', `${label} → ${op.operationId}`);
      t.regex(r.headers.get('www-authenticate') ?? '', /error="invalid_token"/);
    }
  }
  t.is((await svc.api('/api/v1/webhooks', { headers: { authorization: `Bearer ${fresh.token}` } })).status, 200);
});
