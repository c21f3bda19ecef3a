import { createHmac, createPublicKey, randomBytes, verify as edVerify, type KeyObject } from 'node:crypto';
import test, { type ExecutionContext } from 'ava';
import { Webhook } from 'standardwebhooks';
import { publicKeyOf } from '../../src/delivery/sign.ts';
import { query } from '../helpers/db.ts';
import { startReceiver, type Received, type Receiver } from '../helpers/receiver.ts';
import { eventually, startTestService } from '../helpers/service.ts';

/** Signature algorithms per endpoint, end to end: API → worker → a real receiver. */

type Svc = Awaited<ReturnType<typeof startTestService>>;

async function json(res: Response): Promise<any> {
  return res.json();
}

async function createEndpoint(t: ExecutionContext, svc: Svc, body: Record<string, unknown>): Promise<any> {
  const res = await svc.api('/api/v1/endpoints', { method: 'POST', json: body });
  const out = await json(res);
  t.is(res.status, 201, JSON.stringify(out));
  return out;
}

async function deliver(t: ExecutionContext, svc: Svc, rx: Receiver, url: string, payload: unknown = { n: Math.random(), text: 'ünïcødé ✓' }): Promise<Received> {
  const res = await svc.api('/api/v1/webhooks/deliver', { method: 'POST', json: { url, payload } });
  const body = await json(res);
  t.is(res.status, 202, JSON.stringify(body));
  return eventually(async () => rx.received.find((r) => r.headers['webhook-id'] === body.id));
}

function content(got: Received): Buffer {
  return Buffer.from(`${got.headers['webhook-id']}.${got.headers['webhook-timestamp']}.${got.body}`, 'utf8');
}

function secretBytes(secret: string): Buffer {
  return Buffer.from(secret.slice('whsec_'.length), 'base64');
}

/** A `whpk_` key as a node:crypto public key, through JWK (independent of the service's own SPKI wrapping). */
function publicKeyObject(whpk: string): KeyObject {
  const raw = Buffer.from(whpk.slice('whpk_'.length), 'base64');
  if (raw.length !== 32) throw new Error(`public key of ${raw.length} bytes`);
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: raw.toString('base64url') }, format: 'jwk' });
}

function edValid(whpk: string, got: Received, signature: Buffer): boolean {
  return signature.length === 64 && edVerify(null, content(got), publicKeyObject(whpk), signature);
}

function standardVerifies(secret: string, got: Received): boolean {
  try {
    new Webhook(secret).verify(got.body, got.headers);
    return true;
  } catch {
    return false;
  }
}

test.serial('hmac-sha512: X-Webhook-Signature is sha512=<hex> over {id}.{ts}.{body}; webhook-signature stays v1 (HMAC-SHA256)', async (t) => {
  const svc = await startTestService(t);
  const rx = await startReceiver(t);
  const url = `${rx.url}/sha512`;
  const endpoint = await createEndpoint(t, svc, { url, signature: { algorithm: 'hmac-sha512' } });
  t.deepEqual(endpoint.signature, { algorithm: 'hmac-sha512' });
  const { secret } = await json(await svc.api(`/api/v1/endpoints/${endpoint.id}/secret`));
  t.regex(secret, /^whsec_/);

  const got = await deliver(t, svc, rx, url);
  const legacy = got.headers['x-webhook-signature']!;
  t.regex(legacy, /^sha512=[0-9a-f]{128}$/);
  t.is(legacy, 'sha512=' + createHmac('sha512', secretBytes(secret)).update(content(got)).digest('hex'));
  t.is(got.headers['x-webhook-id'], got.headers['webhook-id']);
  t.is(got.headers['x-webhook-timestamp'], got.headers['webhook-timestamp']);

  const standard = got.headers['webhook-signature']!;
  t.regex(standard, /^v1,[A-Za-z0-9+/]{43}=$/);
  t.is(standard, 'v1,' + createHmac('sha256', secretBytes(secret)).update(content(got)).digest('base64'));
  t.true(standardVerifies(secret, got));

  // The public key of an HMAC endpoint does not exist.
  const pk = await svc.api(`/api/v1/endpoints/${endpoint.id}/public-key`);
  t.is(pk.status, 409);
  t.regex(pk.headers.get('content-type') ?? '', /^application\/problem\+json/);
  t.is((await json(pk)).code, 'endpoint_is_symmetric');
});

