import { connect } from 'node:net';
import test, { type ExecutionContext } from 'ava';
import { query } from '../helpers/db.ts';
import { startReceiver } from '../helpers/receiver.ts';
import { eventually, startTestService, type TestService } from '../helpers/service.ts';

/**
 * Bad input on POST /api/v1/webhooks/deliver: every refusal is an RFC 9457 problem with the
 * right status, names the field at fault, and stores nothing.
 *
 * The refused requests share one service (they must store nothing, so they cannot disturb
 * each other). It runs the API role only, so no worker writes behind a test's back, and the
 * tests run serially: each checks that the counts did not move across its request, and a last
 * test checks that the tables are still empty. Accepted edge cases get a service of their own.
 */

const DELIVER = '/api/v1/webhooks/deliver';
const NOWHERE = 'http://127.0.0.1:1/x';

// ---------------------------------------------------------------------------------------------
// One service for the whole file: startTestService only needs `teardown` from its context.

const fileTeardowns: (() => unknown)[] = [];
let shared: TestService;

test.before(async () => {
  const ctx = { teardown: (fn: () => unknown) => void fileTeardowns.push(fn) } as unknown as ExecutionContext;
  shared = await startTestService(ctx, { HOOKRELAY_ROLES: 'api' });
});

test.after.always(async () => {
  for (const fn of fileTeardowns.reverse()) await fn();
});

// ---------------------------------------------------------------------------------------------

async function stored(dbUrl: string): Promise<{ webhooks: number; endpoints: number; keys: number; jobs: number }> {
  const [row] = await query(dbUrl, `SELECT
    (SELECT count(*) FROM hookrelay.webhooks)::int AS webhooks,
    (SELECT count(*) FROM hookrelay.endpoints)::int AS endpoints,
    (SELECT count(*) FROM hookrelay.signing_keys)::int AS keys,
    (SELECT count(*) FROM hookrelay_queue.job)::int AS jobs`);
  return row as { webhooks: number; endpoints: number; keys: number; jobs: number };
}

interface Expected {
  status: number;
  code: string;
  /** The field errors[] must name (exact string, or a pattern). Omit when there is none. */
  field?: string | RegExp;
}

/** Asserts a problem+json answer and returns its body. */
async function assertProblem(t: ExecutionContext, res: Response, expected: Expected): Promise<Record<string, any>> {
  t.is(res.status, expected.status, 'HTTP status');
  t.regex(res.headers.get('content-type') ?? '', /^application\/problem\+json\b/, 'content type');
  const text = await res.text();
  let body: Record<string, any>;
  try {
    body = JSON.parse(text) as Record<string, any>;
  } catch {
    t.fail(`the body is not JSON: ${text.slice(0, 200)}`);
    return {};
  }
  t.is(typeof body.type, 'string', 'problem.type');
  t.true(body.type.length > 0, 'problem.type is not empty');
  t.is(typeof body.title, 'string', 'problem.title');
  t.is(body.status, expected.status, 'problem.status equals the HTTP status');
  t.is(body.code, expected.code, `problem.code (detail: ${body.detail})`);
  t.is(typeof body.detail, 'string', 'problem.detail');
  t.true(body.detail.length > 0, 'problem.detail is not empty');
  if (expected.field !== undefined) {
    t.true(Array.isArray(body.errors) && body.errors.length > 0, `errors[] is present (body: ${text.slice(0, 300)})`);
    const fields: string[] = (body.errors ?? []).map((e: { field: string }) => e.field);
    const wanted = expected.field;
    const hit = (body.errors ?? []).find((e: { field: string }) => (typeof wanted === 'string' ? e.field === wanted : wanted.test(e.field)));
    t.truthy(hit, `errors[].field names ${String(wanted)}; got ${JSON.stringify(fields)}`);
    if (hit) {
      t.is(typeof hit.message, 'string');
      t.is(typeof hit.pointer, 'string');
    }
  }
  return body;
}

const EMPTY = Object.freeze({ webhooks: 0, endpoints: 0, keys: 0, jobs: 0 });

/** Runs `fn` and asserts that it stored nothing: the counts are the same after as before. */
async function storesNothing<T>(t: ExecutionContext, fn: () => Promise<T>, svc: TestService = shared): Promise<T> {
  const before = await stored(svc.dbUrl);
  const result = await fn();
  t.deepEqual(await stored(svc.dbUrl), before, 'nothing is stored');
  return result;
}

