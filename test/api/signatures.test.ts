import { randomBytes } from 'node:crypto';
import test, { type ExecutionContext } from 'ava';
import { signatureHeaders } from '../../src/delivery/sign.ts';
import { query } from '../helpers/db.ts';
import { startReceiver, type Received, type Receiver } from '../helpers/receiver.ts';
import { eventually, startTestService } from '../helpers/service.ts';

/** POST /api/v1/signatures/verify against deliveries a real receiver got. */

type Svc = Awaited<ReturnType<typeof startTestService>>;

async function json(res: Response): Promise<any> {
  return res.json();
}

async function deliver(t: ExecutionContext, svc: Svc, rx: Receiver, url: string, payload: unknown = { n: Math.random(), text: 'ünïcødé ✓' }): Promise<{ got: Received; endpointId: string }> {
  const res = await svc.api('/api/v1/webhooks/deliver', { method: 'POST', json: { url, payload } });
  const body = await json(res);
  t.is(res.status, 202, JSON.stringify(body));
  const got = await eventually(async () => rx.received.find((r) => r.headers['webhook-id'] === body.id));
  return { got, endpointId: body.endpointId };
}

async function verify(svc: Svc, body: unknown): Promise<{ status: number; body: any; type: string | null }> {
  const res = await svc.api('/api/v1/signatures/verify', { method: 'POST', json: body });
  return { status: res.status, body: await json(res), type: res.headers.get('content-type') };
}

async function currentKeyId(svc: Svc, endpointId: string): Promise<string> {
  const rows = await query(svc.dbUrl, 'SELECT id FROM hookrelay.signing_keys WHERE endpoint_id = $1 AND expires_at IS NULL', [endpointId]);
  return rows[0]!.id;
}

function only(headers: Record<string, string>, prefix: string): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).filter(([k]) => k.startsWith(prefix)));
}

test.serial('real deliveries verify by endpointId (keyId = the signing key), by whsec_ secret and by whpk_ public key', async (t) => {
  const svc = await startTestService(t);
  const rx = await startReceiver(t);

  // HMAC, endpoint registered by its first webhook.
  const { got, endpointId } = await deliver(t, svc, rx, `${rx.url}/hmac`);
  const keyId = await currentKeyId(svc, endpointId);
  const byId = await verify(svc, { body: got.body, headers: got.headers, endpointId });
  t.is(byId.status, 200, JSON.stringify(byId.body));
  t.deepEqual(byId.body, { valid: true, scheme: 'standard-webhooks', reason: byId.body.reason, keyId });
  t.regex(byId.body.reason, /match/);

  const { secret } = await json(await svc.api(`/api/v1/endpoints/${endpointId}/secret`));
  const bySecret = await verify(svc, { body: got.body, headers: got.headers, secret });
  t.is(bySecret.status, 200);
  t.is(bySecret.body.valid, true);
  t.is(bySecret.body.scheme, 'standard-webhooks');
  t.is(bySecret.body.keyId, undefined, 'a given secret has no key id');

  const wrongSecret = await verify(svc, { body: got.body, headers: got.headers, secret: 'whsec_' + randomBytes(32).toString('base64') });
  t.is(wrongSecret.status, 200);
  t.is(wrongSecret.body.valid, false);
  t.truthy(wrongSecret.body.reason);

  // Header names in another case (as a proxy might forward them) verify too.
  const upper = Object.fromEntries(Object.entries(got.headers).map(([k, v]) => [k.replace(/(^|-)([a-z])/g, (_, d: string, c: string) => d + c.toUpperCase()), v]));
  t.truthy(upper['Webhook-Signature']);
  t.is((await verify(svc, { body: got.body, headers: upper, endpointId })).body.valid, true);

  // ed25519.
  const ep = await svc.api('/api/v1/endpoints', { method: 'POST', json: { url: `${rx.url}/ed`, signature: { algorithm: 'ed25519' } } });
  t.is(ep.status, 201);
  const ed = await json(ep);
  const { publicKey, keyId: edKeyId } = await json(await svc.api(`/api/v1/endpoints/${ed.id}/public-key`));
  const edGot = (await deliver(t, svc, rx, `${rx.url}/ed`)).got;
  t.regex(edGot.headers['webhook-signature']!, /^v1a,/);
  const byPublicKey = await verify(svc, { body: edGot.body, headers: edGot.headers, secret: publicKey });
  t.is(byPublicKey.status, 200, JSON.stringify(byPublicKey.body));
  t.is(byPublicKey.body.valid, true, byPublicKey.body.reason);
  t.is(byPublicKey.body.scheme, 'standard-webhooks');
  const edById = await verify(svc, { body: edGot.body, headers: edGot.headers, endpointId: ed.id });
  t.deepEqual(edById.body, { valid: true, scheme: 'standard-webhooks', reason: edById.body.reason, keyId: edKeyId });
  // The HMAC delivery does not verify against the ed25519 endpoint, nor the other way round.
  t.is((await verify(svc, { body: got.body, headers: got.headers, endpointId: ed.id })).body.valid, false);
  t.is((await verify(svc, { body: edGot.body, headers: edGot.headers, secret })).body.valid, false);
});

