import test, { type ExecutionContext } from 'ava';
import fc from 'fast-check';
import { Pool } from 'undici';
import { createToken } from '../../src/api/tokens.ts';
import type { Operation } from '../../src/api/spec.ts';
import { doc, resolve, spec } from '../helpers/contract.ts';
import { query } from '../helpers/db.ts';
import { startTestService, type TestService } from '../helpers/service.ts';

/**
 * Property-based requests for every operation in openapi.yaml, generated from its own
 * schemas: valid bodies, boundary values, wrong types, missing and extra fields, oversized
 * strings and arrays, odd Unicode, bad path ids and bad query values, with and without a
 * token. For every one: no 5xx, the answer matches the document (startTestService checks each
 * answer), and a rejected request (4xx) changes nothing in the database.
 *
 * Seeded: FUZZ_SEED=<n> replays a run; the seed is printed on failure (and with --verbose).
 */

const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : Math.floor(Math.random() * 2 ** 31);
const RUNS = Number(process.env.FUZZ_RUNS ?? 2_500);
const REPRO = `FUZZ_SEED=${SEED} npx ava test/fuzz/api.test.ts`;

interface FuzzRequest {
  operationId: string;
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: string;
}

// ---------------------------------------------------------------------------------------------
// Values from schemas.

const ODD_STRINGS = [
  '', ' ', '\u0000', 'a\u0000b', '\uD800', '\uDFFF', 'x\uD83D', '\u202Eevil', '\uFEFF', 'e\u0301\u0301\u0301', '😀'.repeat(50),
  '\u{10FFFF}', 'null', 'true', '0', '-1', '1e999', '__proto__', 'constructor', '../../etc/passwd', '%00', '%E0%A4%A', "'; DROP TABLE x; --",
  '<script>alert(1)</script>', 'ß'.repeat(300), '\t\n\r', '\\', '"',
];
const oddString = fc.oneof(fc.constantFrom(...ODD_STRINGS), fc.string({ unit: 'binary', maxLength: 40 }), fc.string({ unit: 'grapheme', maxLength: 40 }));
const anyJson = fc.jsonValue({ maxDepth: 3 });
const wrongType = fc.oneof(fc.integer(), fc.double(), fc.boolean(), fc.constant(null), oddString, fc.array(fc.integer(), { maxLength: 3 }), fc.dictionary(fc.string({ maxLength: 5 }), fc.integer(), { maxKeys: 3 }));

function bounded(n: number | undefined, fallback: number, cap: number): number {
  return Math.min(n ?? fallback, cap);
}