test.serial('ed25519: v1a entries verify with node:crypto and the whpk_ public key; no secret is handed out', async (t) => {
  const svc = await startTestService(t);
  const rx = await startReceiver(t);
  const url = `${rx.url}/ed`;
  const endpoint = await createEndpoint(t, svc, { url, signature: { algorithm: 'ed25519' } });
  t.deepEqual(endpoint.signature, { algorithm: 'ed25519' });

  const pkRes = await svc.api(`/api/v1/endpoints/${endpoint.id}/public-key`);
  t.is(pkRes.status, 200);
  const { publicKey, keyId } = await json(pkRes);
  t.regex(publicKey, /^whpk_[A-Za-z0-9+/]{43}=$/);
  const current = await query(svc.dbUrl, 'SELECT id FROM hookrelay.signing_keys WHERE endpoint_id = $1 AND expires_at IS NULL', [endpoint.id]);
  t.is(keyId, current[0]!.id);

  const secretRes = await svc.api(`/api/v1/endpoints/${endpoint.id}/secret`);
  t.is(secretRes.status, 409);
  t.regex(secretRes.headers.get('content-type') ?? '', /^application\/problem\+json/);
  const problem = await json(secretRes);
  t.is(problem.code, 'endpoint_is_asymmetric');
  t.false(JSON.stringify(problem).includes('whsk_'));

  const got = await deliver(t, svc, rx, url);
  const standard = got.headers['webhook-signature']!;
  t.regex(standard, /^v1a,[A-Za-z0-9+/]{86}==$/);
  const sig = Buffer.from(standard.slice(4), 'base64');
  t.true(edValid(publicKey, got, sig));
  t.regex(got.headers['x-webhook-signature']!, /^ed25519=[0-9a-f]{128}$/);
  t.deepEqual(Buffer.from(got.headers['x-webhook-signature']!.slice('ed25519='.length), 'hex'), sig);

  // Not valid for another body or another key.
  t.false(edVerify(null, Buffer.concat([content(got), Buffer.from(' ')]), publicKeyObject(publicKey), sig));
  const other = await createEndpoint(t, svc, { url: `${rx.url}/other-ed`, signature: { algorithm: 'ed25519' } });
  const otherKey = (await json(await svc.api(`/api/v1/endpoints/${other.id}/public-key`))).publicKey;
  t.not(otherKey, publicKey);
  t.false(edValid(otherKey, got, sig));
});

test.serial('ed25519 with a caller-provided whsk_ key signs with it; rotation makes a new pair and both sign in grace', async (t) => {
  const svc = await startTestService(t);
  const rx = await startReceiver(t);
  const url = `${rx.url}/ed-given`;
  const seed = 'whsk_' + randomBytes(32).toString('base64');
  const endpoint = await createEndpoint(t, svc, { url, signature: { algorithm: 'ed25519' }, secret: seed });
  const { publicKey } = await json(await svc.api(`/api/v1/endpoints/${endpoint.id}/public-key`));
  t.is(publicKey, publicKeyOf(seed));

  // An HMAC secret does not fit an ed25519 endpoint.
  const wrong = await svc.api('/api/v1/endpoints', { method: 'POST', json: { url: `${rx.url}/wrong`, signature: { algorithm: 'ed25519' }, secret: 'whsec_' + randomBytes(32).toString('base64') } });
  t.is(wrong.status, 400);
  t.is((await json(wrong)).code, 'invalid_secret');

  const rotation = await svc.api(`/api/v1/endpoints/${endpoint.id}/secret/rotate`, { method: 'POST', json: {} });
  t.is(rotation.status, 200);
  const rotated = await json(rotation);
  t.regex(rotated.publicKey, /^whpk_/);
  t.not(rotated.publicKey, publicKey);
  t.is((await json(await svc.api(`/api/v1/endpoints/${endpoint.id}/public-key`))).publicKey, rotated.publicKey);

  const got = await deliver(t, svc, rx, url);
  const entries = got.headers['webhook-signature']!.split(' ');
  t.is(entries.length, 2);
  t.true(entries.every((e) => e.startsWith('v1a,')));
  t.true(edValid(rotated.publicKey, got, Buffer.from(entries[0]!.slice(4), 'base64')), 'the new key signs first');
  t.true(edValid(publicKey, got, Buffer.from(entries[1]!.slice(4), 'base64')), 'the old key still signs');
  const legacy = got.headers['x-webhook-signature']!.split(',');
  t.is(legacy.length, 2);
  t.true(legacy.every((e) => /^ed25519=[0-9a-f]{128}$/.test(e)));
});

