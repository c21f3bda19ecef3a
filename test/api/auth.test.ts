import { createHash } from 'node:crypto';
import test, { type ExecutionContext } from 'ava';
import { createToken, generateToken } from '../../src/api/tokens.ts';
import { loadSpec, type Operation } from '../../src/api/spec.ts';
import { query } from '../helpers/db.ts';
import { startTestService, type TestService } from '../helpers/service.ts';
import { VALID_BODIES } from '../helpers/api.ts';

/** Bearer tokens: which requests need one, which tokens pass, and how tokens are stored. */

const ADMIN_TOKEN = 'admin-token-for-the-auth-tests-7f3a9c';
const sha256 = (text: string) => createHash('sha256').update(text).digest();

const spec = loadSpec();
const secured = [...spec.operations.values()].filter((op) => op.secured);
const open = [...spec.operations.values()].filter((op) => !op.secured);

/** A request that would reach the operation's handler: ids filled in, a valid body where one is taken. */
function requestFor(op: Operation): { path: string; init: RequestInit & { json?: unknown } } {
  const path = op.path.replace(/\{[^}]+\}/g, 'id_that_does_not_exist');
  const init: RequestInit & { json?: unknown } = { method: op.method };
  if (op.body) {
    if (!(op.operationId in VALID_BODIES)) throw new Error(`auth.test.ts: no valid body for ${op.operationId}; add one to VALID_BODIES`);
    init.json = VALID_BODIES[op.operationId];
  }
  return { path, init };
}

/** Webhooks plus endpoints plus signing keys: nothing an unauthenticated request may create. */
async function storedCount(svc: TestService): Promise<number> {
  const [row] = await query(svc.dbUrl, `SELECT
    (SELECT count(*) FROM hookrelay.webhooks)::int + (SELECT count(*) FROM hookrelay.endpoints)::int + (SELECT count(*) FROM hookrelay.signing_keys)::int AS n`);
  return row!.n as number;
}

async function assertUnauthorized(t: ExecutionContext, res: Response, label: string, code?: string): Promise<void> {
  t.is(res.status, 401, label);
  t.regex(res.headers.get('www-authenticate') ?? '', /^Bearer\b/, `${label}: WWW-Authenticate`);
  t.regex(res.headers.get('content-type') ?? '', /^application\/problem\+json/, `${label}: content type`);
  const body = (await res.json()) as Record<string, any>;
  t.is(body.status, 401, label);
  t.is(typeof body.type, 'string', label);
  t.is(typeof body.title, 'string', label);
  t.is(typeof body.detail, 'string', label);
  if (code) t.is(body.code, code, label);
  else t.true(body.code === 'unauthorized' || body.code === 'invalid_token', `${label}: code ${body.code}`);
}

test.serial('the document secures every /api/v1 operation and /metrics, and leaves only health checks open', (t) => {
  t.true(secured.length >= 4);
  for (const op of spec.operations.values()) {
    // /metrics sits where Prometheus looks for it, outside /api/v1, and needs the admin scope.
    t.is(op.secured, op.path.startsWith('/api/v1/') || op.path === '/metrics', `${op.method} ${op.path}`);
  }
  t.deepEqual(open.map((op) => op.path).sort(), ['/healthz', '/readyz']);
});

test.serial('every /api/v1 route without a token is 401 with WWW-Authenticate: Bearer', async (t) => {
  const svc = await startTestService(t);
  for (const op of secured) {
    const { path, init } = requestFor(op);
    await assertUnauthorized(t, await svc.api(path, { ...init, auth: false }), `${op.method} ${op.path}`, 'unauthorized');
  }
  t.is(await storedCount(svc), 0);
});

test.serial('without a token a deliver request is 401 before its body is even looked at', async (t) => {
  const svc = await startTestService(t);
  const res = await svc.api('/api/v1/webhooks/deliver', {
    method: 'POST',
    auth: false,
    headers: { 'content-type': 'application/json' },
    body: '{"this is": not json',
  });
  await assertUnauthorized(t, res, 'invalid JSON, no token', 'unauthorized');
  const huge = await svc.api('/api/v1/webhooks/deliver', { method: 'POST', auth: false, json: { url: 'http://127.0.0.1:1/x', payload: 'a'.repeat(300_000) } });
  await assertUnauthorized(t, huge, 'too large, no token', 'unauthorized');
  t.is(await storedCount(svc), 0);
});