/** An arbitrary of values valid (or nearly: patterns and formats are approximated) for a schema. */
function arb(raw: unknown, depth = 0): fc.Arbitrary<unknown> {
  const schema = resolve<Record<string, any>>(raw) ?? {};
  if (depth > 6) return fc.constant(null);
  const choices = schema.oneOf ?? schema.anyOf;
  if (Array.isArray(choices)) {
    const { oneOf: _o, anyOf: _a, ...rest } = schema;
    return fc.oneof(...choices.map((c: unknown) => arb({ ...rest, ...resolve<Record<string, any>>(c) }, depth + 1)));
  }
  if (Array.isArray(schema.enum)) return fc.constantFrom(...schema.enum);
  if (schema.const !== undefined) return fc.constant(schema.const);
  if (Array.isArray(schema.type)) return fc.oneof(...schema.type.map((type: string) => arb({ ...schema, type }, depth)));
  switch (schema.type) {
    case 'null':
      return fc.constant(null);
    case 'boolean':
      return fc.boolean();
    case 'integer': {
      const min = schema.minimum ?? (schema.exclusiveMinimum !== undefined ? schema.exclusiveMinimum + 1 : -1_000_000);
      const max = schema.maximum ?? (schema.exclusiveMaximum !== undefined ? schema.exclusiveMaximum - 1 : 1_000_000_000);
      // Boundaries on purpose: the edges are where off-by-ones live.
      return fc.oneof(fc.constantFrom(min, max), fc.integer({ min, max }));
    }
    case 'number': {
      const min = schema.minimum ?? -1e9;
      const max = schema.maximum ?? 1e9;
      return fc.oneof(fc.constantFrom(min, max), fc.double({ min, max, noNaN: true, noDefaultInfinity: true }));
    }
    case 'string':
      return stringArb(schema);
    case 'array': {
      const items = arb(schema.items ?? {}, depth + 1);
      const constraints = { minLength: schema.minItems ?? 0, maxLength: bounded(schema.maxItems, 4, 4) };
      return schema.uniqueItems ? fc.uniqueArray(items, { ...constraints, selector: (v) => JSON.stringify(v) }) : fc.array(items, constraints);
    }
    case 'object':
    case undefined: {
      if (!schema.properties && !schema.additionalProperties && schema.type === undefined) return anyJson;
      const props: Record<string, fc.Arbitrary<unknown>> = {};
      for (const [name, s] of Object.entries<unknown>(schema.properties ?? {})) {
        // Ids that exist, mostly: a random string only ever reaches the 404 path.
        props[name] = name === 'endpointId' || name === 'webhookId' ? fc.oneof({ arbitrary: idArb(name === 'endpointId' ? 'ep' : 'msg'), weight: 3 }, { arbitrary: arb(s, depth + 1), weight: 1 })
          : name === 'secret' ? fc.oneof({ arbitrary: fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => `whsec_${Buffer.from(b).toString('base64')}`), weight: 3 }, { arbitrary: arb(s, depth + 1), weight: 1 })
            : arb(s, depth + 1);
      }
      const required: string[] = schema.required ?? [];
      let out: fc.Arbitrary<Record<string, unknown>> = fc.record(props, { requiredKeys: required.filter((k) => k in props) });
      // Rules the schema states only in prose ("Exactly one of `url` and `endpointId`."), kept
      // most of the time so that valid requests get past the handler's own checks.
      const exactlyOne = /Exactly one of `(\w+)` and `(\w+)`/.exec(schema.description ?? '');
      if (exactlyOne) {
        const [, a, b] = exactlyOne as unknown as [string, string, string];
        out = fc.tuple(out, props[a]!, props[b]!, fc.constantFrom(a, b, 'as generated')).map(([o, va, vb, keep]) => {
          if (keep === 'as generated') return o;
          const { [a]: _a, [b]: _b, ...rest } = o;
          return { ...rest, [keep]: keep === a ? va : vb };
        });
      }
      if (schema.additionalProperties && typeof schema.additionalProperties === 'object') {
        const key = schema.propertyNames ? stringArb(resolve(schema.propertyNames)) : fc.string({ minLength: 1, maxLength: 20 });
        const extra = fc.dictionary(key as fc.Arbitrary<string>, arb(schema.additionalProperties, depth + 1), { maxKeys: bounded(schema.maxProperties, 3, 3) });
        out = fc.tuple(out, extra).map(([a, b]) => ({ ...b, ...a }));
      }
      if (schema.minProperties) out = out.filter((o) => Object.keys(o).length >= schema.minProperties);
      return out;
    }
    default:
      return anyJson;
  }
}

