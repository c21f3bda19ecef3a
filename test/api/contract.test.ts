import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import test, { type ExecutionContext } from 'ava';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { loadSpec, type Operation } from '../../src/api/spec.ts';
import { startReceiver } from '../helpers/receiver.ts';
import { eventually, startTestService, type TestService } from '../helpers/service.ts';

/**
 * openapi.yaml is the contract: every operation it describes is served, and what the service
 * answers on the happy paths (and a 400) is what the document says it answers.
 */

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const spec = loadSpec();
const doc = spec.document;

// ---------------------------------------------------------------------------------------------
// Response validators, compiled from the document as src/api/spec.ts compiles request schemas.

const SPEC_ID = 'urn:hookrelay:openapi:responses';

function rewriteRefs(schema: unknown): any {
  if (Array.isArray(schema)) return schema.map(rewriteRefs);
  if (schema === null || typeof schema !== 'object') return schema;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(schema)) out[k] = k === '$ref' && typeof v === 'string' && v.startsWith('#/') ? SPEC_ID + v : rewriteRefs(v);
  return out;
}

/**
 * The same schemas with every object that lists its properties closed
 * (`unevaluatedProperties: false`), so that an answer carrying a field the document does not
 * describe fails too.
 */
function closeObjects(schema: unknown): any {
  if (Array.isArray(schema)) return schema.map(closeObjects);
  if (schema === null || typeof schema !== 'object') return schema;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(schema)) out[k] = k === 'examples' ? v : closeObjects(v);
  if (out.properties && out.additionalProperties === undefined && out.unevaluatedProperties === undefined) out.unevaluatedProperties = false;
  return out;
}

const ajv = new Ajv2020({ allErrors: true, strict: false });
(addFormats as unknown as (a: Ajv2020) => void)(ajv);
ajv.addSchema({ $id: SPEC_ID, components: closeObjects(doc.components) });

function resolve<T = any>(node: any): T {
  if (!node?.$ref) return node as T;
  const target = (node.$ref as string).replace(/^#\//, '').split('/').reduce<any>((n, key) => n?.[key], doc);
  if (!target) throw new Error(`unresolved ${node.$ref}`);
  return resolve(target);
}

function op(operationId: string): Operation {
  const found = spec.operations.get(operationId);
  if (!found) throw new Error(`no operation ${operationId}`);
  return found;
}

function responseDef(operationId: string, status: number): any {
  const o = op(operationId);
  const def = doc.paths[o.path][o.method.toLowerCase()].responses[String(status)];
  if (!def) throw new Error(`${operationId} documents no ${status} response`);
  return resolve(def);
}

const validators = new Map<string, ValidateFunction>();
function validatorFor(operationId: string, status: number, mediaType: string): ValidateFunction {
  const key = `${operationId} ${status} ${mediaType}`;
  let v = validators.get(key);
  if (!v) {
    const schema = responseDef(operationId, status).content?.[mediaType]?.schema;
    if (!schema) throw new Error(`${key}: no schema in the document`);
    v = ajv.compile(closeObjects(rewriteRefs(schema)));
    validators.set(key, v);
  }
  return v;
}

/** Asserts status, media type, documented headers and body schema; returns the body. */
async function conforms(t: ExecutionContext, res: Response, operationId: string, status: number): Promise<any> {
  t.is(res.status, status, `${operationId}: status`);
  const def = responseDef(operationId, status);
  const mediaTypes = Object.keys(def.content ?? {});
  const contentType = (res.headers.get('content-type') ?? '').split(';')[0]!.trim();
  t.true(mediaTypes.includes(contentType), `${operationId} ${status}: content type ${contentType} is one of ${mediaTypes.join(', ')}`);
  for (const [name, header] of Object.entries<any>(def.headers ?? {})) {
    const value = res.headers.get(name);
    const enumValues: unknown[] | undefined = resolve(header).schema?.enum;
    if (value !== null && enumValues) t.true(enumValues.includes(value), `${operationId} ${status}: header ${name}=${value}`);
  }
  const body = await res.json();
  const validate = validatorFor(operationId, status, contentType);
  const valid = validate(body);
  t.true(valid, `${operationId} ${status}: ${ajv.errorsText(validate.errors)}\n${JSON.stringify(body).slice(0, 500)}`);
  return body;
}

// ---------------------------------------------------------------------------------------------

test.serial('every operation in openapi.yaml is routed', async (t) => {
  const svc = await startTestService(t, { HOOKRELAY_ROLES: 'api' });
  t.true(spec.operations.size >= 6);
  for (const o of spec.operations.values()) {
    const path = o.path.replace(/\{[^}]+\}/g, 'some_id');
    const init: RequestInit & { json?: unknown } = { method: o.method };
    if (o.body) init.json = {};
    const res = await svc.api(path, init);
    const text = await res.text();
    let code: string | undefined;
    try {
      code = (JSON.parse(text) as { code?: string }).code;
    } catch {
      code = undefined;
    }
    t.not(code, 'not_found', `${o.operationId}: ${o.method} ${path} reached a handler (${res.status} ${text.slice(0, 200)})`);
    t.not(res.status, 405, o.operationId);
    t.true(res.status < 500, `${o.operationId}: ${res.status}`);
  }
});