interface Case extends Expected {
  /** A JSON value, sent as application/json. */
  json?: unknown;
  /** Raw body text (with `contentType`, default application/json). */
  raw?: string;
  contentType?: string;
  headers?: Record<string, string>;
}

const refused = test.macro(async (t, c: Case) => {
  const headers: Record<string, string> = { ...c.headers };
  let body: string | undefined;
  if (c.json !== undefined) {
    body = JSON.stringify(c.json);
    headers['content-type'] = c.contentType ?? 'application/json';
  } else if (c.raw !== undefined) {
    body = c.raw;
    headers['content-type'] = c.contentType ?? 'application/json';
  }
  await storesNothing(t, async () => {
    const res = await shared.api(DELIVER, { method: 'POST', headers, ...(body !== undefined ? { body } : {}) });
    await assertProblem(t, res, c);
  });
});

const ok = (extra: Record<string, unknown> = {}) => ({ url: NOWHERE, payload: { n: 1 }, ...extra });

// ---------------------------------------------------------------------------------------------
// The body as a whole

test.serial('invalid JSON is 400 invalid_json', refused, { raw: '{"url": "http://127.0.0.1:1/x", "payload": ', status: 400, code: 'invalid_json' });
test.serial('JSON with a trailing comma is 400 invalid_json', refused, { raw: '{"url": "http://127.0.0.1:1/x", "payload": 1,}', status: 400, code: 'invalid_json' });
test.serial('a text/plain body is 415', refused, { raw: JSON.stringify(ok()), contentType: 'text/plain', status: 415, code: 'unsupported_media_type' });
test.serial('a form body is 415', refused, { raw: 'url=http%3A%2F%2Fx&payload=1', contentType: 'application/x-www-form-urlencoded', status: 415, code: 'unsupported_media_type' });
test.serial('an empty application/json body is 400', refused, { raw: '', status: 400, code: 'validation_failed', field: '' });
test.serial('a JSON array as the body is 400', refused, { raw: '[]', status: 400, code: 'validation_failed', field: '' });
test.serial('a JSON string as the body is 400', refused, { raw: '"http://127.0.0.1:1/x"', status: 400, code: 'validation_failed', field: '' });
test.serial('a JSON null as the body is 400', refused, { raw: 'null', status: 400, code: 'validation_failed', field: '' });

/** Sends exactly these request bytes and parses the answer (Connection: close). */
async function rawRequest(head: string): Promise<{ status: number; headers: Record<string, string>; body: string }> {
  const { port } = new URL(shared.url);
  // Written without ending our side: the server closes the connection after its answer.
  const socket = connect(Number(port), '127.0.0.1');
  socket.write(head);
  const chunks: Buffer[] = [];
  for await (const chunk of socket) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  const [headText = '', ...rest] = text.split('\r\n\r\n');
  const [statusLine = '', ...lines] = headText.split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const i = line.indexOf(':');
    headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  let body = rest.join('\r\n\r\n');
  if (headers['transfer-encoding'] === 'chunked') {
    // Good enough for the small answers here: drop the chunk-size lines.
    body = body.split('\r\n').filter((_, i) => i % 2 === 1).join('');
  }
  return { status: Number(statusLine.split(' ')[1]), headers, body };
}

test.serial('a POST without any body (no Content-Length, no Transfer-Encoding, no Content-Type) is 400', async (t) => {
  const res = await storesNothing(t, () => rawRequest(
    `POST ${DELIVER} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${shared.token}\r\nConnection: close\r\n\r\n`,
  ));
  t.is(res.status, 400);
  t.regex(res.headers['content-type'] ?? '', /^application\/problem\+json/);
  const body = JSON.parse(res.body) as Record<string, any>;
  t.is(body.status, 400);
  t.is(body.code, 'validation_failed');
  t.is(typeof body.detail, 'string');
});

// fetch() sends `Content-Length: 0` for a POST without a body: an empty body is no body either
// (RFC 9110 8.6), and it carries no media type to be unsupported.
test.serial('a POST without a body as fetch() sends it (Content-Length: 0, no Content-Type) is 400', async (t) => {
  await storesNothing(t, async () => {
    const res = await shared.api(DELIVER, { method: 'POST' });
    await assertProblem(t, res, { status: 400, code: 'validation_failed' });
  });
});