let hostCounter = 0;
function stringArb(schema: Record<string, any>): fc.Arbitrary<string> {
  const maxLength = bounded(schema.maxLength, 40, 60);
  const minLength = schema.minLength ?? 0;
  if (schema.format === 'date-time') {
    return fc.oneof(
      fc.date({ min: new Date('1970-01-01T00:00:00Z'), max: new Date('2200-01-01T00:00:00Z'), noInvalidDate: true }).map((d) => d.toISOString()),
      fc.constantFrom('2026-02-30T00:00:00Z', '2016-12-31T23:59:60Z', '0001-01-01T00:00:00Z', '9999-12-31T23:59:59.999999Z', '2026-01-01T00:00:00+14:00'),
    );
  }
  if (schema.format === 'uri' || /^\^\[Hh\]\[Tt\]/.test(schema.pattern ?? '')) {
    // Fresh hosts, so that endpoint creation is not always a 409 for a URL already taken.
    return fc.oneof(
      fc.tuple(fc.constantFrom('https', 'http', 'HTTPS'), fc.webPath()).map(([scheme, p]) => `${scheme}://fuzz-${++hostCounter}.example.com${p}`),
      fc.constantFrom('https://127.0.0.1/x', 'http://[::1]/', 'http://169.254.169.254/latest', 'http://localhost/', 'https://0x7f.1/', 'https://example.com:99999/', 'https://exa mple.com/', 'ftp://example.com/', 'https://', 'https://example.com/' + 'a'.repeat(2100)),
    );
  }
  if (schema.pattern) {
    let re: RegExp | undefined;
    try {
      re = new RegExp(schema.pattern);
    } catch {
      re = undefined;
    }
    if (re) return fc.stringMatching(re).filter((s) => s.length >= minLength && s.length <= (schema.maxLength ?? 1_000));
  }
  return fc.oneof(fc.string({ minLength, maxLength }), fc.string({ unit: 'grapheme', minLength, maxLength }));
}

/** A valid value, or one broken on purpose in one of the ways clients break them. */
function bodyArb(schema: unknown): fc.Arbitrary<unknown> {
  const valid = arb(schema);
  const broken = valid.chain((value) => {
    const keys = value && typeof value === 'object' && !Array.isArray(value) ? Object.keys(value) : [];
    const options: fc.Arbitrary<unknown>[] = [
      anyJson,
      wrongType,
      fc.tuple(fc.string({ minLength: 1, maxLength: 12 }), anyJson).map(([k, v]) => ({ ...(value as object), [k]: v })),
      fc.integer({ min: 1_000, max: 70_000 }).map((n) => ({ ...(value as object), payload: 'x'.repeat(n) })),
      fc.integer({ min: 60, max: 80 }).map((n) => ({ ...(value as object), payload: nested(n) })),
      fc.integer({ min: 100, max: 20_000 }).map((n) => ({ ...(value as object), payload: Array.from({ length: n }, (_, i) => i) })),
    ];
    if (keys.length > 0) {
      options.push(
        fc.constantFrom(...keys).map((k) => omit(value as Record<string, unknown>, k)),
        fc.tuple(fc.constantFrom(...keys), wrongType).map(([k, v]) => ({ ...(value as object), [k]: v })),
        fc.tuple(fc.constantFrom(...keys), oddString).map(([k, v]) => ({ ...(value as object), [k]: v })),
        fc.tuple(fc.constantFrom(...keys), fc.integer({ min: 1_000, max: 100_000 })).map(([k, n]) => ({ ...(value as object), [k]: 'y'.repeat(n) })),
      );
    }
    return fc.oneof(...options);
  });
  return fc.oneof({ arbitrary: valid, weight: 2 }, { arbitrary: broken, weight: 3 });
}

/** URLs carry UTF-8: a lone surrogate cannot be percent-encoded, so it becomes U+FFFD first. */
function enc(s: string): string {
  return encodeURIComponent(s.toWellFormed());
}

function omit(o: Record<string, unknown>, key: string): Record<string, unknown> {
  const { [key]: _gone, ...rest } = o;
  return rest;
}

function nested(depth: number): unknown {
  let v: unknown = 1;
  for (let i = 0; i < depth; i++) v = i % 2 ? [v] : { a: v };
  return v;
}

/** Bodies no JSON.stringify produces: broken syntax, __proto__ keys, huge numbers, other encodings. */
const RAW_BODIES = [
  '', '{', '[', 'nul', '{"payload":}', '{"payload":1e999}', '{"payload":-1e999}', '{"__proto__":{"polluted":1},"payload":1}',
  '{"payload":{"a":{"__proto__":{"x":1}}}}', '{"constructor":{"prototype":{"x":1}}}', '{"payload":1,"payload":2}', '\uFEFF{"payload":1}',
  '{"payload":"\\ud800"}', '{"payload":"\\u0000"}', '{"url":"https://example.com/","payload":123456789012345678901234567890}', 'null', '[]', '"text"', '0',
];