test.serial('a path that the document does not describe is the router\'s 404', async (t) => {
  const svc = await startTestService(t, { HOOKRELAY_ROLES: 'api' });
  const res = await svc.api('/api/v1/endpoints');
  t.is(res.status, 404);
  t.is(((await res.json()) as { code: string }).code, 'not_found');
});

test.serial('every operation has a handler and every handler an operation (the app builds)', async (t) => {
  // createApp throws on a mismatch; a started service proves it did not.
  const svc = await startTestService(t, { HOOKRELAY_ROLES: 'api' });
  t.is((await svc.api('/healthz', { auth: false })).status, 200);
});

test.serial('happy-path answers validate against the document', async (t) => {
  const svc: TestService = await startTestService(t);
  const rx = await startReceiver(t);
  rx.script({ status: 500, body: 'not yet' });

  const deliver = await svc.api('/api/v1/webhooks/deliver', {
    method: 'POST',
    json: { url: `${rx.url}/contract`, payload: { kind: 'contract', n: [1, 2] }, headers: { 'X-Tenant': 'acme' }, retryPolicy: { maxAttempts: 3, baseDelayMs: 100 } },
    headers: { 'Idempotency-Key': 'contract-1' },
  });
  const accepted = await conforms(t, deliver, 'deliverWebhook', 202);
  t.is(deliver.headers.get('location'), `/api/v1/webhooks/${accepted.id}`);

  const replay = await svc.api('/api/v1/webhooks/deliver', {
    method: 'POST',
    json: { url: `${rx.url}/contract`, payload: { kind: 'contract', n: [1, 2] }, headers: { 'X-Tenant': 'acme' }, retryPolicy: { maxAttempts: 3, baseDelayMs: 100 } },
    headers: { 'Idempotency-Key': 'contract-1' },
  });
  await conforms(t, replay, 'deliverWebhook', 202);
  t.is(replay.headers.get('idempotent-replayed'), 'true');

  // One failed attempt, then a delivered one: attempts carry both shapes.
  await rx.waitFor(2);
  await eventually(async () => {
    const s = (await (await svc.api(`/api/v1/webhooks/${accepted.id}/status`)).json()) as { status: string };
    return s.status === 'delivered' ? s : undefined;
  });

  const status = await conforms(t, await svc.api(`/api/v1/webhooks/${accepted.id}/status`), 'getWebhookStatus', 200);
  t.is(status.status, 'delivered');

  const webhook = await conforms(t, await svc.api(`/api/v1/webhooks/${accepted.id}`), 'getWebhook', 200);
  t.is(webhook.attempts.length, 2);
  t.is(webhook.attempts[0].outcome, 'failure');
  t.is(webhook.attempts[1].outcome, 'success');
  t.is(webhook.idempotencyKey, 'contract-1');

  const secretRes = await svc.api(`/api/v1/endpoints/${accepted.endpointId}/secret`);
  t.is(secretRes.headers.get('cache-control'), 'no-store');
  await conforms(t, secretRes, 'getEndpointSecret', 200);

  await conforms(t, await svc.api('/healthz', { auth: false }), 'getHealthz', 200);
  await conforms(t, await svc.api('/readyz', { auth: false }), 'getReadyz', 200);
});

test.serial('a webhook not attempted yet validates too (nulls where the document allows them)', async (t) => {
  const svc = await startTestService(t, { HOOKRELAY_ROLES: 'api' });
  const deliver = await svc.api('/api/v1/webhooks/deliver', { method: 'POST', json: { url: 'http://127.0.0.1:1/x', payload: null } });
  const accepted = await conforms(t, deliver, 'deliverWebhook', 202);
  const status = await conforms(t, await svc.api(`/api/v1/webhooks/${accepted.id}/status`), 'getWebhookStatus', 200);
  t.is(status.status, 'pending');
  const webhook = await conforms(t, await svc.api(`/api/v1/webhooks/${accepted.id}`), 'getWebhook', 200);
  t.deepEqual(webhook.attempts, []);
  t.is(webhook.idempotencyKey, null);
});