test.serial('a body in an unknown content encoding is refused as a client error', async (t) => {
  await storesNothing(t, async () => {
    const res = await shared.api(DELIVER, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-encoding': 'x-unknown' },
      body: JSON.stringify(ok()),
    });
    t.true(res.status === 400 || res.status === 415, `status ${res.status}`);
    t.regex(res.headers.get('content-type') ?? '', /^application\/problem\+json/);
  });
});

test.serial('a body that claims gzip but is not gzip is a 400, not a 500', async (t) => {
  await storesNothing(t, async () => {
    const res = await shared.api(DELIVER, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
      body: JSON.stringify(ok()),
    });
    await assertProblem(t, res, { status: 400, code: 'invalid_body' });
  });
});

// ---------------------------------------------------------------------------------------------
// url

test.serial('a missing url is 400 naming url', refused, { json: { payload: 1 }, status: 400, code: 'validation_failed', field: 'url' });
test.serial('an ftp: url is 400 naming url', refused, { json: ok({ url: 'ftp://127.0.0.1/x' }), status: 400, code: 'validation_failed', field: 'url' });
test.serial('a javascript: url is 400 naming url', refused, { json: ok({ url: 'javascript:alert(1)' }), status: 400, code: 'validation_failed', field: 'url' });
test.serial('a relative url is 400 naming url', refused, { json: ok({ url: '/webhooks' }), status: 400, code: 'validation_failed', field: 'url' });
test.serial('a scheme-relative url is 400 naming url', refused, { json: ok({ url: '//127.0.0.1/x' }), status: 400, code: 'validation_failed', field: 'url' });
test.serial('a url without a host is 400 naming url', refused, { json: ok({ url: 'http://' }), status: 400, code: 'validation_failed', field: 'url' });
test.serial('a url with credentials is 400 naming url', refused, { json: ok({ url: 'https://user:secret@127.0.0.1/x' }), status: 400, code: 'validation_failed', field: 'url' });
test.serial('a url with only a user name is 400 naming url', refused, { json: ok({ url: 'http://user@127.0.0.1/x' }), status: 400, code: 'validation_failed', field: 'url' });
test.serial('a url longer than 2048 characters is 400 naming url', refused, { json: ok({ url: `http://127.0.0.1/${'a'.repeat(2048)}` }), status: 400, code: 'validation_failed', field: 'url' });
test.serial('a url that is a number is 400 naming url', refused, { json: ok({ url: 12345 }), status: 400, code: 'validation_failed', field: 'url' });
test.serial('a url that is null is 400 naming url', refused, { json: ok({ url: null }), status: 400, code: 'validation_failed', field: 'url' });

// ---------------------------------------------------------------------------------------------
// endpointId (exactly one of url and endpointId)

const UNKNOWN_ENDPOINT = 'ep_00000000000000000000000000';
test.serial('url and endpointId together are 400 naming endpointId', refused, { json: ok({ endpointId: UNKNOWN_ENDPOINT }), status: 400, code: 'validation_failed', field: 'endpointId' });
test.serial('neither url nor endpointId is 400 naming url', refused, { json: { payload: 1, headers: {} }, status: 400, code: 'validation_failed', field: 'url' });
test.serial('an endpointId longer than 64 characters is 400 naming endpointId', refused, { json: { endpointId: 'e'.repeat(65), payload: 1 }, status: 400, code: 'validation_failed', field: 'endpointId' });
test.serial('an endpointId that is a number is 400 naming endpointId', refused, { json: { endpointId: 42, payload: 1 }, status: 400, code: 'validation_failed', field: 'endpointId' });
test.serial('an endpointId that is null is 400 naming endpointId', refused, { json: { endpointId: null, payload: 1 }, status: 400, code: 'validation_failed', field: 'endpointId' });
test.serial('an unknown endpointId is 404 naming endpointId', refused, { json: { endpointId: UNKNOWN_ENDPOINT, payload: 1 }, status: 404, code: 'endpoint_not_found', field: 'endpointId' });

// ---------------------------------------------------------------------------------------------
// payload