// ---------------------------------------------------------------------------------------------
// Requests for an operation.

const ids: Record<string, Set<string>> = { msg: new Set(), ep: new Set(), dl: new Set(), tok: new Set() };
let protectedTokenIds = new Set<string>();

function idArb(prefix: string): fc.Arbitrary<string> {
  const known = fc.constant(null).map(() => [...(ids[prefix] ?? [])]).chain((list) => (list.length > 0 ? fc.constantFrom(...list) : fc.constant(`${prefix}_none`)));
  const made = fc.constantFrom(`${prefix}_00000000000000000000000000`, `${prefix}_`, `${prefix}_${'z'.repeat(200)}`, 'x', `${prefix.toUpperCase()}_1`);
  return fc.oneof({ arbitrary: known, weight: 4 }, { arbitrary: made, weight: 1 }, { arbitrary: oddString.filter((s) => s.length > 0), weight: 2 });
}

function prefixFor(operation: Operation): string {
  if (operation.path.startsWith('/api/v1/webhooks')) return 'msg';
  if (operation.path.startsWith('/api/v1/endpoints')) return 'ep';
  if (operation.path.startsWith('/api/v1/dead-letters')) return 'dl';
  if (operation.path.startsWith('/api/v1/tokens')) return 'tok';
  return 'x';
}

/** Path parameters: mostly URL-encoded; sometimes raw, with broken percent-encodings. */
function pathArb(operation: Operation): fc.Arbitrary<string> {
  const names = [...operation.path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]!);
  if (names.length === 0) return fc.constant(operation.path);
  const encoded = idArb(prefixFor(operation)).map((id) => enc(id));
  const raw = fc.constantFrom('%', '%zz', '%E0%A4%A', '%C0%AE%C0%AE', '..', '%2e%2e', '%2F', 'a%00b', '%F0%9F%98');
  return fc.array(fc.oneof({ arbitrary: encoded, weight: 6 }, { arbitrary: raw, weight: 1 }), { minLength: names.length, maxLength: names.length })
    .map((values) => names.reduce((p, name, i) => p.replace(`{${name}}`, values[i]!), operation.path));
}

function pathArbValid(operation: Operation): fc.Arbitrary<string> {
  if (!operation.path.includes('{')) return fc.constant(operation.path);
  const known = fc.constant(null).map(() => [...(ids[prefixFor(operation)] ?? [])]).chain((list) => (list.length > 0 ? fc.constantFrom(...list) : fc.constant('none')));
  return known.map((id) => operation.path.replace(/\{[^}]+\}/, enc(id)));
}

function parameters(operation: Operation): any[] {
  const item = doc.paths[operation.path];
  const op = item[operation.method.toLowerCase()];
  return [...(item.parameters ?? []), ...(op.parameters ?? [])].map((p) => resolve(p));
}

function queryArb(operation: Operation, valid: boolean): fc.Arbitrary<string> {
  const params = parameters(operation).filter((p) => p.in === 'query');
  const pieces = params.map((p) => {
    const validValue = (p.name === 'endpointId' ? idArb('ep') : arb(p.schema ?? {})).map((v) => String(v));
    const invalid = fc.oneof(oddString, fc.constantFrom('-1', '0', '1.5', '1e3', '99999999999999999999', 'true', 'NaN', '', 'eyJ4IjoxfQ', 'bm90LWpzb24', '!!!'));
    const value = valid ? validValue : fc.oneof({ arbitrary: validValue, weight: 3 }, { arbitrary: invalid, weight: 2 });
    return fc.option(fc.tuple(value, valid ? fc.constant(false) : fc.boolean()).map(([v, twice]) => {
      const one = `${enc(p.name)}=${enc(v)}`;
      return twice ? `${one}&${one}` : one;
    }), { freq: 2 });
  });
  const unknown = fc.tuple(fc.string({ minLength: 1, maxLength: 8 }), fc.string({ maxLength: 8 })).map(([k, v]) => `${enc(k)}=${enc(v)}`);
  const extra = valid ? fc.constant(null) : fc.oneof({ arbitrary: fc.constant(null), weight: 3 }, { arbitrary: unknown, weight: 1 });
  return fc.tuple(fc.tuple(...pieces), extra).map(([list, x]) => [...list, x].filter((s): s is string => Boolean(s)).join('&'));
}

