import test, { type ExecutionContext } from 'ava';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { loadSpec } from '../../src/api/spec.ts';
import { publicKeyOf } from '../../src/delivery/sign.ts';
import { query } from '../helpers/db.ts';
import { startReceiver } from '../helpers/receiver.ts';
import { eventually, startTestService, type TestService } from '../helpers/service.ts';

/**
 * The endpoints API: create, read, change, soft-delete and list endpoints, their signing keys
 * (sealed at rest), and delivering through an endpoint by its id (its url, headers, retry
 * policy and timeout).
 *
 * Most tests share one API-only service (no worker writes behind their backs) and run
 * serially; each uses URLs of its own, and a test that must see a whole list, or that
 * delivers, gets a service of its own.
 */

const ENDPOINTS = '/api/v1/endpoints';
const DELIVER = '/api/v1/webhooks/deliver';

// ---------------------------------------------------------------------------------------------
// The Endpoint schema from openapi.yaml, with every object that lists its properties closed.

const doc = loadSpec().document;
const SPEC_ID = 'urn:hookrelay:openapi:endpoints-test';

function prepare(schema: unknown): any {
  if (Array.isArray(schema)) return schema.map(prepare);
  if (schema === null || typeof schema !== 'object') return schema;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(schema)) {
    out[k] = k === '$ref' && typeof v === 'string' && v.startsWith('#/') ? SPEC_ID + v : k === 'examples' ? v : prepare(v);
  }
  if (out.properties && out.additionalProperties === undefined && out.unevaluatedProperties === undefined) out.unevaluatedProperties = false;
  return out;
}

const ajv = new Ajv2020({ allErrors: true, strict: false });
(addFormats as unknown as (a: Ajv2020) => void)(ajv);
ajv.addSchema({ $id: SPEC_ID, components: prepare(doc.components) });
const endpointSchema: ValidateFunction = ajv.compile({ $ref: `${SPEC_ID}#/components/schemas/Endpoint` });
const endpointListSchema: ValidateFunction = ajv.compile({ $ref: `${SPEC_ID}#/components/schemas/EndpointList` });

function assertEndpointShape(t: ExecutionContext, body: unknown, label = 'Endpoint'): void {
  t.true(endpointSchema(body), `${label}: ${ajv.errorsText(endpointSchema.errors)}\n${JSON.stringify(body).slice(0, 500)}`);
}

// ---------------------------------------------------------------------------------------------
// One API-only service for the serial tests that do not need a whole list or a worker.

const fileTeardowns: (() => unknown)[] = [];
let shared: TestService;

test.before(async () => {
  const ctx = { teardown: (fn: () => unknown) => void fileTeardowns.push(fn) } as unknown as ExecutionContext;
  shared = await startTestService(ctx, { HOOKRELAY_ROLES: 'api' });
});

test.after.always(async () => {
  for (const fn of fileTeardowns.reverse()) await fn();
});

let unique = 0;
/** A URL no other test uses. */
const freshUrl = (label = 'hook') => `https://ep${++unique}.endpoints-test.example.com/${label}`;

/** `whsec_` and the base64 of `bytes` bytes of `fill`. */
const whsec = (bytes: number, fill = 5) => 'whsec_' + Buffer.alloc(bytes, fill).toString('base64');

type Json = Record<string, any>;

async function call(svc: TestService, path: string, init: RequestInit & { json?: unknown; auth?: boolean } = {}): Promise<{ res: Response; json: Json }> {
  const res = await svc.api(path, init);
  const text = await res.text();
  let json: Json;
  try {
    json = JSON.parse(text) as Json;
  } catch {
    json = { unparsed: text };
  }
  return { res, json };
}

const create = (svc: TestService, body: unknown) => call(svc, ENDPOINTS, { method: 'POST', json: body });
const patch = (svc: TestService, id: string, body: unknown) => call(svc, `${ENDPOINTS}/${id}`, { method: 'PATCH', json: body });
const get = (svc: TestService, id: string) => call(svc, `${ENDPOINTS}/${id}`);
const remove = (svc: TestService, id: string) => call(svc, `${ENDPOINTS}/${id}`, { method: 'DELETE' });
const deliver = (svc: TestService, body: unknown) => call(svc, DELIVER, { method: 'POST', json: body });

async function created(t: ExecutionContext, svc: TestService, body: Json): Promise<Json> {
  const { res, json } = await create(svc, body);
  t.is(res.status, 201, JSON.stringify(json));
  return json;
}

async function stored(svc: TestService): Promise<{ endpoints: number; keys: number; webhooks: number }> {
  const [row] = await query(svc.dbUrl, `SELECT
    (SELECT count(*) FROM hookrelay.endpoints)::int AS endpoints,
    (SELECT count(*) FROM hookrelay.signing_keys)::int AS keys,
    (SELECT count(*) FROM hookrelay.webhooks)::int AS webhooks`);
  return row as { endpoints: number; keys: number; webhooks: number };
}