test.serial('a missing payload is 400 naming payload', refused, { json: { url: NOWHERE }, status: 400, code: 'validation_failed', field: 'payload' });
test.serial('a payload string with a NUL character is 400 naming it', refused, { json: ok({ payload: { note: 'a\u0000b' } }), status: 400, code: 'validation_failed', field: 'payload.note' });
test.serial('a payload key with a NUL character is 400 naming payload', refused, { json: ok({ payload: { 'a\u0000': 1 } }), status: 400, code: 'validation_failed', field: /^payload/ });
test.serial('a payload string with a lone surrogate is 400 naming payload', refused, {
  raw: '{"url":"http://127.0.0.1:1/x","payload":"\\ud800"}',
  status: 400,
  code: 'validation_failed',
  field: 'payload',
});
test.serial('a lone surrogate deep inside the payload is 400 naming its path', refused, {
  raw: '{"url":"http://127.0.0.1:1/x","payload":{"a":[1,"\\udc00x"]}}',
  status: 400,
  code: 'validation_failed',
  field: 'payload.a.1',
});

function nestedArrays(depth: number): string {
  return `${'['.repeat(depth)}1${']'.repeat(depth)}`;
}

test.serial('a payload nested 100 levels deep is 400 naming payload', refused, {
  raw: `{"url":"http://127.0.0.1:1/x","payload":${nestedArrays(100)}}`,
  status: 400,
  code: 'validation_failed',
  field: /^payload(\.0)+$/,
});

// Small on the wire (200 KB), far too deep for a recursive serializer.
test.serial('a payload nested 100 000 levels deep is 400, not a 500', refused, {
  raw: `{"url":"http://127.0.0.1:1/x","payload":${nestedArrays(100_000)}}`,
  status: 400,
  code: 'validation_failed',
  field: /^payload/,
});

test.serial('an object payload nested 20 000 levels deep is 400, not a 500', refused, {
  raw: `{"url":"http://127.0.0.1:1/x","payload":${'{"a":'.repeat(20_000)}1${'}'.repeat(20_000)}}`,
  status: 400,
  code: 'validation_failed',
  field: /^payload/,
});

// JSON.parse turns 1e400 into Infinity, which JSON.stringify writes as null: the receiver
// would get a different payload from the one submitted.
test.serial('a payload number beyond double range is refused rather than silently changed', refused, {
  raw: '{"url":"http://127.0.0.1:1/x","payload":{"amount":1e400}}',
  status: 400,
  code: 'validation_failed',
  field: /^payload/,
});

test.serial('a payload over 256 KiB is 413 naming payload', refused, {
  // 262 145 bytes as JSON: the string and its two quotes.
  json: ok({ payload: 'a'.repeat(262_143) }),
  status: 413,
  code: 'payload_too_large',
  field: 'payload',
});

test.serial('the payload limit counts bytes, not characters', refused, {
  // 100 000 three-byte characters: 300 002 bytes as JSON, 100 002 characters.
  json: ok({ payload: '✓'.repeat(100_000) }),
  status: 413,
  code: 'payload_too_large',
  field: 'payload',
});

test.serial('a body far over the limit (20 MB, Content-Length) is 413 and the service keeps answering', async (t) => {
  const body = `{"url":"http://127.0.0.1:1/x","payload":"${'a'.repeat(20 * 1024 * 1024)}"}`;
  await storesNothing(t, async () => {
    const res = await shared.api(DELIVER, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    await assertProblem(t, res, { status: 413, code: 'payload_too_large' });
  });
  const health = await shared.api('/healthz', { auth: false });
  t.is(health.status, 200);
});

test.serial('a body far over the limit sent chunked (no Content-Length) is 413', async (t) => {
  const encoder = new TextEncoder();
  const megabyte = encoder.encode('a'.repeat(1024 * 1024));
  let sent = 0;
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(encoder.encode('{"url":"http://127.0.0.1:1/x","payload":"'));
    },
    pull(controller) {
      if (sent === 30) {
        controller.enqueue(encoder.encode('"}'));
        controller.close();
        return;
      }
      sent += 1;
      controller.enqueue(megabyte);
    },
  });
  await storesNothing(t, async () => {
    const res = await shared.api(DELIVER, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: stream,
      duplex: 'half',
    } as RequestInit);
    await assertProblem(t, res, { status: 413, code: 'payload_too_large' });
  });
});