test.serial('during a rotation, keyId names the key that matched: the old one for old deliveries, the new one after', async (t) => {
  const svc = await startTestService(t);
  const rx = await startReceiver(t);
  const url = `${rx.url}/rotating`;
  const before = await deliver(t, svc, rx, url);
  const oldKey = await currentKeyId(svc, before.endpointId);
  const rotation = await json(await svc.api(`/api/v1/endpoints/${before.endpointId}/secret/rotate`, { method: 'POST', json: {} }));
  t.is(rotation.previousKeyId, oldKey);
  const after = await deliver(t, svc, rx, url);
  t.is(after.got.headers['webhook-signature']!.split(' ').length, 2);

  const oldVerdict = await verify(svc, { body: before.got.body, headers: before.got.headers, endpointId: before.endpointId });
  t.is(oldVerdict.body.valid, true, oldVerdict.body.reason);
  t.is(oldVerdict.body.keyId, oldKey, 'signed only by the old key, which is still in grace');
  const newVerdict = await verify(svc, { body: after.got.body, headers: after.got.headers, endpointId: after.endpointId });
  t.is(newVerdict.body.valid, true);
  t.is(newVerdict.body.keyId, rotation.keyId, 'the current key is reported first');

  // Rotate again with no grace: every old key is retired at once (rotation.keyId and the first
  // key, whose grace is cut short), so `after` no longer verifies against the endpoint.
  const retire = await svc.api(`/api/v1/endpoints/${before.endpointId}/secret/rotate`, { method: 'POST', json: { graceSeconds: 0 } });
  t.is(retire.status, 200);
  const stale = await verify(svc, { body: after.got.body, headers: after.got.headers, endpointId: after.endpointId });
  t.is(stale.body.valid, false);
  t.is(stale.body.keyId, undefined);
});

test.serial('a tampered delivery is not valid, and the reason says why', async (t) => {
  const svc = await startTestService(t);
  const rx = await startReceiver(t);
  const { got, endpointId } = await deliver(t, svc, rx, `${rx.url}/tamper`, { amount: 100 });
  const tampered = [
    { body: got.body.replace('100', '999'), headers: got.headers },
    { body: got.body + ' ', headers: got.headers },
    { body: got.body, headers: { ...got.headers, 'webhook-id': 'msg_other' } },
    { body: got.body, headers: { ...got.headers, 'webhook-signature': 'v1,' + Buffer.alloc(32).toString('base64') } },
  ];
  for (const input of tampered) {
    const res = await verify(svc, { ...input, endpointId });
    t.is(res.status, 200);
    t.is(res.body.valid, false);
    t.is(res.body.scheme, 'standard-webhooks');
    t.regex(res.body.reason, /no signature matches/);
    t.is(res.body.keyId, undefined);
  }
  const missing = await verify(svc, { body: got.body, headers: { 'content-type': 'application/json' }, endpointId });
  t.is(missing.status, 200);
  t.deepEqual([missing.body.valid, missing.body.scheme], [false, null]);
  t.regex(missing.body.reason, /missing/);
  const noTimestamp = await verify(svc, { body: got.body, headers: { ...got.headers, 'webhook-timestamp': undefined }, endpointId });
  t.is(noTimestamp.body.valid, false);
  t.regex(noTimestamp.body.reason, /webhook-timestamp/);
});

test.serial('a timestamp older than toleranceSeconds is refused, with the tolerance in the reason', async (t) => {
  const svc = await startTestService(t);
  const rx = await startReceiver(t);
  const { got, endpointId } = await deliver(t, svc, rx, `${rx.url}/old`);
  const { secret } = await json(await svc.api(`/api/v1/endpoints/${endpointId}/secret`));

  // Correctly signed, ten minutes ago.
  const now = Math.floor(Date.now() / 1000);
  const old = signatureHeaders({ webhookId: 'msg_old', timestamp: now - 600, body: got.body, keys: [{ id: 'k', secret }] });
  const stale = await verify(svc, { body: got.body, headers: old, endpointId });
  t.is(stale.status, 200);
  t.is(stale.body.valid, false);
  t.is(stale.body.scheme, 'standard-webhooks');
  t.regex(stale.body.reason, /300 s tolerance/);
  const widened = await verify(svc, { body: got.body, headers: old, endpointId, toleranceSeconds: 3600 });
  t.is(widened.body.valid, true, widened.body.reason);
  const narrow = await verify(svc, { body: got.body, headers: old, secret, toleranceSeconds: 599 });
  t.is(narrow.body.valid, false);
  t.regex(narrow.body.reason, /599 s tolerance/);

  // From the future, too.
  const future = signatureHeaders({ webhookId: 'msg_future', timestamp: now + 600, body: got.body, keys: [{ id: 'k', secret }] });
  const ahead = await verify(svc, { body: got.body, headers: future, endpointId });
  t.is(ahead.body.valid, false);
  t.regex(ahead.body.reason, /future.*300 s tolerance/);

  // A real delivery, a little later, with a tolerance of one second.
  await new Promise((r) => setTimeout(r, 2_200));
  const real = await verify(svc, { body: got.body, headers: got.headers, endpointId, toleranceSeconds: 1 });
  t.is(real.body.valid, false);
  t.regex(real.body.reason, /1 s tolerance/);
  t.is((await verify(svc, { body: got.body, headers: got.headers, endpointId })).body.valid, true);
});