test.serial('PATCH hmac → ed25519: the new key pair signs at once and the old secret keeps signing in grace', async (t) => {
  const svc = await startTestService(t);
  const rx = await startReceiver(t);
  const url = `${rx.url}/switch`;
  const endpoint = await createEndpoint(t, svc, { url });
  const { secret } = await json(await svc.api(`/api/v1/endpoints/${endpoint.id}/secret`));

  const patch = await svc.api(`/api/v1/endpoints/${endpoint.id}`, { method: 'PATCH', json: { signature: { algorithm: 'ed25519' } } });
  t.is(patch.status, 200);
  t.deepEqual((await json(patch)).signature, { algorithm: 'ed25519' });
  const keys = await query(svc.dbUrl, 'SELECT id, kind, expires_at FROM hookrelay.signing_keys WHERE endpoint_id = $1 ORDER BY id', [endpoint.id]);
  t.deepEqual(keys.map((k) => k.kind), ['hmac', 'ed25519']);
  t.truthy(keys[0]!.expires_at, 'the HMAC key is now in grace');
  t.true(Math.abs(keys[0]!.expires_at.getTime() - (Date.now() + 86_400_000)) < 10_000);
  t.is(keys[1]!.expires_at, null);

  const pk = await svc.api(`/api/v1/endpoints/${endpoint.id}/public-key`);
  t.is(pk.status, 200);
  const { publicKey, keyId } = await json(pk);
  t.is(keyId, keys[1]!.id);
  t.is((await svc.api(`/api/v1/endpoints/${endpoint.id}/secret`)).status, 409);

  const got = await deliver(t, svc, rx, url);
  const entries = got.headers['webhook-signature']!.split(' ');
  t.is(entries.length, 2, got.headers['webhook-signature']);
  const v1a = entries.filter((e) => e.startsWith('v1a,'));
  const v1 = entries.filter((e) => e.startsWith('v1,'));
  t.is(v1a.length, 1);
  t.is(v1.length, 1);
  t.true(entries[0]!.startsWith('v1a,'), 'the current (ed25519) key first');
  t.true(edValid(publicKey, got, Buffer.from(v1a[0]!.slice(4), 'base64')));
  t.is(v1[0], 'v1,' + createHmac('sha256', secretBytes(secret)).update(content(got)).digest('base64'));
  t.true(standardVerifies(secret, got), 'a receiver still on the old secret keeps verifying');
  const legacy = got.headers['x-webhook-signature']!.split(',');
  t.is(legacy.length, 2);
  t.regex(legacy[0]!, /^ed25519=[0-9a-f]{128}$/);
  t.regex(legacy[1]!, /^sha256=[0-9a-f]{64}$/);
});

test.serial('PATCH hmac-sha256 → hmac-sha512 keeps the secret (no rotation); ed25519 → hmac brings a new secret', async (t) => {
  const svc = await startTestService(t);
  const rx = await startReceiver(t);
  const url = `${rx.url}/same-kind`;
  const endpoint = await createEndpoint(t, svc, { url });
  const { secret } = await json(await svc.api(`/api/v1/endpoints/${endpoint.id}/secret`));
  const patch = await svc.api(`/api/v1/endpoints/${endpoint.id}`, { method: 'PATCH', json: { signature: { algorithm: 'hmac-sha512' } } });
  t.is(patch.status, 200);
  t.is((await json(await svc.api(`/api/v1/endpoints/${endpoint.id}/secret`))).secret, secret);
  const keys = await query(svc.dbUrl, 'SELECT count(*)::int AS n FROM hookrelay.signing_keys WHERE endpoint_id = $1', [endpoint.id]);
  t.is(keys[0]!.n, 1);
  const got = await deliver(t, svc, rx, url);
  t.is(got.headers['x-webhook-signature'], 'sha512=' + createHmac('sha512', secretBytes(secret)).update(content(got)).digest('hex'));
  t.true(standardVerifies(secret, got));

  const edUrl = `${rx.url}/ed-to-hmac`;
  const ed = await createEndpoint(t, svc, { url: edUrl, signature: { algorithm: 'ed25519' } });
  const { publicKey } = await json(await svc.api(`/api/v1/endpoints/${ed.id}/public-key`));
  t.is((await svc.api(`/api/v1/endpoints/${ed.id}`, { method: 'PATCH', json: { signature: { algorithm: 'hmac-sha256' } } })).status, 200);
  const secretRes = await svc.api(`/api/v1/endpoints/${ed.id}/secret`);
  t.is(secretRes.status, 200);
  const newSecret = (await json(secretRes)).secret;
  t.is((await svc.api(`/api/v1/endpoints/${ed.id}/public-key`)).status, 409);
  const got2 = await deliver(t, svc, rx, edUrl);
  const entries = got2.headers['webhook-signature']!.split(' ');
  t.is(entries.length, 2);
  t.true(entries[0]!.startsWith('v1,'));
  t.true(standardVerifies(newSecret, got2));
  t.true(edValid(publicKey, got2, Buffer.from(entries[1]!.slice(4), 'base64')), 'the old ed25519 key keeps signing in grace');
});