// ---------------------------------------------------------------------------------------------
// Unknown and mistyped fields

test.serial('an unknown top-level field is 400 naming it', refused, { json: ok({ callbackUrl: 'http://x' }), status: 400, code: 'validation_failed', field: 'callbackUrl' });
test.serial('an unknown retryPolicy field is 400 naming it', refused, { json: ok({ retryPolicy: { jitter: 0.1 } }), status: 400, code: 'validation_failed', field: 'retryPolicy.jitter' });
test.serial('headers as an array is 400 naming headers', refused, { json: ok({ headers: [['X-A', '1']] }), status: 400, code: 'validation_failed', field: 'headers' });
test.serial('headers as a string is 400 naming headers', refused, { json: ok({ headers: 'X-A: 1' }), status: 400, code: 'validation_failed', field: 'headers' });
test.serial('a header value that is a number is 400 naming the header', refused, { json: ok({ headers: { 'X-Count': 3 } }), status: 400, code: 'validation_failed', field: 'headers.X-Count' });
test.serial('a header value that is null is 400 naming the header', refused, { json: ok({ headers: { 'X-Count': null } }), status: 400, code: 'validation_failed', field: 'headers.X-Count' });
test.serial('retryPolicy as a number is 400 naming retryPolicy', refused, { json: ok({ retryPolicy: 5 }), status: 400, code: 'validation_failed', field: 'retryPolicy' });
test.serial('maxAttempts as a string is 400 naming it', refused, { json: ok({ retryPolicy: { maxAttempts: '5' } }), status: 400, code: 'validation_failed', field: 'retryPolicy.maxAttempts' });

// ---------------------------------------------------------------------------------------------
// retryPolicy ranges

const policyCases: [string, Record<string, unknown>, string][] = [
  ['maxAttempts 0', { maxAttempts: 0 }, 'retryPolicy.maxAttempts'],
  ['maxAttempts 101', { maxAttempts: 101 }, 'retryPolicy.maxAttempts'],
  ['maxAttempts 2.5', { maxAttempts: 2.5 }, 'retryPolicy.maxAttempts'],
  ['maxAttempts -1', { maxAttempts: -1 }, 'retryPolicy.maxAttempts'],
  ['baseDelayMs 99', { baseDelayMs: 99 }, 'retryPolicy.baseDelayMs'],
  ['baseDelayMs 100.5', { baseDelayMs: 100.5 }, 'retryPolicy.baseDelayMs'],
  ['maxDelayMs over 7 days', { maxDelayMs: 7 * 24 * 3600 * 1000 + 1 }, 'retryPolicy.maxDelayMs'],
  ['maxDelayMs 99', { maxDelayMs: 99 }, 'retryPolicy.maxDelayMs'],
  ['backoffFactor 0.5', { backoffFactor: 0.5 }, 'retryPolicy.backoffFactor'],
  ['backoffFactor 11', { backoffFactor: 11 }, 'retryPolicy.backoffFactor'],
];
for (const [label, retryPolicy, field] of policyCases) {
  test.serial(`retryPolicy ${label} is 400 naming ${field}`, refused, { json: ok({ retryPolicy }), status: 400, code: 'validation_failed', field });
}

test.serial('maxDelayMs below baseDelayMs is 400 naming maxDelayMs', refused, {
  json: ok({ retryPolicy: { baseDelayMs: 10_000, maxDelayMs: 5_000 } }),
  status: 400,
  code: 'validation_failed',
  field: 'retryPolicy.maxDelayMs',
});

test.serial('a baseDelayMs above the default maxDelayMs is 400 naming baseDelayMs', refused, {
  // The server default maxDelayMs is 3 600 000.
  json: ok({ retryPolicy: { baseDelayMs: 4_000_000 } }),
  status: 400,
  code: 'validation_failed',
  field: 'retryPolicy.baseDelayMs',
});

// ---------------------------------------------------------------------------------------------
// headers