/** Asserts a problem+json answer with `status`, `code` (when given) and a field error naming `field`. */
function assertProblem(t: ExecutionContext, res: Response, json: Json, expected: { status: number; code?: string; field?: string | RegExp }): void {
  t.is(res.status, expected.status, JSON.stringify(json));
  t.regex(res.headers.get('content-type') ?? '', /^application\/problem\+json/);
  t.is(json.status, expected.status);
  if (expected.code) t.is(json.code, expected.code, json.detail);
  if (expected.field !== undefined) {
    const fields: string[] = (json.errors ?? []).map((e: { field: string }) => e.field);
    const wanted = expected.field;
    t.true(fields.some((f) => (typeof wanted === 'string' ? f === wanted : wanted.test(f))), `errors[].field names ${String(wanted)}; got ${JSON.stringify(fields)}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Create

test.serial('POST /api/v1/endpoints creates: 201, Location, a body that matches the schema, and a sealed signing key', async (t) => {
  const url = freshUrl();
  const { res, json } = await create(shared, {
    url,
    description: 'orders for acme',
    headers: { 'X-Tenant': 'acme' },
    retryPolicy: { maxAttempts: 4, baseDelayMs: 250 },
    timeoutMs: 5000,
    metadata: { team: 'payments', tier: 2, tags: ['a', 'b'] },
  });
  t.is(res.status, 201, JSON.stringify(json));
  assertEndpointShape(t, json);
  t.regex(json.id, /^ep_[0-9A-Z]{26}$/);
  t.is(res.headers.get('location'), `/api/v1/endpoints/${json.id}`);
  t.like(json, {
    url,
    description: 'orders for acme',
    enabled: true,
    disabledReason: null,
    headers: { 'X-Tenant': 'acme' },
    retryPolicy: { maxAttempts: 4, baseDelayMs: 250 },
    timeoutMs: 5000,
    signature: { algorithm: 'hmac-sha256' },
    metadata: { team: 'payments', tier: 2, tags: ['a', 'b'] },
    deletedAt: null,
  });
  t.is(json.createdAt, json.updatedAt);
  t.true(Math.abs(Date.parse(json.createdAt) - Date.now()) < 60_000);
  // What GET answers is what POST answered.
  const again = await get(shared, json.id);
  t.is(again.res.status, 200);
  t.deepEqual(again.json, json);

  // One current HMAC key, sealed: neither the secret's text nor its key bytes are in the row.
  const keys = await query<{ kind: string; sealed_secret: Buffer; expires_at: Date | null; public_key: string | null; row: string }>(shared.dbUrl,
    'SELECT kind, sealed_secret, expires_at, public_key, row_to_json(k)::text AS row FROM hookrelay.signing_keys k WHERE endpoint_id = $1', [json.id]);
  t.is(keys.length, 1);
  t.like(keys[0], { kind: 'hmac', expires_at: null, public_key: null });
  const { json: secretBody } = await call(shared, `${ENDPOINTS}/${json.id}/secret`);
  const secret = secretBody.secret as string;
  t.regex(secret, /^whsec_[A-Za-z0-9+/]+={0,2}$/);
  t.is(Buffer.from(secret.slice(6), 'base64').length, 32);
  const sealed = keys[0]!.sealed_secret;
  t.false(sealed.includes(Buffer.from(secret)), 'the secret text is not in sealed_secret');
  t.false(sealed.includes(Buffer.from(secret.slice(6), 'base64')), 'the key bytes are not in sealed_secret');
  t.false(keys[0]!.row.includes(secret.slice(6)), 'the base64 of the key is nowhere in the row');
  // Nor anywhere in the endpoint's row.
  const endpointRow = await query<{ row: string }>(shared.dbUrl, 'SELECT row_to_json(e)::text AS row FROM hookrelay.endpoints e WHERE id = $1', [json.id]);
  t.false(endpointRow[0]!.row.includes(secret.slice(6)));
});

test.serial('each endpoint gets a secret of its own', async (t) => {
  const a = await created(t, shared, { url: freshUrl() });
  const b = await created(t, shared, { url: freshUrl() });
  const sa = (await call(shared, `${ENDPOINTS}/${a.id}/secret`)).json.secret;
  const sb = (await call(shared, `${ENDPOINTS}/${b.id}/secret`)).json.secret;
  t.not(sa, sb);
});

for (const bytes of [24, 32, 64]) {
  test.serial(`a caller's secret of ${bytes} bytes is used as the endpoint's secret`, async (t) => {
    const secret = whsec(bytes, bytes);
    const ep = await created(t, shared, { url: freshUrl(), secret });
    t.false('secret' in ep, 'the secret is not echoed in the endpoint');
    const res = await call(shared, `${ENDPOINTS}/${ep.id}/secret`);
    t.is(res.res.status, 200);
    t.is(res.res.headers.get('cache-control'), 'no-store');
    t.deepEqual(res.json, { secret });
    const sealed = await query<{ sealed_secret: Buffer }>(shared.dbUrl, 'SELECT sealed_secret FROM hookrelay.signing_keys WHERE endpoint_id = $1', [ep.id]);
    t.false(sealed[0]!.sealed_secret.includes(Buffer.from(secret)));
  });
}

test.serial('an ed25519 endpoint with a caller\'s whsk_ seed serves the matching public key, and no secret', async (t) => {
  const seed = 'whsk_' + Buffer.alloc(32, 11).toString('base64');
  const ep = await created(t, shared, { url: freshUrl(), signature: { algorithm: 'ed25519' }, secret: seed });
  assertEndpointShape(t, ep);
  const pub = await call(shared, `${ENDPOINTS}/${ep.id}/public-key`);
  t.is(pub.res.status, 200);
  t.is(pub.json.publicKey, publicKeyOf(seed));
  const secret = await call(shared, `${ENDPOINTS}/${ep.id}/secret`);
  assertProblem(t, secret.res, secret.json, { status: 409 });
  const keys = await query<{ kind: string; public_key: string; sealed_secret: Buffer }>(shared.dbUrl, 'SELECT kind, public_key, sealed_secret FROM hookrelay.signing_keys WHERE endpoint_id = $1', [ep.id]);
  t.like(keys[0], { kind: 'ed25519', public_key: publicKeyOf(seed) });
  t.false(keys[0]!.sealed_secret.includes(Buffer.from(seed)));
});

test.serial('a second live endpoint with the same URL is 409 naming url, and nothing is stored', async (t) => {
  const url = freshUrl();
  const first = await created(t, shared, { url });
  const before = await stored(shared);
  const again = await create(shared, { url, description: 'again' });
  assertProblem(t, again.res, again.json, { status: 409, field: 'url' });
  t.is(again.json.errors[0].field, 'url');
  t.true(again.json.detail.includes(first.id), again.json.detail);
  // The same URL spelled differently (scheme and host case, a fragment) is the same URL.
  const spelled = await create(shared, { url: url.replace('https://', 'HTTPS://').replace('endpoints-test', 'Endpoints-Test') + '#frag' });
  assertProblem(t, spelled.res, spelled.json, { status: 409, field: 'url' });
  t.deepEqual(await stored(shared), before);
});

// Bad input: each is refused with the field named, and nothing is stored.
const badCreates: [string, unknown, { status: number; code?: string; field?: string | RegExp }][] = [
  ['a missing url', { description: 'no url' }, { status: 400, code: 'validation_failed', field: 'url' }],
  ['an ftp url', { url: 'ftp://files.example.com/x' }, { status: 400, code: 'validation_failed', field: 'url' }],
  ['a relative url', { url: '/hook' }, { status: 400, code: 'validation_failed', field: 'url' }],
  ['a url with credentials', { url: 'https://user:pw@creds.example.com/x' }, { status: 400, code: 'validation_failed', field: 'url' }],
  ['an unknown field', { url: 'https://unknown-field.example.com/', colour: 'blue' }, { status: 400, code: 'validation_failed', field: 'colour' }],
  ['a short secret (whsec_ of 16 bytes)', { url: 'https://short.example.com/', secret: whsec(16) }, { status: 400, code: 'invalid_secret', field: 'secret' }],
  ['a secret of 23 bytes', { url: 'https://short.example.com/', secret: whsec(23) }, { status: 400, code: 'invalid_secret', field: 'secret' }],
  ['a secret of 65 bytes', { url: 'https://long.example.com/', secret: whsec(65) }, { status: 400, code: 'invalid_secret', field: 'secret' }],
  ['a secret that is not base64', { url: 'https://nb64.example.com/', secret: 'whsec_not*base64!at~all' + 'x'.repeat(30) }, { status: 400, code: 'invalid_secret', field: 'secret' }],
  ['a secret without the whsec_ prefix', { url: 'https://prefix.example.com/', secret: Buffer.alloc(32, 1).toString('base64') }, { status: 400, code: 'invalid_secret', field: 'secret' }],
  ['a whsk_ seed for an HMAC endpoint', { url: 'https://kind.example.com/', secret: 'whsk_' + Buffer.alloc(32, 1).toString('base64') }, { status: 400, code: 'invalid_secret', field: 'secret' }],
  ['a whsec_ secret for an ed25519 endpoint', { url: 'https://kind.example.com/', signature: { algorithm: 'ed25519' }, secret: whsec(32) }, { status: 400, code: 'invalid_secret', field: 'secret' }],
  ['a secret that is a number', { url: 'https://num.example.com/', secret: 12345 }, { status: 400, code: 'validation_failed', field: 'secret' }],
  ['an unknown algorithm', { url: 'https://alg.example.com/', signature: { algorithm: 'hmac-md5' } }, { status: 400, code: 'validation_failed', field: 'signature.algorithm' }],
  ['a signature without an algorithm', { url: 'https://alg.example.com/', signature: {} }, { status: 400, code: 'validation_failed', field: 'signature.algorithm' }],
  ['timeoutMs 99', { url: 'https://timeout.example.com/', timeoutMs: 99 }, { status: 400, code: 'validation_failed', field: 'timeoutMs' }],
  ['timeoutMs 300001', { url: 'https://timeout.example.com/', timeoutMs: 300_001 }, { status: 400, code: 'validation_failed', field: 'timeoutMs' }],
  ['timeoutMs 1.5', { url: 'https://timeout.example.com/', timeoutMs: 1000.5 }, { status: 400, code: 'validation_failed', field: 'timeoutMs' }],
  ['timeoutMs null at creation', { url: 'https://timeout.example.com/', timeoutMs: null }, { status: 400, code: 'validation_failed', field: 'timeoutMs' }],
  ['the header Content-Type', { url: 'https://hdr.example.com/', headers: { 'Content-Type': 'text/plain' } }, { status: 400, code: 'reserved_header', field: 'headers.Content-Type' }],
  ['the header webhook-signature', { url: 'https://hdr.example.com/', headers: { 'webhook-signature': 'v1,x' } }, { status: 400, code: 'reserved_header', field: 'headers.webhook-signature' }],
  ['the header X-Webhook-Id', { url: 'https://hdr.example.com/', headers: { 'X-Webhook-Id': 'x' } }, { status: 400, code: 'reserved_header', field: 'headers.X-Webhook-Id' }],
  ['the header Host', { url: 'https://hdr.example.com/', headers: { Host: 'evil.example.com' } }, { status: 400, code: 'reserved_header', field: 'headers.Host' }],
  ['the header Content-Length', { url: 'https://hdr.example.com/', headers: { 'Content-Length': '1' } }, { status: 400, code: 'reserved_header', field: 'headers.Content-Length' }],
  ['the header Transfer-Encoding', { url: 'https://hdr.example.com/', headers: { 'Transfer-Encoding': 'chunked' } }, { status: 400, code: 'reserved_header', field: 'headers.Transfer-Encoding' }],
  ['the header Connection', { url: 'https://hdr.example.com/', headers: { Connection: 'close' } }, { status: 400, code: 'reserved_header', field: 'headers.Connection' }],
  ['a header name with a space', { url: 'https://hdr.example.com/', headers: { 'X Bad': '1' } }, { status: 400, code: 'validation_failed', field: 'headers.X Bad' }],
  ['a header value with CR LF', { url: 'https://hdr.example.com/', headers: { 'X-Inject': 'a\r\nX-Evil: 1' } }, { status: 400, code: 'validation_failed', field: 'headers.X-Inject' }],
  ['a header given twice in different case', { url: 'https://hdr.example.com/', headers: { 'X-Dup': '1', 'x-dup': '2' } }, { status: 400, code: 'validation_failed', field: /^headers\.x-dup$/i }],
  ['metadata that is an array', { url: 'https://meta.example.com/', metadata: [1, 2] }, { status: 400, code: 'validation_failed', field: 'metadata' }],
  ['metadata that is a string', { url: 'https://meta.example.com/', metadata: 'team=payments' }, { status: 400, code: 'validation_failed', field: 'metadata' }],
  ['metadata that is null', { url: 'https://meta.example.com/', metadata: null }, { status: 400, code: 'validation_failed', field: 'metadata' }],
  ['a description over 1000 characters', { url: 'https://desc.example.com/', description: 'd'.repeat(1001) }, { status: 400, code: 'validation_failed', field: 'description' }],
  ['enabled that is a string', { url: 'https://enabled.example.com/', enabled: 'yes' }, { status: 400, code: 'validation_failed', field: 'enabled' }],
  ['retryPolicy.maxAttempts 0', { url: 'https://policy.example.com/', retryPolicy: { maxAttempts: 0 } }, { status: 400, code: 'validation_failed', field: 'retryPolicy.maxAttempts' }],
  ['an unknown retryPolicy field', { url: 'https://policy.example.com/', retryPolicy: { jitter: 0.5 } }, { status: 400, code: 'validation_failed', field: 'retryPolicy.jitter' }],
  ['retryPolicy.maxDelayMs below its baseDelayMs', { url: 'https://policy.example.com/', retryPolicy: { baseDelayMs: 5000, maxDelayMs: 1000 } }, { status: 400, code: 'validation_failed', field: /^retryPolicy\./ }],
];

for (const [what, body, expected] of badCreates) {
  test.serial(`create with ${what} is ${expected.status} naming ${String(expected.field)}, and stores nothing`, async (t) => {
    const before = await stored(shared);
    const { res, json } = await create(shared, body);
    assertProblem(t, res, json, expected);
    t.deepEqual(await stored(shared), before);
  });
}

test.serial('create with a body that is not JSON is 415, and one that is not an object is 400; nothing is stored', async (t) => {
  const before = await stored(shared);
  const text = await call(shared, ENDPOINTS, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: JSON.stringify({ url: freshUrl() }) });
  assertProblem(t, text.res, text.json, { status: 415, code: 'unsupported_media_type' });
  const array = await create(shared, [{ url: freshUrl() }]);
  assertProblem(t, array.res, array.json, { status: 400 });
  const broken = await call(shared, ENDPOINTS, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"url": ' });
  assertProblem(t, broken.res, broken.json, { status: 400, code: 'invalid_json' });
  t.deepEqual(await stored(shared), before);
});

// ---------------------------------------------------------------------------------------------
// Read and change

test.serial('GET of an unknown endpoint is 404', async (t) => {
  const res = await get(shared, 'ep_00000000000000000000000000');
  assertProblem(t, res.res, res.json, { status: 404, code: 'endpoint_not_found' });
});

test.serial('PATCH changes each field alone; the others stay as they were', async (t) => {
  const ep = await created(t, shared, { url: freshUrl(), description: 'before', headers: { 'X-A': '1' }, metadata: { k: 'v' } });
  let current = ep;
  const steps: [string, Json, Json][] = [
    ['description', { description: 'after' }, { description: 'after' }],
    ['headers (replaced as a whole)', { headers: { 'X-B': '2', 'X-C': 'three' } }, { headers: { 'X-B': '2', 'X-C': 'three' } }],
    ['retryPolicy', { retryPolicy: { maxAttempts: 7, backoffFactor: 3 } }, { retryPolicy: { maxAttempts: 7, backoffFactor: 3 } }],
    ['timeoutMs', { timeoutMs: 1234 }, { timeoutMs: 1234 }],
    ['metadata (replaced as a whole)', { metadata: { other: [1, { deep: true }] } }, { metadata: { other: [1, { deep: true }] } }],
    ['signature.algorithm', { signature: { algorithm: 'hmac-sha512' } }, { signature: { algorithm: 'hmac-sha512' } }],
    ['enabled false', { enabled: false }, { enabled: false }],
    ['enabled true', { enabled: true }, { enabled: true, disabledReason: null }],
  ];
  for (const [label, change, expected] of steps) {
    const { res, json } = await patch(shared, ep.id, change);
    t.is(res.status, 200, `${label}: ${JSON.stringify(json)}`);
    assertEndpointShape(t, json, label);
    const next = { ...current, ...expected };
    // Only updatedAt (and disabledReason, which follows enabled) may differ from the expectation.
    const { updatedAt, disabledReason, ...rest } = json;
    const { updatedAt: _u, disabledReason: _d, ...expectedRest } = next;
    t.deepEqual(rest, expectedRest, label);
    t.true(Date.parse(updatedAt) >= Date.parse(current.updatedAt), `${label}: updatedAt moves forward`);
    t.is(json.createdAt, ep.createdAt, `${label}: createdAt stays`);
    t.deepEqual((await get(shared, ep.id)).json, json, `${label}: GET answers the change`);
    if (json.enabled === false) t.is(typeof disabledReason, 'string', `${label}: disabledReason is set`);
    current = json;
  }
  t.true(Date.parse(current.updatedAt) > Date.parse(ep.updatedAt));
  // An algorithm of the same kind keeps the secret.
  const keys = await query(shared.dbUrl, 'SELECT kind, expires_at FROM hookrelay.signing_keys WHERE endpoint_id = $1', [ep.id]);
  t.deepEqual(keys, [{ kind: 'hmac', expires_at: null }]);
});

test.serial('PATCH enabled false sets disabledReason; enabled true clears it', async (t) => {
  const ep = await created(t, shared, { url: freshUrl() });
  const off = await patch(shared, ep.id, { enabled: false });
  t.is(off.res.status, 200);
  t.is(off.json.enabled, false);
  t.is(typeof off.json.disabledReason, 'string');
  t.true(off.json.disabledReason.length > 0);
  const on = await patch(shared, ep.id, { enabled: true });
  t.is(on.json.enabled, true);
  t.is(on.json.disabledReason, null);
  // Created disabled: the same reason is given.
  const born = await created(t, shared, { url: freshUrl(), enabled: false });
  t.is(born.enabled, false);
  t.is(typeof born.disabledReason, 'string');
});

test.serial('PATCH retryPolicy null and timeoutMs null clear them back to the server defaults', async (t) => {
  const ep = await created(t, shared, { url: freshUrl(), retryPolicy: { maxAttempts: 2 }, timeoutMs: 700 });
  t.deepEqual(ep.retryPolicy, { maxAttempts: 2 });
  const cleared = await patch(shared, ep.id, { retryPolicy: null });
  t.is(cleared.res.status, 200);
  t.is(cleared.json.retryPolicy, null);
  t.is(cleared.json.timeoutMs, 700, 'timeoutMs untouched');
  const both = await patch(shared, ep.id, { timeoutMs: null });
  t.is(both.json.timeoutMs, null);
  t.is(both.json.retryPolicy, null);
  const rows = await query(shared.dbUrl, 'SELECT retry_policy, timeout_ms FROM hookrelay.endpoints WHERE id = $1', [ep.id]);
  t.deepEqual(rows, [{ retry_policy: null, timeout_ms: null }]);
  // A webhook through it now gets the server's policy.
  const sent = await deliver(shared, { endpointId: ep.id, payload: 1 });
  t.is(sent.res.status, 202);
  const webhook = await call(shared, `/api/v1/webhooks/${sent.json.id}`);
  t.deepEqual(webhook.json.retryPolicy, shared.config.retry);
});

test.serial('PATCH url: the endpoint moves, the old URL is free, and a URL another endpoint has is 409', async (t) => {
  const oldUrl = freshUrl('old');
  const newUrl = freshUrl('new');
  const ep = await created(t, shared, { url: oldUrl });
  const moved = await patch(shared, ep.id, { url: newUrl });
  t.is(moved.res.status, 200);
  t.is(moved.json.url, newUrl);
  t.is((await get(shared, ep.id)).json.url, newUrl);
  // A webhook by endpointId goes to the new URL.
  const sent = await deliver(shared, { endpointId: ep.id, payload: 1 });
  t.is((await call(shared, `/api/v1/webhooks/${sent.json.id}`)).json.url, newUrl);
  // The old URL can be registered again.
  const reuse = await created(t, shared, { url: oldUrl });
  t.not(reuse.id, ep.id);
  // Taking the URL of another live endpoint is 409 and changes nothing.
  const taken = await patch(shared, ep.id, { url: oldUrl });
  assertProblem(t, taken.res, taken.json, { status: 409, field: 'url' });
  t.is((await get(shared, ep.id)).json.url, newUrl);
  const bad = await patch(shared, ep.id, { url: 'ftp://x.example.com/' });
  assertProblem(t, bad.res, bad.json, { status: 400, field: 'url' });
});

test.serial('PATCH signature.algorithm from HMAC to ed25519 gives a new key of the other kind; the old one keeps signing for a while', async (t) => {
  const ep = await created(t, shared, { url: freshUrl(), secret: whsec(32, 21) });
  const changed = await patch(shared, ep.id, { signature: { algorithm: 'ed25519' } });
  t.is(changed.res.status, 200);
  t.deepEqual(changed.json.signature, { algorithm: 'ed25519' });
  const pub = await call(shared, `${ENDPOINTS}/${ep.id}/public-key`);
  t.is(pub.res.status, 200);
  t.regex(pub.json.publicKey, /^whpk_/);
  const secret = await call(shared, `${ENDPOINTS}/${ep.id}/secret`);
  t.is(secret.res.status, 409);
  const keys = await query<{ kind: string; expires_at: Date | null }>(shared.dbUrl, 'SELECT kind, expires_at FROM hookrelay.signing_keys WHERE endpoint_id = $1 ORDER BY created_at, id', [ep.id]);
  t.is(keys.length, 2);
  t.is(keys[0]!.kind, 'hmac');
  t.truthy(keys[0]!.expires_at, 'the HMAC key is now a previous key');
  t.true(keys[0]!.expires_at!.getTime() > Date.now() + 23 * 3600_000);
  t.like(keys[1], { kind: 'ed25519', expires_at: null });
});

const badPatches: [string, unknown, { status: number; code?: string; field?: string | RegExp }][] = [
  ['an empty object', {}, { status: 400, code: 'validation_failed' }],
  ['an unknown field', { colour: 'blue' }, { status: 400, code: 'validation_failed', field: 'colour' }],
  ['timeoutMs 99', { timeoutMs: 99 }, { status: 400, code: 'validation_failed', field: 'timeoutMs' }],
  ['timeoutMs 300001', { timeoutMs: 300_001 }, { status: 400, code: 'validation_failed', field: 'timeoutMs' }],
  ['a reserved header', { headers: { 'webhook-id': 'x' } }, { status: 400, code: 'reserved_header', field: 'headers.webhook-id' }],
  ['metadata that is an array', { metadata: [] }, { status: 400, code: 'validation_failed', field: 'metadata' }],
  ['metadata null', { metadata: null }, { status: 400, code: 'validation_failed', field: 'metadata' }],
  ['an unknown algorithm', { signature: { algorithm: 'rsa' } }, { status: 400, code: 'validation_failed', field: 'signature.algorithm' }],
  ['enabled null', { enabled: null }, { status: 400, code: 'validation_failed', field: 'enabled' }],
  ['a secret (rotate instead)', { secret: whsec(32) }, { status: 400, code: 'validation_failed', field: 'secret' }],
  ['retryPolicy.maxDelayMs below its baseDelayMs', { retryPolicy: { baseDelayMs: 5000, maxDelayMs: 1000 } }, { status: 400, field: /^retryPolicy\./ }],
];

for (const [what, body, expected] of badPatches) {
  test.serial(`PATCH with ${what} is ${expected.status} and changes nothing`, async (t) => {
    const ep = await created(t, shared, { url: freshUrl(), timeoutMs: 1000, headers: { 'X-Keep': '1' }, metadata: { keep: true } });
    const { res, json } = await patch(shared, ep.id, body);
    assertProblem(t, res, json, expected);
    t.deepEqual((await get(shared, ep.id)).json, ep);
  });
}

test.serial('PATCH of an unknown endpoint is 404; a body that is not JSON is 415', async (t) => {
  const missing = await patch(shared, 'ep_00000000000000000000000000', { description: 'x' });
  assertProblem(t, missing.res, missing.json, { status: 404, code: 'endpoint_not_found' });
  const ep = await created(t, shared, { url: freshUrl() });
  const text = await call(shared, `${ENDPOINTS}/${ep.id}`, { method: 'PATCH', headers: { 'content-type': 'text/plain' }, body: '{"description":"x"}' });
  assertProblem(t, text.res, text.json, { status: 415 });
  t.deepEqual((await get(shared, ep.id)).json, ep);
});

// ---------------------------------------------------------------------------------------------
// Rotation

test.serial('rotating makes a new current secret; a caller\'s secret is used; a bad one is 400 invalid_secret', async (t) => {
  const first = whsec(32, 31);
  const ep = await created(t, shared, { url: freshUrl(), secret: first });
  const rotated = await call(shared, `${ENDPOINTS}/${ep.id}/secret/rotate`, { method: 'POST' });
  t.is(rotated.res.status, 200);
  const second = (await call(shared, `${ENDPOINTS}/${ep.id}/secret`)).json.secret;
  t.not(second, first);
  const mine = whsec(48, 32);
  const withMine = await call(shared, `${ENDPOINTS}/${ep.id}/secret/rotate`, { method: 'POST', json: { secret: mine, graceSeconds: 0 } });
  t.is(withMine.res.status, 200);
  t.is(withMine.json.previousKeyId, rotated.json.keyId);
  t.deepEqual((await call(shared, `${ENDPOINTS}/${ep.id}/secret`)).json, { secret: mine });
  const before = await query(shared.dbUrl, 'SELECT id, expires_at FROM hookrelay.signing_keys WHERE endpoint_id = $1 ORDER BY id', [ep.id]);
  const bad = await call(shared, `${ENDPOINTS}/${ep.id}/secret/rotate`, { method: 'POST', json: { secret: whsec(16) } });
  assertProblem(t, bad.res, bad.json, { status: 400, code: 'invalid_secret', field: 'secret' });
  t.deepEqual(await query(shared.dbUrl, 'SELECT id, expires_at FROM hookrelay.signing_keys WHERE endpoint_id = $1 ORDER BY id', [ep.id]), before);
  t.deepEqual((await call(shared, `${ENDPOINTS}/${ep.id}/secret`)).json, { secret: mine });
});

// ---------------------------------------------------------------------------------------------
// Soft delete

test.serial('DELETE is soft: GET still answers with deletedAt, the list leaves it out, its URL is free, and changing it is 409', async (t) => {
  const url = freshUrl();
  const ep = await created(t, shared, { url });
  const del = await remove(shared, ep.id);
  t.is(del.res.status, 200);
  assertEndpointShape(t, del.json);
  t.is(typeof del.json.deletedAt, 'string');
  t.true(Math.abs(Date.parse(del.json.deletedAt) - Date.now()) < 60_000);
  t.is(del.json.id, ep.id);
  t.is(del.json.url, url);

  const read = await get(shared, ep.id);
  t.is(read.res.status, 200);
  t.deepEqual(read.json, del.json);

  const listed = await call(shared, `${ENDPOINTS}?limit=200&url=${encodeURIComponent(new URL(url).host)}`);
  t.is(listed.res.status, 200);
  t.deepEqual(listed.json.data, []);

  // The URL is free for a new endpoint.
  const again = await created(t, shared, { url });
  t.not(again.id, ep.id);
  const listedAgain = await call(shared, `${ENDPOINTS}?limit=200&url=${encodeURIComponent(new URL(url).host)}`);
  t.deepEqual(listedAgain.json.data.map((e: Json) => e.id), [again.id]);

  // A deleted endpoint cannot be changed, rotated, or delivered to.
  const changed = await patch(shared, ep.id, { description: 'x' });
  assertProblem(t, changed.res, changed.json, { status: 409, code: 'endpoint_deleted' });
  const rotated = await call(shared, `${ENDPOINTS}/${ep.id}/secret/rotate`, { method: 'POST' });
  assertProblem(t, rotated.res, rotated.json, { status: 409, code: 'endpoint_deleted' });
  const before = await stored(shared);
  const sent = await deliver(shared, { endpointId: ep.id, payload: 1 });
  assertProblem(t, sent.res, sent.json, { status: 409, code: 'endpoint_deleted' });
  t.deepEqual(await stored(shared), before);
  t.deepEqual((await get(shared, ep.id)).json, del.json);

  // Deleting again changes nothing.
  const twice = await remove(shared, ep.id);
  t.is(twice.res.status, 200);
  t.deepEqual(twice.json, del.json);
});

test.serial('DELETE of an unknown endpoint is 404', async (t) => {
  const res = await remove(shared, 'ep_00000000000000000000000000');
  assertProblem(t, res.res, res.json, { status: 404, code: 'endpoint_not_found' });
});

test.serial('DELETE ends the webhooks waiting for the endpoint dead, with the error "endpoint deleted" and a dead letter each', async (t) => {
  const ep = await created(t, shared, { url: freshUrl() });
  const other = await created(t, shared, { url: freshUrl() });
  const waiting: string[] = [];
  for (const n of [1, 2, 3]) waiting.push((await deliver(shared, { endpointId: ep.id, payload: { n } })).json.id);
  const byUrl = await deliver(shared, { url: ep.url, payload: { n: 4 } });
  t.is(byUrl.json.endpointId, ep.id);
  waiting.push(byUrl.json.id);
  const untouched = (await deliver(shared, { endpointId: other.id, payload: 1 })).json.id;

  t.is((await remove(shared, ep.id)).res.status, 200);
  for (const id of waiting) {
    const status = await call(shared, `/api/v1/webhooks/${id}/status`);
    t.like(status.json, { id, status: 'dead', error: 'endpoint deleted', nextAttemptAt: null });
  }
  t.like((await call(shared, `/api/v1/webhooks/${untouched}/status`)).json, { status: 'pending', error: null });
  const letters = await call(shared, `/api/v1/dead-letters?endpointId=${ep.id}&limit=200`);
  t.is(letters.res.status, 200);
  t.deepEqual(letters.json.data.map((d: Json) => d.webhookId).sort(), [...waiting].sort());
  t.true(letters.json.data.every((d: Json) => d.reason === 'endpoint_deleted'));
  // Listing by endpoint still finds them: the history stays.
  const listed = await call(shared, `/api/v1/webhooks?endpointId=${ep.id}`);
  t.deepEqual(listed.json.data.map((w: Json) => w.id).sort(), [...waiting].sort());
});

test.serial('a deleted endpoint\'s queued jobs send nothing when a worker gets to them', async (t) => {
  const svc = await startTestService(t, { HOOKRELAY_ROLES: 'api' });
  const rx = await startReceiver(t);
  const ep = await created(t, svc, { url: `${rx.url}/deleted` });
  const ids: string[] = [];
  for (const n of [1, 2]) ids.push((await deliver(svc, { endpointId: ep.id, payload: { n } })).json.id);
  t.is((await remove(svc, ep.id)).res.status, 200);
  // Now a worker on the same database.
  await startTestService(t, { DATABASE_URL: svc.dbUrl, HOOKRELAY_ROLES: 'worker' });
  await eventually(async () => {
    const rows = await query<{ n: number }>(svc.dbUrl, `SELECT count(*)::int AS n FROM hookrelay_queue.job WHERE data->>'webhookId' = ANY($1) AND state IN ('created', 'retry', 'active')`, [ids]);
    return rows[0]!.n === 0 ? true : undefined;
  });
  await new Promise((r) => setTimeout(r, 500));
  t.deepEqual(rx.received, []);
  const attempts = await query(svc.dbUrl, 'SELECT webhook_id FROM hookrelay.attempts WHERE webhook_id = ANY($1)', [ids]);
  t.deepEqual(attempts, []);
  for (const id of ids) t.like((await call(svc, `/api/v1/webhooks/${id}/status`)).json, { status: 'dead', attempts: 0, error: 'endpoint deleted' });
});

// ---------------------------------------------------------------------------------------------
// List

test.serial('the list pages with a cursor: 7 endpoints at limit 3 are 3 + 3 + 1, oldest first, none twice', async (t) => {
  const svc = await startTestService(t, { HOOKRELAY_ROLES: 'api' });
  const ids: string[] = [];
  for (let i = 0; i < 7; i++) ids.push((await created(t, svc, { url: `https://page${i}.example.com/` })).id);
  const pages: Json[][] = [];
  let cursor: string | null = null;
  do {
    const path: string = `${ENDPOINTS}?limit=3${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
    const { res, json } = await call(svc, path);
    t.is(res.status, 200, JSON.stringify(json));
    t.true(endpointListSchema(json), ajv.errorsText(endpointListSchema.errors));
    pages.push(json.data);
    cursor = json.nextCursor;
    if (cursor !== null) t.is(typeof cursor, 'string');
  } while (cursor !== null && pages.length < 10);
  t.deepEqual(pages.map((p) => p.length), [3, 3, 1]);
  const seen = pages.flat().map((e) => e.id as string);
  t.is(new Set(seen).size, seen.length, 'no endpoint twice');
  t.deepEqual(seen, ids, 'every endpoint, oldest first');
  // The defaults: one page of up to 50.
  const all = await call(svc, ENDPOINTS);
  t.deepEqual(all.json.data.map((e: Json) => e.id), ids);
  t.is(all.json.nextCursor, null);
  // limit 1 and limit 200 are the bounds.
  const one = await call(svc, `${ENDPOINTS}?limit=1`);
  t.deepEqual(one.json.data.map((e: Json) => e.id), [ids[0]]);
  t.is(typeof one.json.nextCursor, 'string');
  const max = await call(svc, `${ENDPOINTS}?limit=200`);
  t.is(max.json.data.length, 7);
  t.is(max.json.nextCursor, null);
  // Exactly `limit` endpoints left: the last page says there is no next one.
  const seven = await call(svc, `${ENDPOINTS}?limit=7`);
  t.is(seven.json.data.length, 7);
  t.is(seven.json.nextCursor, null);
});

test.serial('the list filters by enabled, by URL substring (case-insensitive, % and _ literal) and by health state', async (t) => {
  const svc = await startTestService(t, { HOOKRELAY_ROLES: 'api' });
  const on = await created(t, svc, { url: 'https://Orders.Example.com/under_score' });
  const off = await created(t, svc, { url: 'https://billing.example.com/underXscore', enabled: false });
  const pct = await created(t, svc, { url: 'https://billing.example.com/p%41th' });
  const notPct = await created(t, svc, { url: 'https://billing.example.com/pZZ41th' });
  const gone = await created(t, svc, { url: 'https://orders.example.com/deleted' });
  t.is((await remove(svc, gone.id)).res.status, 200);
  const ids = async (qs: string) => {
    const { res, json } = await call(svc, `${ENDPOINTS}?${qs}`);
    t.is(res.status, 200, `${qs}: ${JSON.stringify(json)}`);
    return (json.data as Json[]).map((e) => e.id as string);
  };
  t.deepEqual(await ids('enabled=true'), [on.id, pct.id, notPct.id]);
  t.deepEqual(await ids('enabled=false'), [off.id]);
  t.deepEqual(await ids(`url=${encodeURIComponent('ORDERS.example')}`), [on.id]);
  t.deepEqual(await ids(`url=${encodeURIComponent('under_score')}`), [on.id], '_ is not a wildcard');
  t.deepEqual(await ids(`url=${encodeURIComponent('p%41')}`), [pct.id], '% is not a wildcard');
  t.deepEqual(await ids(`url=${encodeURIComponent('%')}`), [pct.id]);
  t.deepEqual(await ids(`url=${encodeURIComponent('_')}`), [on.id]);
  t.deepEqual(await ids(`url=billing&enabled=true`), [pct.id, notPct.id]);
  t.deepEqual(await ids(`url=nowhere`), []);
  t.deepEqual(await ids('healthState=closed'), [on.id, off.id, pct.id, notPct.id]);
  t.deepEqual(await ids('healthState=open'), []);
  for (const [qs, field] of [['enabled=yes', 'enabled'], ['url=', 'url'], ['healthState=broken', 'healthState']] as const) {
    const { res, json } = await call(svc, `${ENDPOINTS}?${qs}`);
    assertProblem(t, res, json, { status: 400, field });
  }
});

test.serial('limit 0, 201, abc and 1.5 are 400 naming limit', async (t) => {
  for (const limit of ['0', '201', 'abc', '1.5', '-1', '']) {
    const { res, json } = await call(shared, `${ENDPOINTS}?limit=${limit}`);
    assertProblem(t, res, json, { status: 400, code: 'validation_failed', field: 'limit' });
  }
});

test.serial('a changed cursor is 400 invalid_cursor naming cursor, and so is a cursor of another list', async (t) => {
  const svc = await startTestService(t, { HOOKRELAY_ROLES: 'api' });
  for (let i = 0; i < 3; i++) await created(t, svc, { url: `https://cursor${i}.example.com/` });
  const first = await call(svc, `${ENDPOINTS}?limit=1`);
  const cursor = first.json.nextCursor as string;
  t.is(typeof cursor, 'string');
  t.is((await call(svc, `${ENDPOINTS}?limit=1&cursor=${encodeURIComponent(cursor)}`)).res.status, 200);
  const dot = cursor.indexOf('.');
  t.true(dot > 0);
  const change = (s: string, i: number) => s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1);
  // One character changed: in the position, in the middle of the MAC, at the very start.
  for (const tampered of [change(cursor, 0), change(cursor, dot - 1), change(cursor, dot + 5), cursor.slice(0, -2), `${cursor}.x`, 'garbage', `${cursor.slice(0, dot)}.`]) {
    const { res, json } = await call(svc, `${ENDPOINTS}?limit=1&cursor=${encodeURIComponent(tampered)}`);
    assertProblem(t, res, json, { status: 400, code: 'invalid_cursor', field: 'cursor' });
  }
  // A forged position with no valid MAC.
  const forged = `${Buffer.from(JSON.stringify({ id: 'ep_0' })).toString('base64url')}.${cursor.slice(dot + 1)}`;
  const f = await call(svc, `${ENDPOINTS}?cursor=${encodeURIComponent(forged)}`);
  assertProblem(t, f.res, f.json, { status: 400, code: 'invalid_cursor', field: 'cursor' });
  // A cursor of the webhooks list is not an endpoints cursor.
  for (let i = 0; i < 2; i++) await deliver(svc, { url: `https://cursor${i}.example.com/`, payload: i });
  const webhooksCursor = (await call(svc, '/api/v1/webhooks?limit=1')).json.nextCursor as string;
  t.is(typeof webhooksCursor, 'string');
  const other = await call(svc, `${ENDPOINTS}?cursor=${encodeURIComponent(webhooksCursor)}`);
  assertProblem(t, other.res, other.json, { status: 400, code: 'invalid_cursor', field: 'cursor' });
  // Over 512 characters is refused by the document's bound.
  const long = await call(svc, `${ENDPOINTS}?cursor=${'a'.repeat(513)}`);
  assertProblem(t, long.res, long.json, { status: 400, field: 'cursor' });
});

test.serial('a cursor of one service is refused by a service with another master key', async (t) => {
  const svc = await startTestService(t, { HOOKRELAY_ROLES: 'api' });
  for (let i = 0; i < 2; i++) await created(t, svc, { url: `https://mk${i}.example.com/` });
  const cursor = (await call(svc, `${ENDPOINTS}?limit=1`)).json.nextCursor as string;
  const other = await startTestService(t, { HOOKRELAY_ROLES: 'api', HOOKRELAY_MASTER_KEY: Buffer.alloc(32, 99).toString('base64') });
  const { res, json } = await call(other, `${ENDPOINTS}?cursor=${encodeURIComponent(cursor)}`);
  assertProblem(t, res, json, { status: 400, code: 'invalid_cursor', field: 'cursor' });
});

// ---------------------------------------------------------------------------------------------
// Delivering by endpointId

test.serial('deliver with both url and endpointId, or neither, is 400; an unknown endpointId is 404; nothing is stored', async (t) => {
  const ep = await created(t, shared, { url: freshUrl() });
  const before = await stored(shared);
  const both = await deliver(shared, { url: ep.url, endpointId: ep.id, payload: 1 });
  assertProblem(t, both.res, both.json, { status: 400, field: /^(url|endpointId)$/ });
  const neither = await deliver(shared, { payload: 1 });
  assertProblem(t, neither.res, neither.json, { status: 400, field: /^(url|endpointId)$/ });
  const unknown = await deliver(shared, { endpointId: 'ep_00000000000000000000000000', payload: 1 });
  assertProblem(t, unknown.res, unknown.json, { status: 404, code: 'endpoint_not_found', field: 'endpointId' });
  t.deepEqual(await stored(shared), before);
});

test.serial('deliver to a disabled endpoint is accepted as held, and enabling it releases the webhook', async (t) => {
  const ep = await created(t, shared, { url: freshUrl(), enabled: false });
  const held = await deliver(shared, { endpointId: ep.id, payload: 1 });
  t.is(held.res.status, 202);
  t.is(held.json.status, 'held');
  t.like((await call(shared, `/api/v1/webhooks/${held.json.id}/status`)).json, { status: 'held' });
  t.is((await patch(shared, ep.id, { enabled: true })).res.status, 200);
  t.like((await call(shared, `/api/v1/webhooks/${held.json.id}/status`)).json, { status: 'pending' });
});

/** A service with a worker, whose circuit breaker stays out of the way of these tests. */
const deliveryEnv = { HOOKRELAY_CIRCUIT_FAILURE_THRESHOLD: '1000', HOOKRELAY_CIRCUIT_MIN_REQUESTS: '1000000' };

async function settled(svc: TestService, id: string, timeoutMs = 20_000): Promise<Json> {
  return eventually(async () => {
    const { json } = await call(svc, `/api/v1/webhooks/${id}`);
    return json.status === 'delivered' || json.status === 'dead' ? json : undefined;
  }, timeoutMs);
}

test.serial('deliver by endpointId sends to the endpoint\'s URL with its headers; the webhook\'s headers win by name, whatever the case', async (t) => {
  const svc = await startTestService(t, deliveryEnv);
  const rx = await startReceiver(t);
  const ep = await created(t, svc, { url: `${rx.url}/by-id?q=1`, headers: { 'X-Tenant': 'acme', 'X-Env': 'prod', 'Authorization': 'Bearer endpoint-credential' } });
  const payload = { order: 'o_9', lines: [1, 2], note: 'é' };
  const sent = await deliver(svc, { endpointId: ep.id, payload, headers: { 'x-env': 'staging', 'X-Extra': 'yes' } });
  t.is(sent.res.status, 202, JSON.stringify(sent.json));
  t.is(sent.json.endpointId, ep.id);
  const [got] = await rx.waitFor(1);
  t.is(got!.path, '/by-id?q=1');
  t.is(got!.body, JSON.stringify(payload));
  t.is(got!.headers['x-tenant'], 'acme');
  t.is(got!.headers['x-env'], 'staging', 'the webhook\'s header replaces the endpoint\'s of the same name, not added to it');
  t.is(got!.headers['x-extra'], 'yes');
  t.is(got!.headers['authorization'], 'Bearer endpoint-credential');
  t.is(got!.headers['webhook-id'], sent.json.id);
  // Signed with the endpoint's key.
  const verified = await call(svc, '/api/v1/signatures/verify', { method: 'POST', json: { body: got!.body, headers: got!.headers, endpointId: ep.id } });
  t.like(verified.json, { valid: true });
  const webhook = await settled(svc, sent.json.id);
  t.is(webhook.status, 'delivered');
  t.is(webhook.url, `${rx.url}/by-id?q=1`);
  // The endpoint's headers are not copied into the webhook: the webhook keeps its own.
  t.deepEqual(webhook.headers, { 'x-env': 'staging', 'X-Extra': 'yes' });
});

test.serial('the endpoint\'s retry policy applies (dead after 2 attempts), and a webhook\'s own maxAttempts overrides it', async (t) => {
  const svc = await startTestService(t, deliveryEnv);
  const rx = await startReceiver(t);
  rx.fallback = { status: 500, body: 'down' };
  const ep = await created(t, svc, { url: `${rx.url}/failing`, retryPolicy: { maxAttempts: 2, baseDelayMs: 100, maxDelayMs: 200 } });

  const plain = await deliver(svc, { endpointId: ep.id, payload: { which: 'endpoint policy' } });
  t.is(plain.res.status, 202);
  const dead = await settled(svc, plain.json.id);
  t.is(dead.status, 'dead');
  t.is(dead.attemptCount, 2);
  t.deepEqual(dead.attempts.map((a: Json) => [a.number, a.outcome, a.statusCode]), [[1, 'failure', 500], [2, 'failure', 500]]);
  t.like(dead.retryPolicy, { maxAttempts: 2, baseDelayMs: 100, maxDelayMs: 200 });
  t.is(dead.retryPolicy.backoffFactor, svc.config.retry.backoffFactor, 'the server default fills what the endpoint leaves out');

  const own = await deliver(svc, { endpointId: ep.id, payload: { which: 'own policy' }, retryPolicy: { maxAttempts: 3 } });
  const ownDead = await settled(svc, own.json.id);
  t.is(ownDead.status, 'dead');
  t.is(ownDead.attemptCount, 3);
  t.like(ownDead.retryPolicy, { maxAttempts: 3, baseDelayMs: 100, maxDelayMs: 200 });
  // Nothing more arrives: 2 + 3 requests in all.
  await new Promise((r) => setTimeout(r, 700));
  t.is(rx.received.length, 5);
  t.is(rx.received.filter((r) => r.body === JSON.stringify({ which: 'endpoint policy' })).length, 2);
  t.is(rx.received.filter((r) => r.body === JSON.stringify({ which: 'own policy' })).length, 3);
});

test.serial('the endpoint\'s timeoutMs bounds each attempt: 300 ms against a receiver that never answers is a timeout', async (t) => {
  const svc = await startTestService(t, { ...deliveryEnv, HOOKRELAY_DELIVERY_TIMEOUT_MS: '20000' });
  const rx = await startReceiver(t);
  rx.fallback = { hang: true };
  const ep = await created(t, svc, { url: `${rx.url}/hang`, timeoutMs: 300, retryPolicy: { maxAttempts: 1 } });
  const sent = await deliver(svc, { endpointId: ep.id, payload: 1 });
  t.is(sent.res.status, 202);
  const webhook = await settled(svc, sent.json.id, 10_000);
  t.is(webhook.status, 'dead');
  t.is(webhook.attempts.length, 1);
  const [attempt] = webhook.attempts;
  t.is(attempt.errorClass, 'timeout');
  t.is(attempt.statusCode, null);
  t.true(attempt.durationMs >= 250, `${attempt.durationMs} ms`);
  t.true(attempt.durationMs < 5000, `${attempt.durationMs} ms: the endpoint's 300 ms, not the server's 20 s`);
});

// ---------------------------------------------------------------------------------------------

test.serial('no signing secret reaches the log: creating, reading, rotating and verifying with them', async (t) => {
  const svc = await startTestService(t, { HOOKRELAY_ROLES: 'api' });
  const secrets = [whsec(32, 41), whsec(40, 42)];
  const ep = await created(t, svc, { url: freshUrl(), secret: secrets[0] });
  await call(svc, `${ENDPOINTS}/${ep.id}/secret`);
  await call(svc, `${ENDPOINTS}/${ep.id}/secret/rotate`, { method: 'POST', json: { secret: secrets[1] } });
  const generated = (await call(svc, `${ENDPOINTS}/${(await created(t, svc, { url: freshUrl() })).id}/secret`)).json.secret as string;
  await call(svc, '/api/v1/signatures/verify', { method: 'POST', json: { body: '{}', headers: {}, secret: secrets[1] } });
  // A refused secret too.
  await create(svc, { url: freshUrl(), secret: whsec(16, 43) });
  const all = JSON.stringify(svc.logs);
  for (const s of [...secrets, generated, whsec(16, 43)]) {
    t.false(all.includes(s.slice('whsec_'.length)), 'a secret is in the log');
  }
});

// Runs last among the serial tests: the shared service answered no 500.
test.serial('the shared service logged no error', (t) => {
  t.deepEqual(shared.logs.filter((l) => l.level === 'error'), []);
});