/** Header values a client can send at all (visible ASCII and spaces; no CR/LF). */
const headerValue = fc.oneof(fc.string({ minLength: 1, maxLength: 40 }), fc.string({ minLength: 200, maxLength: 300 })).map((s) => s.replace(/[^\x20-\x7e]/g, 'a').trim() || 'k');

function headersArb(operation: Operation, tokens: { full: string; readOnly: string }, valid: boolean): fc.Arbitrary<Record<string, string>> {
  const auth = valid ? fc.constant(`Bearer ${tokens.full}`) : fc.oneof(
    { arbitrary: fc.constant(`Bearer ${tokens.full}`), weight: 12 },
    { arbitrary: fc.constant(`Bearer ${tokens.readOnly}`), weight: 1 },
    { arbitrary: fc.constantFrom('', 'Bearer', 'Bearer hr_nope', `Basic ${Buffer.from('a:b').toString('base64')}`, `Bearer ${tokens.full}x`, `bearer   ${tokens.full}`), weight: 1 },
  );
  const headerParams = parameters(operation).filter((p) => p.in === 'header');
  const validHeader = (p: any) => arb(p.schema ?? {}).map((v) => String(v)).filter((v) => /^[\x20-\x7e]+$/.test(v));
  const extras = headerParams.map((p) => fc.option((valid ? validHeader(p) : fc.oneof(validHeader(p), headerValue)).map((v) => [p.name, v] as const), { freq: 2 }));
  return fc.tuple(auth, fc.tuple(...extras)).map(([a, list]) => {
    const headers: Record<string, string> = {};
    if (a) headers.authorization = a;
    for (const entry of list) if (entry) headers[entry[0].toLowerCase()] = entry[1];
    return headers;
  });
}

function bodyFor(operation: Operation, valid: boolean): fc.Arbitrary<{ body?: string; contentType?: string }> | undefined {
  const item = doc.paths[operation.path][operation.method.toLowerCase()];
  const schema = item.requestBody ? resolve(item.requestBody).content?.['application/json']?.schema : undefined;
  if (!schema) return undefined;
  if (valid) return arb(schema).map((v) => ({ body: JSON.stringify(v), contentType: 'application/json' }));
  const json = bodyArb(schema).map((v) => JSON.stringify(v));
  const text = fc.oneof({ arbitrary: json, weight: 12 }, { arbitrary: fc.constantFrom(...RAW_BODIES), weight: 2 }, { arbitrary: fc.constant(undefined), weight: 1 });
  const contentType = fc.oneof(
    { arbitrary: fc.constant('application/json'), weight: 12 },
    { arbitrary: fc.constantFrom(undefined, 'text/plain', 'application/json; charset=utf-16', 'application/json; charset=latin1', 'application/x-www-form-urlencoded', 'application/merge-patch+json', 'multipart/form-data; boundary=x', 'application/jsonx'), weight: 2 },
  );
  return fc.record({ body: text, contentType }, { requiredKeys: [] });
}

/**
 * Half the requests are meant to be valid (a good token, JSON, schema-valid values, ids that
 * exist) so that the success paths are fuzzed too; the other half are hostile in every part.
 */