test.serial('a header name with a space is 400 naming it', refused, { json: ok({ headers: { 'X Tenant': 'a' } }), status: 400, code: 'validation_failed', field: 'headers.X Tenant' });
test.serial('a header name with a colon is 400 naming it', refused, { json: ok({ headers: { 'X-A:': 'a' } }), status: 400, code: 'validation_failed', field: 'headers.X-A:' });
test.serial('an empty header name is 400', refused, { json: ok({ headers: { '': 'a' } }), status: 400, code: 'validation_failed', field: /^headers/ });
test.serial('a header value with CR LF is 400 naming the header', refused, { json: ok({ headers: { 'X-A': 'a\r\nX-Injected: 1' } }), status: 400, code: 'validation_failed', field: 'headers.X-A' });
test.serial('a header value with a bare LF is 400 naming the header', refused, { json: ok({ headers: { 'X-A': 'a\nb' } }), status: 400, code: 'validation_failed', field: 'headers.X-A' });
test.serial('a header value with a bare CR is 400 naming the header', refused, { json: ok({ headers: { 'X-A': 'a\rb' } }), status: 400, code: 'validation_failed', field: 'headers.X-A' });
test.serial('a header value with NUL is 400 naming the header', refused, { json: ok({ headers: { 'X-A': 'a\u0000b' } }), status: 400, code: 'validation_failed', field: 'headers.X-A' });
test.serial('more than 50 headers is 400 naming headers', refused, {
  json: ok({ headers: Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`X-H${i}`, 'v'])) }),
  status: 400,
  code: 'validation_failed',
  field: 'headers',
});

// A header value is stored as jsonb and sent on the wire: a lone surrogate can be neither.
test.serial('a header value with a lone surrogate is 400 naming the header, not a 500', refused, {
  raw: '{"url":"http://127.0.0.1:1/x","payload":1,"headers":{"X-A":"\\ud800"}}',
  status: 400,
  code: 'validation_failed',
  field: 'headers.X-A',
});

// HTTP header values carry bytes (Latin-1 at most); the sender refuses anything wider, so such a
// webhook could never be delivered. It must be refused when submitted.
test.serial('a header value with characters beyond Latin-1 is 400 naming the header', refused, {
  json: ok({ headers: { 'X-Label': 'done ✓' } }),
  status: 400,
  code: 'validation_failed',
  field: 'headers.X-Label',
});

for (const name of ['webhook-id', 'Webhook-Signature', 'webhook-timestamp', 'X-Webhook-Signature', 'x-webhook-id', 'Content-Type', 'content-length', 'HOST', 'Connection', 'Keep-Alive', 'Transfer-Encoding', 'TE', 'Trailer', 'Upgrade', 'Proxy-Authorization', 'Proxy-Connection']) {
  test.serial(`reserved header ${name} is 400 naming it`, refused, { json: ok({ headers: { [name]: 'x' } }), status: 400, code: 'reserved_header', field: `headers.${name}` });
}

test.serial('the same header name twice in different case is 400 naming it', refused, {
  json: ok({ headers: { 'X-Tenant': 'a', 'x-tenant': 'b' } }),
  status: 400,
  code: 'validation_failed',
  field: /^headers\.x-tenant$/i,
});

// ---------------------------------------------------------------------------------------------
// __proto__ and friends

test.serial('__proto__ at the top level is 400 and pollutes nothing', refused, {
  raw: '{"url":"http://127.0.0.1:1/x","payload":1,"__proto__":{"pollutedTop":true}}',
  status: 400,
  code: 'invalid_json',
});
test.serial('__proto__ in retryPolicy is 400 and pollutes nothing', refused, {
  raw: '{"url":"http://127.0.0.1:1/x","payload":1,"retryPolicy":{"__proto__":{"maxAttempts":0}}}',
  status: 400,
  code: 'invalid_json',
});
test.serial('__proto__ in headers is 400 and pollutes nothing', refused, {
  raw: '{"url":"http://127.0.0.1:1/x","payload":1,"headers":{"__proto__":{"pollutedHeader":"x"}}}',
  status: 400,
  code: 'invalid_json',
});
test.serial('__proto__ in the payload is 400 and pollutes nothing', refused, {
  raw: '{"url":"http://127.0.0.1:1/x","payload":{"a":{"__proto__":{"pollutedPayload":true}}}}',
  status: 400,
  code: 'invalid_json',
});
test.serial('constructor.prototype at the top level is 400 naming constructor', refused, {
  raw: '{"url":"http://127.0.0.1:1/x","payload":1,"constructor":{"prototype":{"pollutedCtor":true}}}',
  status: 400,
  code: 'validation_failed',
  field: 'constructor',
});

