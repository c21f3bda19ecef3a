import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import test, { type ExecutionContext } from 'ava';
import { ajv, doc, resolve, responseDef, spec, validatorFor } from '../helpers/contract.ts';
import { startReceiver } from '../helpers/receiver.ts';
import { eventually, startTestService, type TestService } from '../helpers/service.ts';

/**
 * openapi.yaml is the contract: every operation it describes is served, and what the service
 * answers on the happy paths (and a 400) is what the document says it answers.
 */

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** `operationId status` of every answer conforms() checked; the last test asks that every operation had a 2xx. */
const checked = new Set<string>();

/** Asserts status, media type, documented headers and body schema; returns the body. */
async function conforms(t: ExecutionContext, res: Response, operationId: string, status: number): Promise<any> {
  t.is(res.status, status, `${operationId}: status`);
  if (res.status === status) checked.add(`${operationId} ${status}`);
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

test.serial('a path or method that the document does not describe is the router\'s 404', async (t) => {
  const svc = await startTestService(t, { HOOKRELAY_ROLES: 'api' });
  for (const [method, path] of [['GET', '/api/v1/nothing-here'], ['GET', '/api/v1/webhooks/deliver/extra'], ['PUT', '/api/v1/endpoints'], ['DELETE', '/api/v1/webhooks']] as const) {
    const res = await svc.api(path, { method });
    t.is(res.status, 404, `${method} ${path}`);
    t.is(((await res.json()) as { code: string }).code, 'not_found', `${method} ${path}`);
  }
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

const SECRET_32 = 'whsec_' + Buffer.alloc(32, 3).toString('base64');

test.serial('endpoint operations: happy-path answers validate against the document', async (t) => {
  const svc = await startTestService(t, { HOOKRELAY_ROLES: 'api' });

  // createEndpoint: every field given, and the minimum (nulls where the document allows them).
  const full = await svc.api('/api/v1/endpoints', {
    method: 'POST',
    json: {
      url: 'https://contract.example.com/full',
      description: 'all fields',
      enabled: true,
      headers: { 'X-Tenant': 'acme' },
      retryPolicy: { maxAttempts: 5, baseDelayMs: 200 },
      timeoutMs: 2000,
      signature: { algorithm: 'hmac-sha512' },
      metadata: { team: 'payments', tags: ['a'], nested: { n: 1 } },
      secret: SECRET_32,
    },
  });
  const ep = await conforms(t, full, 'createEndpoint', 201);
  t.is(full.headers.get('location'), `/api/v1/endpoints/${ep.id}`);
  t.like(ep, { url: 'https://contract.example.com/full', timeoutMs: 2000, signature: { algorithm: 'hmac-sha512' }, deletedAt: null, disabledReason: null });
  const minimal = await conforms(t, await svc.api('/api/v1/endpoints', { method: 'POST', json: { url: 'https://contract.example.com/min' } }), 'createEndpoint', 201);
  t.like(minimal, { description: '', enabled: true, retryPolicy: null, timeoutMs: null, headers: {}, metadata: {}, signature: { algorithm: 'hmac-sha256' } });
  const disabled = await conforms(t, await svc.api('/api/v1/endpoints', { method: 'POST', json: { url: 'https://contract.example.com/off', enabled: false } }), 'createEndpoint', 201);
  t.is(typeof disabled.disabledReason, 'string');
  // A webhook for a disabled endpoint is accepted as held.
  const held = await conforms(t, await svc.api('/api/v1/webhooks/deliver', { method: 'POST', json: { endpointId: disabled.id, payload: 1 } }), 'deliverWebhook', 202);
  t.is(held.status, 'held');
  t.is((await conforms(t, await svc.api(`/api/v1/webhooks/${held.id}/status`), 'getWebhookStatus', 200)).status, 'held');

  // getEndpoint, listEndpoints (two pages: a cursor, then null).
  t.deepEqual(await conforms(t, await svc.api(`/api/v1/endpoints/${ep.id}`), 'getEndpoint', 200), ep);
  const page1 = await conforms(t, await svc.api('/api/v1/endpoints?limit=2'), 'listEndpoints', 200);
  t.is(page1.data.length, 2);
  t.is(typeof page1.nextCursor, 'string');
  const page2 = await conforms(t, await svc.api(`/api/v1/endpoints?limit=2&cursor=${encodeURIComponent(page1.nextCursor)}`), 'listEndpoints', 200);
  t.is(page2.data.length, 1);
  t.is(page2.nextCursor, null);
  await conforms(t, await svc.api('/api/v1/endpoints?enabled=false&url=CONTRACT'), 'listEndpoints', 200);

  // updateEndpoint: a change, and clearing the policy and the timeout.
  const patched = await conforms(t, await svc.api(`/api/v1/endpoints/${ep.id}`, { method: 'PATCH', json: { description: 'changed', retryPolicy: null, timeoutMs: null } }), 'updateEndpoint', 200);
  t.like(patched, { description: 'changed', retryPolicy: null, timeoutMs: null });

  // getEndpointSecret, rotateEndpointSecret without a body and with one.
  const secretRes = await svc.api(`/api/v1/endpoints/${ep.id}/secret`);
  t.is(secretRes.headers.get('cache-control'), 'no-store');
  t.deepEqual(await conforms(t, secretRes, 'getEndpointSecret', 200), { secret: SECRET_32 });
  const rotated = await conforms(t, await svc.api(`/api/v1/endpoints/${ep.id}/secret/rotate`, { method: 'POST' }), 'rotateEndpointSecret', 200);
  t.is(typeof rotated.previousKeyId, 'string');
  t.is(typeof rotated.previousKeyExpiresAt, 'string');
  const rotatedAgain = await conforms(t, await svc.api(`/api/v1/endpoints/${ep.id}/secret/rotate`, { method: 'POST', json: { graceSeconds: 0 } }), 'rotateEndpointSecret', 200);
  t.is(rotatedAgain.previousKeyId, rotated.keyId);

  // ed25519: the public key, and a rotation that names the new public key.
  const ed = await conforms(t, await svc.api('/api/v1/endpoints', { method: 'POST', json: { url: 'https://contract.example.com/ed', signature: { algorithm: 'ed25519' } } }), 'createEndpoint', 201);
  const pub = await conforms(t, await svc.api(`/api/v1/endpoints/${ed.id}/public-key`), 'getEndpointPublicKey', 200);
  const edRotated = await conforms(t, await svc.api(`/api/v1/endpoints/${ed.id}/secret/rotate`, { method: 'POST', json: {} }), 'rotateEndpointSecret', 200);
  t.regex(edRotated.publicKey, /^whpk_/);
  t.not(edRotated.publicKey, pub.publicKey);
  t.is(edRotated.previousKeyId, pub.keyId);

  // deleteEndpoint; the deleted endpoint still reads, with deletedAt.
  const deleted = await conforms(t, await svc.api(`/api/v1/endpoints/${minimal.id}`, { method: 'DELETE' }), 'deleteEndpoint', 200);
  t.is(typeof deleted.deletedAt, 'string');
  t.deepEqual(await conforms(t, await svc.api(`/api/v1/endpoints/${minimal.id}`), 'getEndpoint', 200), deleted);
});

test.serial('listWebhooks and verifySignature: happy-path answers validate against the document', async (t) => {
  const svc = await startTestService(t);
  const rx = await startReceiver(t);
  const ids: string[] = [];
  for (const n of [1, 2, 3]) {
    const res = await svc.api('/api/v1/webhooks/deliver', { method: 'POST', json: { url: `${rx.url}/list`, payload: { n } } });
    ids.push((await conforms(t, res, 'deliverWebhook', 202)).id);
  }
  const [got] = await rx.waitFor(1);
  const page1 = await conforms(t, await svc.api('/api/v1/webhooks?limit=2'), 'listWebhooks', 200);
  t.deepEqual(page1.data.map((w: { id: string }) => w.id), [ids[2], ids[1]]);
  const page2 = await conforms(t, await svc.api(`/api/v1/webhooks?limit=2&cursor=${encodeURIComponent(page1.nextCursor)}`), 'listWebhooks', 200);
  t.deepEqual(page2.data.map((w: { id: string }) => w.id), [ids[0]]);
  t.is(page2.nextCursor, null);
  const since = new Date(Date.now() - 60_000).toISOString();
  await conforms(t, await svc.api(`/api/v1/webhooks?status=pending&endpointId=${page1.data[0].endpointId}&createdAfter=${since}&createdBefore=${new Date(Date.now() + 60_000).toISOString()}`), 'listWebhooks', 200);

  // A delivery as the receiver got it verifies against its endpoint and against its secret;
  // a wrong secret is still a 200, with valid false.
  const endpointId = page1.data[0].endpointId as string;
  const byEndpoint = await conforms(t, await svc.api('/api/v1/signatures/verify', { method: 'POST', json: { body: got!.body, headers: got!.headers, endpointId } }), 'verifySignature', 200);
  t.like(byEndpoint, { valid: true, scheme: 'standard-webhooks' });
  t.is(typeof byEndpoint.keyId, 'string');
  const { secret } = (await (await svc.api(`/api/v1/endpoints/${endpointId}/secret`)).json()) as { secret: string };
  const bySecret = await conforms(t, await svc.api('/api/v1/signatures/verify', { method: 'POST', json: { body: got!.body, headers: got!.headers, secret } }), 'verifySignature', 200);
  t.is(bySecret.valid, true);
  const wrong = await conforms(t, await svc.api('/api/v1/signatures/verify', { method: 'POST', json: { body: got!.body, headers: got!.headers, secret: SECRET_32 } }), 'verifySignature', 200);
  t.is(wrong.valid, false);
  const unsigned = await conforms(t, await svc.api('/api/v1/signatures/verify', { method: 'POST', json: { body: '{}', headers: {}, secret } }), 'verifySignature', 200);
  t.like(unsigned, { valid: false, scheme: null });
});

test.serial('problem answers of the endpoint, list and verify operations validate against the document', async (t) => {
  const svc = await startTestService(t, { HOOKRELAY_ROLES: 'api' });
  const post = (path: string, json: unknown) => svc.api(path, { method: 'POST', json });
  const hmac = (await (await post('/api/v1/endpoints', { url: 'https://problems.example.com/hmac' })).json()) as { id: string };
  const ed = (await (await post('/api/v1/endpoints', { url: 'https://problems.example.com/ed', signature: { algorithm: 'ed25519' } })).json()) as { id: string };
  const gone = (await (await post('/api/v1/endpoints', { url: 'https://problems.example.com/gone' })).json()) as { id: string };
  t.is((await svc.api(`/api/v1/endpoints/${gone.id}`, { method: 'DELETE' })).status, 200);
  const text = { headers: { 'content-type': 'text/plain' }, body: 'x' };

  await conforms(t, await post('/api/v1/endpoints', { url: 'ftp://x', bogus: 1 }), 'createEndpoint', 400);
  await conforms(t, await post('/api/v1/endpoints', { url: 'https://problems.example.com/hmac' }), 'createEndpoint', 409);
  await conforms(t, await svc.api('/api/v1/endpoints', { method: 'POST', ...text }), 'createEndpoint', 415);
  await conforms(t, await svc.api('/api/v1/endpoints', { method: 'POST', json: { url: 'https://x.example.com/' }, auth: false }), 'createEndpoint', 401);

  await conforms(t, await svc.api('/api/v1/endpoints?limit=0'), 'listEndpoints', 400);
  await conforms(t, await svc.api('/api/v1/endpoints', { auth: false }), 'listEndpoints', 401);
  await conforms(t, await svc.api('/api/v1/endpoints/ep_missing'), 'getEndpoint', 404);
  await conforms(t, await svc.api(`/api/v1/endpoints/${hmac.id}`, { auth: false }), 'getEndpoint', 401);

  await conforms(t, await svc.api(`/api/v1/endpoints/${hmac.id}`, { method: 'PATCH', json: {} }), 'updateEndpoint', 400);
  await conforms(t, await svc.api('/api/v1/endpoints/ep_missing', { method: 'PATCH', json: { description: 'x' } }), 'updateEndpoint', 404);
  await conforms(t, await svc.api(`/api/v1/endpoints/${gone.id}`, { method: 'PATCH', json: { description: 'x' } }), 'updateEndpoint', 409);
  await conforms(t, await svc.api(`/api/v1/endpoints/${hmac.id}`, { method: 'PATCH', ...text }), 'updateEndpoint', 415);
  await conforms(t, await svc.api('/api/v1/endpoints/ep_missing', { method: 'DELETE' }), 'deleteEndpoint', 404);
  await conforms(t, await svc.api(`/api/v1/endpoints/${hmac.id}`, { method: 'DELETE', auth: false }), 'deleteEndpoint', 401);

  await conforms(t, await post(`/api/v1/endpoints/${hmac.id}/secret/rotate`, { graceSeconds: -1 }), 'rotateEndpointSecret', 400);
  await conforms(t, await post('/api/v1/endpoints/ep_missing/secret/rotate', {}), 'rotateEndpointSecret', 404);
  await conforms(t, await post(`/api/v1/endpoints/${gone.id}/secret/rotate`, {}), 'rotateEndpointSecret', 409);
  await conforms(t, await svc.api(`/api/v1/endpoints/${hmac.id}/secret/rotate`, { method: 'POST', ...text }), 'rotateEndpointSecret', 415);
  await conforms(t, await svc.api(`/api/v1/endpoints/${ed.id}/secret`), 'getEndpointSecret', 409);
  await conforms(t, await svc.api(`/api/v1/endpoints/${hmac.id}/public-key`), 'getEndpointPublicKey', 409);
  await conforms(t, await svc.api('/api/v1/endpoints/ep_missing/public-key'), 'getEndpointPublicKey', 404);

  await conforms(t, await svc.api('/api/v1/webhooks?status=nope'), 'listWebhooks', 400);
  await conforms(t, await svc.api('/api/v1/webhooks', { auth: false }), 'listWebhooks', 401);
  await conforms(t, await post('/api/v1/signatures/verify', { body: '{}', headers: {} }), 'verifySignature', 400);
  await conforms(t, await post('/api/v1/signatures/verify', { body: '{}', headers: {}, endpointId: 'ep_missing' }), 'verifySignature', 404);
  await conforms(t, await svc.api('/api/v1/signatures/verify', { method: 'POST', ...text }), 'verifySignature', 415);

  // deliverWebhook by endpointId: both given, a deleted endpoint.
  await conforms(t, await post('/api/v1/webhooks/deliver', { url: 'https://problems.example.com/hmac', endpointId: hmac.id, payload: 1 }), 'deliverWebhook', 400);
  await conforms(t, await post('/api/v1/webhooks/deliver', { endpointId: gone.id, payload: 1 }), 'deliverWebhook', 409);
});

test.serial('health, dead letters and re-queueing: answers validate against the document', async (t) => {
  const svc = await startTestService(t);
  const rx = await startReceiver(t);
  rx.fallback = { status: 500, body: 'always failing' };
  const created = await conforms(t, await svc.api('/api/v1/endpoints', { method: 'POST', json: { url: `${rx.url}/failing`, retryPolicy: { maxAttempts: 1 } } }), 'createEndpoint', 201);
  const ids: string[] = [];
  for (const n of [1, 2]) {
    ids.push((await conforms(t, await svc.api('/api/v1/webhooks/deliver', { method: 'POST', json: { endpointId: created.id, payload: { n } } }), 'deliverWebhook', 202)).id);
  }
  const allDead = () => eventually(async () => {
    const states = await Promise.all(ids.map(async (id) => ((await (await svc.api(`/api/v1/webhooks/${id}/status`)).json()) as { status: string }).status));
    return states.every((s) => s === 'dead') ? states : undefined;
  });
  await allDead();

  const health = await conforms(t, await svc.api(`/api/v1/endpoints/${created.id}/health`), 'getEndpointHealth', 200);
  t.true(health.consecutiveFailures >= 2);
  t.is(typeof health.lastFailureAt, 'string');
  // The endpoint itself, with its health, still validates.
  await conforms(t, await svc.api(`/api/v1/endpoints/${created.id}`), 'getEndpoint', 200);

  const letters = await conforms(t, await svc.api(`/api/v1/dead-letters?endpointId=${created.id}&reason=attempts_exhausted&replayed=false&limit=1`), 'listDeadLetters', 200);
  t.is(letters.data.length, 1);
  t.is(typeof letters.nextCursor, 'string');
  const rest = await conforms(t, await svc.api(`/api/v1/dead-letters?limit=1&cursor=${encodeURIComponent(letters.nextCursor)}`), 'listDeadLetters', 200);
  t.is(rest.data.length, 1);
  t.is(rest.nextCursor, null);

  const replayed = await conforms(t, await svc.api(`/api/v1/dead-letters/${letters.data[0].id}/replay`, { method: 'POST' }), 'replayDeadLetter', 200);
  t.is(replayed.webhookId, letters.data[0].webhookId);
  await conforms(t, await svc.api(`/api/v1/dead-letters/${letters.data[0].id}/replay`, { method: 'POST' }), 'replayDeadLetter', 409);
  // The replayed webhook fails again (one attempt) and gets a new open dead letter: once it
  // has, both webhooks have one open letter each for the bulk replay.
  await allDead();
  const bulk = await conforms(t, await svc.api('/api/v1/dead-letters/replay', { method: 'POST', json: { endpointId: created.id } }), 'replayDeadLetters', 200);
  t.is(bulk.requeued, 2);
  await allDead();
  const retried = await conforms(t, await svc.api('/api/v1/webhooks/retry', { method: 'POST', json: { status: 'dead', endpointId: created.id } }), 'retryWebhooks', 200);
  t.is(retried.requeued, 2);
  await conforms(t, await svc.api('/api/v1/webhooks/retry', { method: 'POST', json: { status: 'retrying' } }), 'retryWebhooks', 200);

  // Their problem answers.
  const text = { headers: { 'content-type': 'text/plain' }, body: 'x' };
  await conforms(t, await svc.api('/api/v1/endpoints/ep_missing/health'), 'getEndpointHealth', 404);
  await conforms(t, await svc.api('/api/v1/endpoints/ep_missing/health', { auth: false }), 'getEndpointHealth', 401);
  await conforms(t, await svc.api('/api/v1/dead-letters?reason=nope'), 'listDeadLetters', 400);
  await conforms(t, await svc.api('/api/v1/dead-letters', { auth: false }), 'listDeadLetters', 401);
  await conforms(t, await svc.api('/api/v1/dead-letters/dl_missing/replay', { method: 'POST' }), 'replayDeadLetter', 404);
  await conforms(t, await svc.api('/api/v1/dead-letters/dl_missing/replay', { method: 'POST', auth: false }), 'replayDeadLetter', 401);
  await conforms(t, await svc.api('/api/v1/dead-letters/replay', { method: 'POST', json: { bogus: 1 } }), 'replayDeadLetters', 400);
  await conforms(t, await svc.api('/api/v1/dead-letters/replay', { method: 'POST', ...text }), 'replayDeadLetters', 415);
  await conforms(t, await svc.api('/api/v1/webhooks/retry', { method: 'POST', json: { status: 'pending' } }), 'retryWebhooks', 400);
  await conforms(t, await svc.api('/api/v1/webhooks/retry', { method: 'POST', ...text }), 'retryWebhooks', 415);
  await conforms(t, await svc.api('/api/v1/webhooks/retry', { method: 'POST', json: { status: 'dead' }, auth: false }), 'retryWebhooks', 401);
});

test.serial('retryWebhook: answers validate against the document', async (t) => {
  const svc = await startTestService(t);
  const rx = await startReceiver(t);
  rx.fallback = { status: 500 };
  const endpoint = await svc.api('/api/v1/endpoints', { method: 'POST', json: { url: rx.url } });
  const endpointId = ((await endpoint.json()) as { id: string }).id;
  const submitted = await svc.api('/api/v1/webhooks/deliver', { method: 'POST', json: { endpointId, payload: 1, retryPolicy: { maxAttempts: 1 } } });
  const id = ((await submitted.json()) as { id: string }).id;
  await eventually(async () => ((await (await svc.api(`/api/v1/webhooks/${id}/status`)).json()) as { status: string }).status === 'dead' || undefined);
  // The replayed attempt takes a while, so the second call finds the webhook pending.
  rx.fallback = { status: 500, delayMs: 3_000 };
  const one = await conforms(t, await svc.api(`/api/v1/webhooks/${id}/retry`, { method: 'POST' }), 'retryWebhook', 200);
  t.is(one.webhookId, id);
  await conforms(t, await svc.api(`/api/v1/webhooks/${id}/retry`, { method: 'POST' }), 'retryWebhook', 409);
  await conforms(t, await svc.api('/api/v1/webhooks/msg_missing/retry', { method: 'POST' }), 'retryWebhook', 404);
  await conforms(t, await svc.api('/api/v1/webhooks/msg_missing/retry', { method: 'POST', auth: false }), 'retryWebhook', 401);
});

test.serial('deliverWebhook documents the 404 it answers for an unknown endpointId', async (t) => {
  const svc = await startTestService(t, { HOOKRELAY_ROLES: 'api' });
  const res = await svc.api('/api/v1/webhooks/deliver', { method: 'POST', json: { endpointId: 'ep_00000000000000000000000000', payload: 1 } });
  t.is(res.status, 404);
  const documented = Object.keys(doc.paths['/api/v1/webhooks/deliver'].post.responses);
  t.true(documented.includes('404'), `openapi.yaml lists ${documented.join(', ')} for deliverWebhook, but the service answers 404 for an unknown endpointId`);
  if (documented.includes('404')) await conforms(t, res, 'deliverWebhook', 404);
});

test.serial('token API, 403 and 429: answers validate against the document', async (t) => {
  const svc = await startTestService(t, { HOOKRELAY_ROLES: 'api' });
  const created = await conforms(t, await svc.api('/api/v1/tokens', { method: 'POST', json: { name: 'contract', scopes: ['webhooks:read'], rateLimitPerSecond: 1, rateLimitBurst: 1 } }), 'createApiToken', 201);
  await conforms(t, await svc.api('/api/v1/tokens', { method: 'POST', json: { name: '' } }), 'createApiToken', 400);
  await conforms(t, await svc.api('/api/v1/tokens', { method: 'POST', json: { name: 'x' }, auth: false }), 'createApiToken', 401);
  await conforms(t, await svc.api('/api/v1/tokens', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'x' }), 'createApiToken', 415);
  const list = await conforms(t, await svc.api('/api/v1/tokens?limit=1'), 'listApiTokens', 200);
  t.is(typeof list.nextCursor, 'string');
  await conforms(t, await svc.api('/api/v1/tokens?limit=0'), 'listApiTokens', 400);
  await conforms(t, await svc.api('/api/v1/tokens', { auth: false }), 'listApiTokens', 401);
  const limited = { headers: { authorization: `Bearer ${created.token}` } };
  await conforms(t, await svc.api('/api/v1/tokens', limited), 'listApiTokens', 403);
  // Its burst of one is spent: the next request is over the limit.
  await conforms(t, await svc.api('/api/v1/webhooks', limited), 'listWebhooks', 429);
  await conforms(t, await svc.api('/api/v1/tokens/tok_missing', { method: 'DELETE' }), 'revokeApiToken', 404);
  await conforms(t, await svc.api('/api/v1/tokens/tok_missing', { method: 'DELETE', auth: false }), 'revokeApiToken', 401);
  const revoked = await conforms(t, await svc.api(`/api/v1/tokens/${created.id}`, { method: 'DELETE' }), 'revokeApiToken', 200);
  t.is(typeof revoked.revokedAt, 'string');
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

test.serial('getStats and getMetrics: answers validate against the document', async (t) => {
  const svc = await startTestService(t, { HOOKRELAY_ROLES: 'api' });
  const stats = await conforms(t, await svc.api('/api/v1/stats'), 'getStats', 200);
  t.is(stats.perMinute.length, 60);
  await conforms(t, await svc.api('/api/v1/stats', { auth: false }), 'getStats', 401);
  // Text, not JSON: status, media type and content checked here.
  const metrics = await svc.api('/metrics');
  t.is(metrics.status, 200);
  t.regex(metrics.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  t.regex(await metrics.text(), /^# TYPE hookrelay_webhooks_accepted_total counter$/m);
  checked.add('getMetrics 200');
  await conforms(t, await svc.api('/metrics', { auth: false }), 'getMetrics', 401);
});

// Last of the serial tests, which run in the order they are declared: every operation in the
// document had at least one success answer validated above.
test.serial('every operation in openapi.yaml had a happy-path answer validated', (t) => {
  const missing = [...spec.operations.keys()].filter((id) => ![...checked].some((c) => c.startsWith(`${id} 2`)));
  t.deepEqual(missing, []);
});