function requestArb(operation: Operation, tokens: { full: string; readOnly: string }): fc.Arbitrary<FuzzRequest> {
  return fc.boolean().chain((valid) => {
    const body = bodyFor(operation, valid) ?? fc.constant({} as { body?: string; contentType?: string });
    const path = valid ? pathArbValid(operation) : pathArb(operation);
    return fc.tuple(path, queryArb(operation, valid), headersArb(operation, tokens, valid), body);
  }).map(([path, q, headers, b]) => {
    const all = { ...headers };
    if (b.contentType) all['content-type'] = b.contentType;
    return { operationId: operation.operationId, method: operation.method, path: q ? `${path}?${q}` : path, headers: all, ...(b.body !== undefined ? { body: b.body } : {}) };
  });
}

// ---------------------------------------------------------------------------------------------
// The state a rejected request must leave alone.

/**
 * One row per hookrelay table: its row count and its newest row version (xmin), which any
 * INSERT, UPDATE or DELETE moves. api_tokens is compared without last_used_at, which every
 * authenticated request may refresh (at most once a minute). And the queue's job count.
 */
async function digestQuery(url: string): Promise<string> {
  const tables = await query<{ table_name: string }>(url, `SELECT table_name FROM information_schema.tables WHERE table_schema = 'hookrelay' AND table_type = 'BASE TABLE' ORDER BY table_name`);
  const parts = tables.map(({ table_name: name }) => name === 'api_tokens'
    ? `SELECT '${name}' AS t, count(*)::text || ':' || coalesce(md5(string_agg((to_jsonb(x) - 'last_used_at')::text, ',' ORDER BY x.id)), '') AS d FROM hookrelay.${name} x`
    : `SELECT '${name}' AS t, count(*)::text || ':' || coalesce(max(x.xmin::text::bigint), 0)::text AS d FROM hookrelay.${name} x`);
  parts.push(`SELECT 'queue.job' AS t, count(*)::text AS d FROM hookrelay_queue.job`);
  return `SELECT string_agg(t || '=' || d, ' ' ORDER BY t) AS digest FROM (${parts.join(' UNION ALL ')}) s`;
}

// ---------------------------------------------------------------------------------------------

function harvestIds(value: unknown, depth = 0): void {
  if (depth > 4 || value === null || typeof value !== 'object') return;
  if (Array.isArray(value)) {
    for (const v of value) harvestIds(v, depth + 1);
    return;
  }
  for (const [k, v] of Object.entries(value)) {
    if (typeof v === 'string' && (k === 'id' || k.endsWith('Id'))) {
      const prefix = v.split('_')[0]!;
      if (ids[prefix] && !protectedTokenIds.has(v) && ids[prefix]!.size < 200) ids[prefix]!.add(v);
    } else {
      harvestIds(v, depth + 1);
    }
  }
}