test.serial('after the __proto__ requests, no prototype was polluted', (t) => {
  const probe = {} as Record<string, unknown>;
  for (const key of ['pollutedTop', 'pollutedHeader', 'pollutedPayload', 'pollutedCtor', 'maxAttempts']) {
    t.is(probe[key], undefined, key);
    t.false(Object.prototype.hasOwnProperty.call(Object.prototype, key), key);
  }
});

// ---------------------------------------------------------------------------------------------
// Idempotency-Key

test.serial('an Idempotency-Key of 256 characters is 400 naming it', refused, { json: ok(), headers: { 'Idempotency-Key': 'k'.repeat(256) }, status: 400, code: 'validation_failed', field: 'Idempotency-Key' });
test.serial('an Idempotency-Key with a space is 400 naming it', refused, { json: ok(), headers: { 'Idempotency-Key': 'order 42' }, status: 400, code: 'validation_failed', field: 'Idempotency-Key' });
test.serial('an Idempotency-Key with a tab is 400 naming it', refused, { json: ok(), headers: { 'Idempotency-Key': 'order\t42' }, status: 400, code: 'validation_failed', field: 'Idempotency-Key' });

// ---------------------------------------------------------------------------------------------
// Unknown resources and routes

test.serial('GET of an unknown webhook id is 404 problem', async (t) => {
  const res = await shared.api('/api/v1/webhooks/msg_00000000000000000000000000');
  const body = await assertProblem(t, res, { status: 404, code: 'webhook_not_found' });
  t.is(body.instance, '/api/v1/webhooks/msg_00000000000000000000000000');
});

test.serial('GET of the status of an unknown webhook id is 404 problem', async (t) => {
  const res = await shared.api('/api/v1/webhooks/msg_00000000000000000000000000/status');
  await assertProblem(t, res, { status: 404, code: 'webhook_not_found' });
});

test.serial('GET of the secret of an unknown endpoint id is 404 problem', async (t) => {
  const res = await shared.api('/api/v1/endpoints/ep_00000000000000000000000000/secret');
  await assertProblem(t, res, { status: 404, code: 'endpoint_not_found' });
});

test.serial('an unknown route is 404 problem+json', async (t) => {
  await assertProblem(t, await shared.api('/api/v1/nothing-here'), { status: 404, code: 'not_found' });
  await assertProblem(t, await shared.api('/nothing-here', { auth: false }), { status: 404, code: 'not_found' });
  await storesNothing(t, async () => {
    await assertProblem(t, await shared.api('/api/v1/webhooks', { method: 'POST', json: ok() }), { status: 404, code: 'not_found' });
  });
});

// Runs after every serial test above: none of the refused requests left anything behind.
test.serial('after all refused requests, no webhook, endpoint, signing key or job exists', async (t) => {
  t.deepEqual(await stored(shared.dbUrl), EMPTY);
});

// ---------------------------------------------------------------------------------------------
// Accepted edge cases: each is stored and reaches the receiver byte for byte.

async function accepted(t: ExecutionContext, svc: TestService, body: unknown, headers: Record<string, string> = {}) {
  const res = await svc.api(DELIVER, { method: 'POST', json: body, headers });
  const json = (await res.json()) as Record<string, any>;
  t.is(res.status, 202, JSON.stringify(json));
  return json;
}

test.serial('edge payloads are accepted and delivered exactly: null, a number, a string, an array, an empty object', async (t) => {
  const svc = await startTestService(t);
  const rx = await startReceiver(t);
  const cases: [string, unknown, string][] = [
    ['null', null, 'null'],
    ['number', 42.5, '42.5'],
    ['zero', 0, '0'],
    ['false', false, 'false'],
    ['string', 'hello, wörld', '"hello, wörld"'],
    ['empty-string', '', '""'],
    ['array', [1, 'a', null, { b: true }], '[1,"a",null,{"b":true}]'],
    ['empty-object', {}, '{}'],
  ];
  const ids = new Map<string, string>();
  for (const [name, payload] of cases) {
    const body = await accepted(t, svc, { url: `${rx.url}/${name}`, payload, headers: {} });
    t.is(body.status, 'pending');
    ids.set(name, body.id);
  }
  const got = await rx.waitFor(cases.length);
  for (const [name, payload, wire] of cases) {
    const hit = got.find((r) => r.path === `/${name}`);
    t.is(hit?.body, wire, `${name}: bytes the receiver saw`);
    const detail = (await (await svc.api(`/api/v1/webhooks/${ids.get(name)}`)).json()) as Record<string, any>;
    t.deepEqual(detail.payload, payload, `${name}: stored payload`);
    t.deepEqual(detail.headers, {}, `${name}: headers {}`);
  }
  const rows = await query(svc.dbUrl, 'SELECT count(*)::int AS n FROM hookrelay.webhooks');
  t.is(rows[0]!.n, cases.length);
});