test.serial('wrong, malformed and unknown tokens are 401 on every /api/v1 route', async (t) => {
  const svc = await startTestService(t);
  const unknownButWellFormed = generateToken();
  const flipped = svc.token.slice(0, 10) + (svc.token[10] === 'A' ? 'B' : 'A') + svc.token.slice(11);
  const authorizations: [string, string, string | undefined][] = [
    ['no scheme', svc.token, 'unauthorized'],
    ['Basic scheme', `Basic ${Buffer.from(`user:${svc.token}`).toString('base64')}`, 'unauthorized'],
    ['Token scheme', `Token ${svc.token}`, 'unauthorized'],
    ['Bearer without a token', 'Bearer', 'unauthorized'],
    ['Bearer and spaces', 'Bearer    ', 'unauthorized'],
    ['two tokens', `Bearer ${svc.token} ${svc.token}`, 'unauthorized'],
    ['garbage', 'Bearer not-a-token', 'invalid_token'],
    ['truncated', `Bearer ${svc.token.slice(0, -1)}`, 'invalid_token'],
    ['one character changed', `Bearer ${flipped}`, 'invalid_token'],
    ['well-formed but never stored', `Bearer ${unknownButWellFormed}`, 'invalid_token'],
    ['the hash of the token', `Bearer ${sha256(svc.token).toString('hex')}`, 'invalid_token'],
  ];
  for (const op of secured) {
    const { path, init } = requestFor(op);
    for (const [label, value, code] of authorizations) {
      const res = await svc.api(path, { ...init, headers: { authorization: value } });
      await assertUnauthorized(t, res, `${op.method} ${op.path}: ${label}`, code);
    }
  }
  t.is(await storedCount(svc), 0);
});

test.serial('a valid token passes on every /api/v1 route, whatever the case of "Bearer"', async (t) => {
  const svc = await startTestService(t);
  for (const op of secured) {
    const { path, init } = requestFor(op);
    for (const scheme of ['Bearer', 'bearer', 'BEARER']) {
      // A fresh endpoint URL each time: a second create of the same URL would be a 409.
      const json = op.operationId === 'createEndpoint' ? { url: `http://127.0.0.1:1/endpoint-${scheme}` } : init.json;
      const res = await svc.api(path, { ...init, json, headers: { authorization: `${scheme} ${svc.token}` } });
      t.not(res.status, 401, `${op.method} ${op.path} with ${scheme}`);
      // Past authentication, the valid body reaches the handler: a success or a 404 for the made-up id.
      t.true(res.status < 300 || res.status === 404, `${op.method} ${op.path} with ${scheme}: ${res.status}`);
      await res.arrayBuffer();
    }
  }
});

test.serial('/healthz and /readyz need no token', async (t) => {
  const svc = await startTestService(t);
  const health = await svc.api('/healthz', { auth: false });
  t.is(health.status, 200);
  t.deepEqual(await health.json(), { status: 'ok' });
  const ready = await svc.api('/readyz', { auth: false });
  t.is(ready.status, 200);
  const body = (await ready.json()) as Record<string, any>;
  t.is(body.status, 'ok');
  // A token that is wrong does not turn an open route into a refused one.
  const withBadToken = await svc.api('/healthz', { headers: { authorization: 'Bearer nonsense' } });
  t.is(withBadToken.status, 200);
});

test.serial('HOOKRELAY_ADMIN_TOKEN is accepted and stored only as its SHA-256', async (t) => {
  const svc = await startTestService(t, { HOOKRELAY_ADMIN_TOKEN: ADMIN_TOKEN });
  const res = await svc.api('/api/v1/webhooks/deliver', {
    method: 'POST',
    json: { url: 'http://127.0.0.1:1/x', payload: 1 },
    headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
  });
  t.is(res.status, 202);

  const rows = await query(svc.dbUrl, `SELECT id, name, token_hash, revoked_at, row_to_json(t)::text AS everything FROM hookrelay.api_tokens t ORDER BY created_at`);
  const admin = rows.filter((r) => (r.token_hash as Buffer).equals(sha256(ADMIN_TOKEN)));
  t.is(admin.length, 1, 'one row holds the hash of the admin token');
  t.is(admin[0]!.name, 'HOOKRELAY_ADMIN_TOKEN');
  t.is((admin[0]!.token_hash as Buffer).length, 32);
  for (const row of rows) {
    t.false(row.everything.includes(ADMIN_TOKEN), 'the token text is stored nowhere');
    t.false(row.everything.includes(Buffer.from(ADMIN_TOKEN).toString('hex')), 'nor its hex');
    t.false(row.everything.includes(svc.token), 'nor the text of the created token');
  }
  // Nothing else in the schema holds it either (the webhook was submitted with it).
  const dump = await query(svc.dbUrl, `SELECT row_to_json(w)::text AS j FROM hookrelay.webhooks w`);
  t.false(dump.some((r) => r.j.includes(ADMIN_TOKEN)));
});