test.serial('X-Webhook-* headers alone are checked with scheme x-webhook (sha256 and sha512)', async (t) => {
  const svc = await startTestService(t);
  const rx = await startReceiver(t);
  const { got, endpointId } = await deliver(t, svc, rx, `${rx.url}/legacy`);
  const headers = only(got.headers, 'x-webhook-');
  t.deepEqual(Object.keys(headers).sort(), ['x-webhook-id', 'x-webhook-signature', 'x-webhook-timestamp']);
  const res = await verify(svc, { body: got.body, headers, endpointId });
  t.is(res.status, 200);
  t.deepEqual(res.body, { valid: true, scheme: 'x-webhook', reason: res.body.reason, keyId: await currentKeyId(svc, endpointId) });
  const { secret } = await json(await svc.api(`/api/v1/endpoints/${endpointId}/secret`));
  t.is((await verify(svc, { body: got.body, headers, secret })).body.scheme, 'x-webhook');
  const bad = await verify(svc, { body: got.body + 'x', headers, endpointId });
  t.deepEqual([bad.body.valid, bad.body.scheme], [false, 'x-webhook']);

  const ep = await json(await svc.api('/api/v1/endpoints', { method: 'POST', json: { url: `${rx.url}/legacy512`, signature: { algorithm: 'hmac-sha512' } } }));
  const got512 = (await deliver(t, svc, rx, `${rx.url}/legacy512`)).got;
  t.regex(got512.headers['x-webhook-signature']!, /^sha512=/);
  const res512 = await verify(svc, { body: got512.body, headers: only(got512.headers, 'x-webhook-'), endpointId: ep.id });
  t.is(res512.body.valid, true, res512.body.reason);
  t.is(res512.body.scheme, 'x-webhook');
});

test.serial('bad requests: both or neither of endpointId and secret, a short or malformed secret, an unknown endpoint', async (t) => {
  const svc = await startTestService(t);
  const rx = await startReceiver(t);
  const { got, endpointId } = await deliver(t, svc, rx, `${rx.url}/bad`);
  const { secret } = await json(await svc.api(`/api/v1/endpoints/${endpointId}/secret`));
  const base = { body: got.body, headers: got.headers };

  const both = await verify(svc, { ...base, endpointId, secret });
  t.is(both.status, 400);
  t.regex(both.type ?? '', /^application\/problem\+json/);
  t.is(both.body.code, 'validation_failed');
  t.true(both.body.errors.some((e: any) => e.field === 'endpointId' || e.field === 'secret'), JSON.stringify(both.body));

  const neither = await verify(svc, base);
  t.is(neither.status, 400);
  t.regex(neither.type ?? '', /^application\/problem\+json/);
  t.is(neither.body.code, 'validation_failed');
  t.true(neither.body.errors.length > 0);

  const cases: [string, string][] = [
    ['whsec_' + randomBytes(16).toString('base64'), 'invalid_secret'],
    ['whsec_' + randomBytes(23).toString('base64'), 'invalid_secret'],
    ['whsec_not*base64', 'invalid_secret'],
    ['whsec_', 'invalid_secret'],
    ['nope', 'invalid_secret'],
    ['whpk_' + randomBytes(16).toString('base64'), 'invalid_secret'],
    ['whsk_' + randomBytes(32).toString('base64'), 'invalid_secret'],
  ];
  for (const [bad, code] of cases) {
    const res = await verify(svc, { ...base, secret: bad });
    t.is(res.status, 400, bad);
    t.regex(res.type ?? '', /^application\/problem\+json/);
    t.is(res.body.code, code, bad);
    t.true(res.body.errors.some((e: any) => e.field === 'secret'), JSON.stringify(res.body));
    if (bad.length > 12) t.false(JSON.stringify(res.body).includes(bad.slice(6)), 'the secret is not echoed');
  }

  const unknown = await verify(svc, { ...base, endpointId: 'ep_01ARZ3NDEKTSV4RRFFQ69G5FAV' });
  t.is(unknown.status, 404);
  t.regex(unknown.type ?? '', /^application\/problem\+json/);
  t.is(unknown.body.code, 'endpoint_not_found');

  for (const toleranceSeconds of [-1, 604_801, 1.5, '300']) {
    const res = await verify(svc, { ...base, secret, toleranceSeconds });
    t.is(res.status, 400, String(toleranceSeconds));
    t.true(res.body.errors.some((e: any) => e.field === 'toleranceSeconds'), JSON.stringify(res.body));
  }
  const missingBody = await verify(svc, { headers: got.headers, secret });
  t.is(missingBody.status, 400);
  t.true(missingBody.body.errors.some((e: any) => e.field === 'body'), JSON.stringify(missingBody.body));
  // A valid request still works after all of that.
  t.is((await verify(svc, { ...base, secret })).body.valid, true);
});