test.serial('a payload of exactly 256 KiB, an Idempotency-Key of 255 characters and a Latin-1 header value are accepted', async (t) => {
  const svc = await startTestService(t);
  const rx = await startReceiver(t);
  const payload = 'a'.repeat(262_142); // 262 144 bytes as JSON
  const body = await accepted(t, svc, { url: `${rx.url}/big`, payload, headers: { 'X-Name': 'Müller' } }, { 'Idempotency-Key': 'k'.repeat(255) });
  const [got] = await rx.waitFor(1);
  t.is(Buffer.byteLength(got!.body), 262_144);
  t.is(got!.body, JSON.stringify(payload));
  t.is(got!.headers['x-name'], 'Müller');
  const rows = await query(svc.dbUrl, 'SELECT idempotency_key FROM hookrelay.webhooks WHERE id = $1', [body.id]);
  t.is(rows[0]!.idempotency_key, 'k'.repeat(255));
});

test.serial('retryPolicy at its limits is accepted: 1 and 100 attempts, 100 ms, 7 days, factors 1 and 10', async (t) => {
  const svc = await startTestService(t);
  const policies = [
    { maxAttempts: 1, baseDelayMs: 100, maxDelayMs: 100, backoffFactor: 1 },
    { maxAttempts: 100, baseDelayMs: 604_800_000, maxDelayMs: 604_800_000, backoffFactor: 10 },
  ];
  for (const retryPolicy of policies) {
    const body = await accepted(t, svc, { url: NOWHERE, payload: 1, retryPolicy });
    const rows = await query(svc.dbUrl, 'SELECT retry_policy FROM hookrelay.webhooks WHERE id = $1', [body.id]);
    t.deepEqual(rows[0]!.retry_policy, retryPolicy);
  }
});

test.serial('HOOKRELAY_MAX_PAYLOAD_BYTES sets the payload limit', async (t) => {
  const svc = await startTestService(t, { HOOKRELAY_MAX_PAYLOAD_BYTES: '2048' });
  // 2 049 bytes as JSON: one over.
  await storesNothing(t, async () => {
    const over = await svc.api(DELIVER, { method: 'POST', json: { url: NOWHERE, payload: 'a'.repeat(2047) } });
    await assertProblem(t, over, { status: 413, code: 'payload_too_large', field: 'payload' });
  }, svc);
  t.deepEqual(await stored(svc.dbUrl), EMPTY);
  // 2 048 bytes as JSON: exactly at the limit.
  await accepted(t, svc, { url: NOWHERE, payload: 'a'.repeat(2046) });
  // Far over the configured limit, and over the body limit derived from it.
  const huge = await svc.api(DELIVER, { method: 'POST', json: { url: NOWHERE, payload: 'a'.repeat(1024 * 1024) } });
  await assertProblem(t, huge, { status: 413, code: 'payload_too_large' });
  const rows = await query(svc.dbUrl, 'SELECT count(*)::int AS n FROM hookrelay.webhooks');
  t.is(rows[0]!.n, 1);
});

test.serial('a refused request leaves a service that still accepts the next good one', async (t) => {
  const svc = await startTestService(t);
  const rx = await startReceiver(t);
  const bad = await svc.api(DELIVER, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"url":' });
  t.is(bad.status, 400);
  const good = await accepted(t, svc, { url: rx.url, payload: { ok: true } });
  await rx.waitFor(1);
  const status = await eventually(async () => {
    const s = (await (await svc.api(`/api/v1/webhooks/${good.id}/status`)).json()) as Record<string, any>;
    return s.status === 'delivered' ? s : undefined;
  });
  t.is(status.attempts, 1);
});