test.serial('tokens made with createToken are stored as their 32-byte SHA-256, never as text', async (t) => {
  const svc = await startTestService(t);
  const made = await createToken(svc.service.db.db, 'ci pipeline');
  const rows = await query(svc.dbUrl, `SELECT id, name, token_hash, octet_length(token_hash) AS bytes, pg_typeof(token_hash)::text AS type, row_to_json(t)::text AS everything FROM hookrelay.api_tokens t WHERE id = $1`, [made.id]);
  t.is(rows.length, 1);
  const row = rows[0]!;
  t.is(row.type, 'bytea');
  t.is(row.bytes, 32);
  t.true((row.token_hash as Buffer).equals(sha256(made.token)));
  t.is(row.name, 'ci pipeline');
  t.false(row.everything.includes(made.token));
  // …and it works.
  const res = await svc.api('/api/v1/webhooks/msg_00000000000000000000000000', { headers: { authorization: `Bearer ${made.token}` } });
  t.is(res.status, 404);
});

test.serial('a revoked token is refused; other tokens keep working', async (t) => {
  const svc = await startTestService(t);
  const made = await createToken(svc.service.db.db, 'to be revoked');
  const path = '/api/v1/webhooks/msg_00000000000000000000000000/status';
  const before = await svc.api(path, { headers: { authorization: `Bearer ${made.token}` } });
  t.is(before.status, 404, 'valid before revocation');
  await query(svc.dbUrl, 'UPDATE hookrelay.api_tokens SET revoked_at = now() WHERE id = $1', [made.id]);
  await assertUnauthorized(t, await svc.api(path, { headers: { authorization: `Bearer ${made.token}` } }), 'revoked', 'invalid_token');
  const deliver = await svc.api('/api/v1/webhooks/deliver', {
    method: 'POST',
    json: { url: 'http://127.0.0.1:1/x', payload: 1 },
    headers: { authorization: `Bearer ${made.token}` },
  });
  await assertUnauthorized(t, deliver, 'revoked, deliver', 'invalid_token');
  t.is(await storedCount(svc), 0);
  const other = await svc.api(path);
  t.is(other.status, 404, 'the other token still works');
});

// The admin token's row is how the token table "alone says which tokens exist"
// (src/api/tokens.ts); revoking that row should end the token like any other.
test.serial('revoking the HOOKRELAY_ADMIN_TOKEN row in api_tokens refuses the admin token', async (t) => {
  const svc = await startTestService(t, { HOOKRELAY_ADMIN_TOKEN: ADMIN_TOKEN });
  const path = '/api/v1/webhooks/msg_00000000000000000000000000';
  t.is((await svc.api(path, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).status, 404);
  await query(svc.dbUrl, 'UPDATE hookrelay.api_tokens SET revoked_at = now() WHERE token_hash = $1', [sha256(ADMIN_TOKEN)]);
  await assertUnauthorized(t, await svc.api(path, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } }), 'revoked admin token', 'invalid_token');
});

test.serial('the token never appears in the log, not even when it is refused', async (t) => {
  const svc = await startTestService(t);
  const unknown = generateToken();
  await (await svc.api('/api/v1/webhooks/msg_00000000000000000000000000', { headers: { authorization: `Bearer ${unknown}` } })).arrayBuffer();
  await (await svc.api('/api/v1/webhooks/msg_00000000000000000000000000')).arrayBuffer();
  const all = JSON.stringify(svc.logs);
  t.false(all.includes(unknown));
  t.false(all.includes(svc.token));
});