test.serial('problem answers validate against the document: 400, 401, 404, 409, 413, 415', async (t) => {
  const svc = await startTestService(t, { HOOKRELAY_ROLES: 'api', HOOKRELAY_MAX_PAYLOAD_BYTES: '1024' });
  const deliver = (init: RequestInit & { json?: unknown; auth?: boolean }) => svc.api('/api/v1/webhooks/deliver', { method: 'POST', ...init });

  const bad = await conforms(t, await deliver({ json: { url: 'ftp://x', payload: 1, extra: true } }), 'deliverWebhook', 400);
  t.true(bad.errors.length >= 2);
  await conforms(t, await deliver({ headers: { 'content-type': 'application/json' }, body: '{' }), 'deliverWebhook', 400);
  const unauthorized = await deliver({ json: { url: 'http://127.0.0.1:1/x', payload: 1 }, auth: false });
  t.truthy(unauthorized.headers.get('www-authenticate'));
  await conforms(t, unauthorized, 'deliverWebhook', 401);
  await conforms(t, await deliver({ headers: { 'content-type': 'text/plain' }, body: 'x' }), 'deliverWebhook', 415);
  await conforms(t, await deliver({ json: { url: 'http://127.0.0.1:1/x', payload: 'a'.repeat(2000) } }), 'deliverWebhook', 413);
  t.is((await deliver({ json: { url: 'http://127.0.0.1:1/x', payload: 1 }, headers: { 'Idempotency-Key': 'k' } })).status, 202);
  await conforms(t, await deliver({ json: { url: 'http://127.0.0.1:1/x', payload: 2 }, headers: { 'Idempotency-Key': 'k' } }), 'deliverWebhook', 409);

  await conforms(t, await svc.api('/api/v1/webhooks/msg_missing'), 'getWebhook', 404);
  await conforms(t, await svc.api('/api/v1/webhooks/msg_missing/status'), 'getWebhookStatus', 404);
  await conforms(t, await svc.api('/api/v1/endpoints/ep_missing/secret'), 'getEndpointSecret', 404);
  await conforms(t, await svc.api('/api/v1/endpoints/ep_missing/secret', { auth: false }), 'getEndpointSecret', 401);
});

test.serial('every response an operation can give is documented with a schema', (t) => {
  for (const o of spec.operations.values()) {
    const responses = doc.paths[o.path][o.method.toLowerCase()].responses as Record<string, unknown>;
    for (const [status, raw] of Object.entries(responses)) {
      const def = resolve(raw);
      const content = def.content ?? {};
      t.true(Object.keys(content).length > 0, `${o.operationId} ${status} has content`);
      for (const [media, m] of Object.entries<any>(content)) {
        t.truthy(m.schema, `${o.operationId} ${status} ${media} has a schema`);
        t.notThrows(() => validatorFor(o.operationId, Number(status), media), `${o.operationId} ${status} ${media} compiles`);
      }
    }
  }
});

test.serial('npm run gen:api:check passes: src/api/openapi-types.ts matches openapi.yaml', async (t) => {
  const child = spawn(process.execPath, ['scripts/gen-api.ts', '--check'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr.on('data', (c: Buffer) => (output += c.toString()));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', resolve);
  });
  t.is(code, 0, output);
});

test.serial('the response validators are not vacuous: a wrong type, a missing or an undocumented field fails', (t) => {
  const accepted = validatorFor('deliverWebhook', 202, 'application/json');
  t.true(accepted({ id: 'msg_1', endpointId: 'ep_1', status: 'pending' }));
  t.false(accepted({ id: 'msg_1', endpointId: 'ep_1', status: 'pending', extra: 1 }));
  t.false(accepted({ id: 'msg_1', status: 'pending' }));
  t.false(accepted({ id: 'msg_1', endpointId: 'ep_1', status: 'delivered' }));
  const problem = validatorFor('deliverWebhook', 400, 'application/problem+json');
  const base = { type: 'urn:x', title: 'Bad Request', status: 400, code: 'x', detail: 'y' };
  t.true(problem({ ...base, errors: [{ field: 'url', pointer: '/url', message: 'm' }] }));
  t.false(problem({ ...base, errors: [{ field: 'url', message: 'm' }] }));
  t.false(problem({ ...base, errors: [{ field: 'url', pointer: '/url', message: 'm', hint: 'h' }] }));
  t.false(problem({ ...base, status: '400' }));
});