test('fuzz: every operation in openapi.yaml, generated from its schemas: no 5xx, answers match the document, rejected requests change nothing', async (t: ExecutionContext) => {
  t.timeout(10 * 60_000);
  t.log(`seed ${SEED}; reproduce with: ${REPRO}`);
  const svc: TestService = await startTestService(t, {
    HOOKRELAY_ROLES: 'api',
    // The fuzzer is one client making thousands of requests: rate limits are not its subject.
    HOOKRELAY_RATE_LIMIT_PER_SECOND: '1000000',
    HOOKRELAY_RATE_LIMIT_BURST: '1000000',
    // Small enough that the oversized strings and arrays generated below cross it (413).
    HOOKRELAY_MAX_PAYLOAD_BYTES: '32768',
  });
  const readOnly = await createToken(svc.service.db.db, 'fuzz-read-only', { scopes: ['webhooks:read'] });
  const [mainToken] = await query<{ id: string }>(svc.dbUrl, `SELECT id FROM hookrelay.api_tokens WHERE name = 'test'`);
  protectedTokenIds = new Set([mainToken!.id, readOnly.id]);
  const tokens = { full: svc.token, readOnly: readOnly.token };
  const digestSql = await digestQuery(svc.dbUrl);
  const pg = await import('pg');
  const client = new pg.default.Client({ connectionString: svc.dbUrl });
  await client.connect();
  t.teardown(() => client.end());
  const digest = async () => (await client.query<{ digest: string }>(digestSql)).rows[0]!.digest;
  const http = new Pool(svc.url, { connections: 2, pipelining: 1 });
  t.teardown(() => http.close());

  // A few resources to aim at, made through the API itself.
  for (const url of ['https://seed-a.example.com/h', 'https://seed-b.example.com/h']) {
    const res = await svc.api('/api/v1/endpoints', { method: 'POST', json: { url } });
    harvestIds(await res.json());
  }
  const ed = await svc.api('/api/v1/endpoints', { method: 'POST', json: { url: 'https://seed-ed.example.com/h', signature: { algorithm: 'ed25519' } } });
  harvestIds(await ed.json());
  const sub = await svc.api('/api/v1/webhooks/deliver', { method: 'POST', json: { url: 'https://seed-a.example.com/h', payload: { seed: true } } });
  harvestIds(await sub.json());
  const tok = await svc.api('/api/v1/tokens', { method: 'POST', json: { name: 'fuzz-target' } });
  harvestIds(await tok.json());

  const operations = [...spec.operations.values()];
  const byStatus = new Map<string, number>();
  const perOperation = new Map<string, number>();
  let cases = 0;

  const property = fc.asyncProperty(
    fc.constantFrom(...operations).chain((operation) => requestArb(operation, tokens)),
    async (req) => {
      cases += 1;
      const before = await digest();
      const res = await http.request({
        method: req.method as 'GET',
        path: req.path,
        headers: req.headers,
        body: req.body,
        headersTimeout: 30_000,
        bodyTimeout: 30_000,
      });
      const text = await res.body.text();
      const violations = svc.contractViolations.splice(0);
      const key = `${req.operationId} ${res.statusCode}`;
      byStatus.set(String(res.statusCode), (byStatus.get(String(res.statusCode)) ?? 0) + 1);
      perOperation.set(key, (perOperation.get(key) ?? 0) + 1);
      if (res.statusCode >= 500) throw new Error(`${req.method} ${req.path} answered ${res.statusCode}: ${text.slice(0, 500)}`);
      if (violations.length > 0) throw new Error(`answer does not match openapi.yaml:\n${violations.join('\n')}`);
      if (res.statusCode >= 400) {
        const after = await digest();
        if (after !== before) throw new Error(`a rejected request (${res.statusCode}: ${text.slice(0, 300)}) changed the database:\nbefore ${before}\nafter  ${after}`);
      } else if (text && String(res.headers['content-type'] ?? '').includes('json')) {
        harvestIds(JSON.parse(text));
      }
    },
  );

  const started = performance.now();
  const result = await fc.check(property, { seed: SEED, numRuns: RUNS, endOnFailure: false });
  const seconds = (performance.now() - started) / 1000;
  t.log(`${cases} requests (${RUNS} cases and shrinking) in ${seconds.toFixed(1)} s; statuses ${JSON.stringify(Object.fromEntries([...byStatus].sort()))}`);
  const success = operations.map((o) => `${o.operationId} ${[...perOperation].filter(([k]) => k.startsWith(`${o.operationId} 2`)).reduce((n, [, c]) => n + c, 0)}`);
  t.log(`successful answers per operation: ${success.join(', ')}`);
  if (result.failed) {
    t.fail(`${fc.defaultReportMessage(result)}\n${String(result.errorInstance)}\nreproduce with: ${REPRO}`);
    return;
  }
  t.true(result.numRuns >= 2_000 || RUNS < 2_000, `${result.numRuns} cases`);
  // Every operation was reached, and every one answered something other than 401 at least once.
  for (const o of operations) {
    const seen = [...perOperation.keys()].filter((k) => k.startsWith(`${o.operationId} `));
    t.true(seen.length > 0, `${o.operationId} was never requested`);
    t.true(seen.some((k) => !k.endsWith(' 401')), `${o.operationId} only answered 401`);
  }
});
