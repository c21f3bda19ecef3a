import { spawn } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import test, { type ExecutionContext } from 'ava';
import { Webhook } from 'standardwebhooks';
import { createToken } from '../../src/api/tokens.ts';
import { loadConfig, SETTINGS } from '../../src/config.ts';
import { fingerprintOf } from '../../src/endpoints/keyring.ts';
import { createLogger } from '../../src/log.ts';
import { startService } from '../../src/main.ts';
import { query } from '../helpers/db.ts';
import { startReceiver, type Received, type Receiver } from '../helpers/receiver.ts';
import { eventually, startTestService, TEST_ALLOW_NETWORKS } from '../helpers/service.ts';

/**
 * Signing keys against real PostgreSQL, through the API, the worker and SQL: secrets at rest,
 * rotation with a grace period, expiry, concurrency, bad input, and `hookrelay keys rewrap`.
 */

type Svc = Awaited<ReturnType<typeof startTestService>>;
type Api = (path: string, init?: RequestInit & { json?: unknown }) => Promise<Response>;

const CLI = fileURLToPath(new URL('../../src/cli.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

function hmacSecret(bytes = 32): string {
  return 'whsec_' + randomBytes(bytes).toString('base64');
}

async function json(res: Response): Promise<any> {
  return res.json();
}

async function createEndpoint(t: ExecutionContext, api: Api, body: Record<string, unknown>): Promise<any> {
  const res = await api('/api/v1/endpoints', { method: 'POST', json: body });
  const out = await json(res);
  t.is(res.status, 201, JSON.stringify(out));
  return out;
}

async function secretOf(api: Api, endpointId: string): Promise<string> {
  const res = await api(`/api/v1/endpoints/${endpointId}/secret`);
  if (res.status !== 200) throw new Error(`GET secret: ${res.status} ${await res.text()}`);
  return (await json(res)).secret;
}

async function rotate(api: Api, endpointId: string, body?: unknown): Promise<{ status: number; body: any; type: string | null }> {
  const res = await api(`/api/v1/endpoints/${endpointId}/secret/rotate`, body === undefined ? { method: 'POST' } : { method: 'POST', json: body });
  return { status: res.status, body: await json(res), type: res.headers.get('content-type') };
}

/** Submits a webhook to `url` and resolves with the request the receiver got for it. */
async function deliver(t: ExecutionContext, api: Api, rx: Receiver, url: string, payload: unknown = { n: Math.random() }): Promise<{ got: Received; id: string; endpointId: string }> {
  const res = await api('/api/v1/webhooks/deliver', { method: 'POST', json: { url, payload } });
  const body = await json(res);
  t.is(res.status, 202, JSON.stringify(body));
  const got = await eventually(async () => rx.received.find((r) => r.headers['webhook-id'] === body.id));
  return { got, id: body.id, endpointId: body.endpointId };
}

function standardEntries(got: Received): string[] {
  return got.headers['webhook-signature']!.split(' ');
}

function legacyEntries(got: Received): string[] {
  return got.headers['x-webhook-signature']!.split(',');
}

function verifies(secret: string, got: Received): boolean {
  try {
    new Webhook(secret).verify(got.body, got.headers);
    return true;
  } catch {
    return false;
  }
}

function v1(secret: string, got: Received): string {
  const key = Buffer.from(secret.slice('whsec_'.length), 'base64');
  const content = `${got.headers['webhook-id']}.${got.headers['webhook-timestamp']}.${got.body}`;
  return 'v1,' + createHmac('sha256', key).update(content).digest('base64');
}

async function keyRows(dbUrl: string, endpointId: string) {
  return query(dbUrl, `SELECT id, kind, encode(sealed_secret, 'hex') AS sealed, public_key, created_at, expires_at
    FROM hookrelay.signing_keys WHERE endpoint_id = $1 ORDER BY id`, [endpointId]);
}

/** The parent's environment without any hookrelay setting, so only `env` configures the child. */
function childEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  const base: NodeJS.ProcessEnv = { ...process.env };
  for (const s of SETTINGS) delete base[s.env];
  return { ...base, HOOKRELAY_ALLOW_NETWORKS: TEST_ALLOW_NETWORKS, ...env };
}

function runCli(t: ExecutionContext, args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
  t.teardown(async () => {
    clearTimeout(timer);
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await done.catch(() => undefined);
    }
  });
  return done;
}

test.serial('sealed_secret never holds the secret, its base64 text or its bytes', async (t) => {
  const svc = await startTestService(t);
  const given = hmacSecret();
  const a = await createEndpoint(t, svc.api, { url: 'https://example.com/given', secret: given });
  const b = await createEndpoint(t, svc.api, { url: 'https://example.com/generated' });
  const seed = 'whsk_' + randomBytes(32).toString('base64');
  const c = await createEndpoint(t, svc.api, { url: 'https://example.com/ed', signature: { algorithm: 'ed25519' }, secret: seed });
  const rotatedTo = hmacSecret(64);
  t.is((await rotate(svc.api, a.id, { secret: rotatedTo })).status, 200);

  t.is(await secretOf(svc.api, a.id), rotatedTo);
  const secrets = [given, rotatedTo, await secretOf(svc.api, b.id), seed];
  const keys = await query(svc.dbUrl, 'SELECT count(*)::int AS n FROM hookrelay.signing_keys');
  t.is(keys[0]!.n, 4);
  for (const secret of secrets) {
    const text = secret.slice(secret.indexOf('_') + 1);
    const bytes = Buffer.from(text, 'base64');
    const hits = await query(svc.dbUrl, `SELECT
        count(*) FILTER (WHERE position(convert_to($1, 'UTF8') IN sealed_secret) > 0)::int AS full_text,
        count(*) FILTER (WHERE position(convert_to($2, 'UTF8') IN sealed_secret) > 0)::int AS base64_text,
        count(*) FILTER (WHERE position($3::bytea IN sealed_secret) > 0)::int AS raw_bytes,
        count(*) FILTER (WHERE strpos(encode(sealed_secret, 'escape'), $1) > 0 OR strpos(encode(sealed_secret, 'escape'), $2) > 0)::int AS escaped,
        count(*) FILTER (WHERE strpos(encode(sealed_secret, 'hex'), $4) > 0)::int AS hex,
        count(*) FILTER (WHERE strpos(k::text, $1) > 0 OR strpos(k::text, $2) > 0)::int AS whole_row
      FROM hookrelay.signing_keys k`, [secret, text, bytes, bytes.toString('hex')]);
    t.deepEqual(hits[0], { full_text: 0, base64_text: 0, raw_bytes: 0, escaped: 0, hex: 0, whole_row: 0 }, secret.slice(0, 5));
    const elsewhere = await query(svc.dbUrl, `SELECT
        (SELECT count(*) FROM hookrelay.endpoints e WHERE strpos(e::text, $1) > 0 OR strpos(e::text, $2) > 0)::int AS endpoints`, [secret, text]);
    t.is(elsewhere[0]!.endpoints, 0);
    // What a dump would show: the escaped text of every row, read back in JS.
    const escaped = await query(svc.dbUrl, `SELECT encode(sealed_secret, 'escape') AS e FROM hookrelay.signing_keys`);
    for (const row of escaped) {
      t.false(row.e.includes(secret));
      t.false(row.e.includes(text));
    }
  }
  // Every row is sealed under the test master key, version 1.
  const prints = await query(svc.dbUrl, `SELECT DISTINCT encode(substring(sealed_secret FROM 1 FOR 9), 'hex') AS head FROM hookrelay.signing_keys`);
  t.deepEqual(prints.map((r) => r.head), ['01' + fingerprintOf(Buffer.from(svc.config.masterKey!, 'base64')).toString('hex')]);
  t.truthy(c.id);
});

test.serial('after a rotation with grace, deliveries carry one signature per key; either secret verifies', async (t) => {
  const svc = await startTestService(t);
  const rx = await startReceiver(t);
  const url = `${rx.url}/grace`;
  const endpoint = await createEndpoint(t, svc.api, { url });
  const oldSecret = await secretOf(svc.api, endpoint.id);
  const [oldKey] = await keyRows(svc.dbUrl, endpoint.id);

  const before = await deliver(t, svc.api, rx, url);
  t.is(before.endpointId, endpoint.id);
  t.deepEqual(standardEntries(before.got), [v1(oldSecret, before.got)]);
  t.is(legacyEntries(before.got).length, 1);

  const started = Date.now();
  const rotation = await rotate(svc.api, endpoint.id, {});
  t.is(rotation.status, 200, JSON.stringify(rotation.body));
  t.regex(rotation.body.keyId, /^key_/);
  t.is(rotation.body.previousKeyId, oldKey!.id);
  t.is(rotation.body.publicKey, null);
  const expires = Date.parse(rotation.body.previousKeyExpiresAt);
  t.true(Math.abs(expires - (started + 86_400_000)) < 10_000, rotation.body.previousKeyExpiresAt);

  const newSecret = await secretOf(svc.api, endpoint.id);
  t.not(newSecret, oldSecret);
  t.regex(newSecret, /^whsec_[A-Za-z0-9+/]{43}=$/);

  const { got } = await deliver(t, svc.api, rx, url, { after: 'rotation' });
  const standard = standardEntries(got);
  t.is(standard.length, 2, got.headers['webhook-signature']);
  t.true(standard.every((e) => e.startsWith('v1,')));
  t.deepEqual(standard, [v1(newSecret, got), v1(oldSecret, got)], 'current key first, then the key in grace');
  const legacy = legacyEntries(got);
  t.is(legacy.length, 2, got.headers['x-webhook-signature']);
  t.true(legacy.every((e) => /^sha256=[0-9a-f]{64}$/.test(e)));
  t.deepEqual(legacy.map((e) => Buffer.from(e.slice(7), 'hex').toString('base64')), standard.map((e) => e.slice(3)));

  t.true(verifies(oldSecret, got), 'the old secret still verifies');
  t.true(verifies(newSecret, got), 'the new secret verifies');
  t.false(verifies(hmacSecret(), got), 'an unrelated secret does not');

  const rows = await keyRows(svc.dbUrl, endpoint.id);
  t.is(rows.length, 2);
  t.is(rows.filter((r) => r.expires_at === null).length, 1);
  t.is(rows.find((r) => r.expires_at === null)!.id, rotation.body.keyId);
  t.is(rows.find((r) => r.id === oldKey!.id)!.expires_at.getTime(), expires);
});

test.serial('rotation with graceSeconds 0 retires the old key at once', async (t) => {
  const svc = await startTestService(t);
  const rx = await startReceiver(t);
  const url = `${rx.url}/zero`;
  const endpoint = await createEndpoint(t, svc.api, { url });
  const oldSecret = await secretOf(svc.api, endpoint.id);
  const started = Date.now();
  const rotation = await rotate(svc.api, endpoint.id, { graceSeconds: 0 });
  t.is(rotation.status, 200);
  t.true(Math.abs(Date.parse(rotation.body.previousKeyExpiresAt) - started) < 5_000);
  const newSecret = await secretOf(svc.api, endpoint.id);

  const { got } = await deliver(t, svc.api, rx, url);
  t.deepEqual(standardEntries(got), [v1(newSecret, got)]);
  t.is(legacyEntries(got).length, 1);
  t.true(verifies(newSecret, got));
  t.false(verifies(oldSecret, got));
});

test.serial('a key past its grace period stops signing', async (t) => {
  const svc = await startTestService(t);
  const rx = await startReceiver(t);
  const url = `${rx.url}/expiry`;
  const endpoint = await createEndpoint(t, svc.api, { url });
  const oldSecret = await secretOf(svc.api, endpoint.id);
  const rotation = await rotate(svc.api, endpoint.id, { graceSeconds: 1 });
  t.is(rotation.status, 200);
  const rows = await keyRows(svc.dbUrl, endpoint.id);
  const old = rows.find((r) => r.id === rotation.body.previousKeyId)!;
  t.truthy(old.expires_at, 'the old key has an expiry');
  t.true(old.expires_at.getTime() > Date.now() - 1_000, 'not already expired when the rotation answered');
  await new Promise((r) => setTimeout(r, 1_500));
  t.true(old.expires_at.getTime() < Date.now());

  const newSecret = await secretOf(svc.api, endpoint.id);
  const { got } = await deliver(t, svc.api, rx, url);
  t.deepEqual(standardEntries(got), [v1(newSecret, got)], 'only the current key signs');
  t.is(legacyEntries(got).length, 1);
  t.false(verifies(oldSecret, got));
  // The expired key is kept (history), just no longer active.
  t.is((await keyRows(svc.dbUrl, endpoint.id)).length, 2);
});

test.serial('concurrent rotations leave exactly one current key and a chain of replaced ones', async (t) => {
  const svc = await startTestService(t);
  const endpoint = await createEndpoint(t, svc.api, { url: 'https://example.com/concurrent' });
  const [first] = await keyRows(svc.dbUrl, endpoint.id);
  const n = 8;
  const results = await Promise.all(Array.from({ length: n }, () => rotate(svc.api, endpoint.id, { graceSeconds: 3600 })));
  t.deepEqual(results.map((r) => r.status), Array(n).fill(200), JSON.stringify(results.filter((r) => r.status !== 200).map((r) => r.body)));

  const current = await query(svc.dbUrl, 'SELECT count(*)::int AS n FROM hookrelay.signing_keys WHERE endpoint_id = $1 AND expires_at IS NULL', [endpoint.id]);
  t.is(current[0]!.n, 1);
  const all = await keyRows(svc.dbUrl, endpoint.id);
  t.is(all.length, n + 1);
  // Serialized: each rotation replaced a different key, so the replaced keys form one chain
  // from the first key to the one before the current key.
  const previous = results.map((r) => r.body.previousKeyId as string);
  t.is(new Set(previous).size, n, 'no two rotations replaced the same key');
  const made = new Set(results.map((r) => r.body.keyId as string));
  const currentId = all.find((r) => r.expires_at === null)!.id;
  t.true(made.has(currentId));
  t.deepEqual([...previous].sort(), [first!.id, ...[...made].filter((id) => id !== currentId)].sort());
});

test.serial('a rotation racing an algorithm change leaves a current key of the kind the endpoint signs with', async (t) => {
  const svc = await startTestService(t);
  const rounds = 10;
  const broken: string[] = [];
  for (let i = 0; i < rounds; i++) {
    const endpoint = await createEndpoint(t, svc.api, { url: `https://example.com/race-${i}` });
    const [patch, rotation] = await Promise.all([
      svc.api(`/api/v1/endpoints/${endpoint.id}`, { method: 'PATCH', json: { signature: { algorithm: 'ed25519' } } }),
      rotate(svc.api, endpoint.id, { graceSeconds: 60 }),
    ]);
    t.is(patch.status, 200);
    t.is(rotation.status, 200);
    const rows = await query(svc.dbUrl, `SELECT e.signature_algorithm, k.kind FROM hookrelay.endpoints e
      JOIN hookrelay.signing_keys k ON k.endpoint_id = e.id AND k.expires_at IS NULL WHERE e.id = $1`, [endpoint.id]);
    t.is(rows.length, 1);
    const { signature_algorithm: algorithm, kind } = rows[0]!;
    if (kind !== (algorithm === 'ed25519' ? 'ed25519' : 'hmac')) {
      const pk = await svc.api(`/api/v1/endpoints/${endpoint.id}/public-key`);
      const secret = await svc.api(`/api/v1/endpoints/${endpoint.id}/secret`);
      broken.push(`round ${i}: endpoint ${algorithm}, current key ${kind} (GET public-key ${pk.status}, GET secret ${secret.status}); rotation returned publicKey ${JSON.stringify(rotation.body.publicKey)}`);
    }
  }
  t.deepEqual(broken, [], `${broken.length} of ${rounds} endpoints were left with a current key of the wrong kind`);
});

test.serial('bad rotation input is refused with problem+json naming the field, and changes nothing', async (t) => {
  const svc = await startTestService(t);
  const endpoint = await createEndpoint(t, svc.api, { url: 'https://example.com/bad' });
  const before = await keyRows(svc.dbUrl, endpoint.id);
  const secretBefore = await secretOf(svc.api, endpoint.id);

  const cases: [unknown, string, string][] = [
    [{ graceSeconds: -1 }, 'graceSeconds', 'validation_failed'],
    [{ graceSeconds: 604_801 }, 'graceSeconds', 'validation_failed'],
    [{ graceSeconds: 'x' }, 'graceSeconds', 'validation_failed'],
    [{ graceSeconds: 1.5 }, 'graceSeconds', 'validation_failed'],
    [{ graceSeconds: null }, 'graceSeconds', 'validation_failed'],
    [{ secret: 'not-a-secret' }, 'secret', 'invalid_secret'],
    [{ secret: 'whsec_!!!!' }, 'secret', 'invalid_secret'],
    [{ secret: 'whsec_' }, 'secret', 'invalid_secret'],
    [{ secret: hmacSecret(16) }, 'secret', 'invalid_secret'],
    [{ secret: hmacSecret(23) }, 'secret', 'invalid_secret'],
    [{ secret: hmacSecret(65) }, 'secret', 'invalid_secret'],
    [{ secret: 'whsk_' + randomBytes(32).toString('base64') }, 'secret', 'invalid_secret'],
    [{ secret: 12 }, 'secret', 'validation_failed'],
    [{ unknown: 1 }, 'unknown', 'validation_failed'],
  ];
  for (const [body, field, code] of cases) {
    const res = await rotate(svc.api, endpoint.id, body);
    const label = JSON.stringify(body);
    t.is(res.status, 400, label);
    t.regex(res.type ?? '', /^application\/problem\+json/, label);
    t.is(res.body.code, code, label);
    t.is(res.body.status, 400, label);
    t.true(Array.isArray(res.body.errors) && res.body.errors.some((e: any) => e.field === field), `${label}: ${JSON.stringify(res.body.errors)}`);
    t.true(res.body.detail.includes(field), `${label}: ${res.body.detail}`);
  }
  t.deepEqual(await keyRows(svc.dbUrl, endpoint.id), before);
  t.is(await secretOf(svc.api, endpoint.id), secretBefore);

  // Unknown endpoint: 404, nothing created anywhere.
  const allBefore = await query(svc.dbUrl, 'SELECT count(*)::int AS n FROM hookrelay.signing_keys');
  const missing = await rotate(svc.api, 'ep_01ARZ3NDEKTSV4RRFFQ69G5FAV', {});
  t.is(missing.status, 404);
  t.regex(missing.type ?? '', /^application\/problem\+json/);
  t.is(missing.body.code, 'endpoint_not_found');
  t.true(missing.body.detail.includes('ep_01ARZ3NDEKTSV4RRFFQ69G5FAV'));
  t.is((await query(svc.dbUrl, 'SELECT count(*)::int AS n FROM hookrelay.signing_keys'))[0]!.n, allBefore[0]!.n);

  // A deleted endpoint: 409, its keys untouched.
  const del = await svc.api(`/api/v1/endpoints/${endpoint.id}`, { method: 'DELETE' });
  t.is(del.status, 200);
  for (const body of [{}, { graceSeconds: 0 }, { secret: hmacSecret() }]) {
    const res = await rotate(svc.api, endpoint.id, body);
    t.is(res.status, 409, JSON.stringify(body));
    t.regex(res.type ?? '', /^application\/problem\+json/);
    t.is(res.body.code, 'endpoint_deleted');
  }
  t.deepEqual(await keyRows(svc.dbUrl, endpoint.id), before);
});

test.serial('a rotation without a body uses the default grace; a caller-provided secret is used', async (t) => {
  const svc = await startTestService(t);
  const rx = await startReceiver(t);
  const url = `${rx.url}/given`;
  const endpoint = await createEndpoint(t, svc.api, { url });
  const first = await secretOf(svc.api, endpoint.id);

  const bare = await rotate(svc.api, endpoint.id);
  t.is(bare.status, 200, JSON.stringify(bare.body));
  t.true(Math.abs(Date.parse(bare.body.previousKeyExpiresAt) - (Date.now() + 86_400_000)) < 10_000);
  const second = await secretOf(svc.api, endpoint.id);

  const given = hmacSecret(48);
  const rotation = await rotate(svc.api, endpoint.id, { secret: given, graceSeconds: 0 });
  t.is(rotation.status, 200, JSON.stringify(rotation.body));
  t.is(rotation.body.previousKeyId, bare.body.keyId);
  t.is(await secretOf(svc.api, endpoint.id), given);
  const { got } = await deliver(t, svc.api, rx, url);
  const entries = standardEntries(got);
  t.is(entries[0], v1(given, got), 'the given secret is the current key and signs first');
  t.false(entries.includes(v1(second, got)), 'the key it replaced with grace 0 no longer signs');
  t.false(entries.includes(v1(first, got)), 'nor does an older key still in grace: a grace of 0 retires every old key at once');
  t.is(entries.length, 1);
  t.true(verifies(given, got));
});

test.serial('keys rewrap re-seals every key under the new master key; the secrets stay the same', async (t) => {
  const A = Buffer.alloc(32, 0xa1).toString('base64');
  const B = Buffer.alloc(32, 0xb2).toString('base64');
  const rx = await startReceiver(t);

  // 1. A service with master key A: endpoints of every kind, one of them rotated (two keys).
  const first = await startTestService(t, { HOOKRELAY_MASTER_KEY: A });
  const dbUrl = first.dbUrl;
  const hmac = await createEndpoint(t, first.api, { url: `${rx.url}/hmac` });
  const sha512 = await createEndpoint(t, first.api, { url: `${rx.url}/sha512`, signature: { algorithm: 'hmac-sha512' } });
  const ed = await createEndpoint(t, first.api, { url: `${rx.url}/ed`, signature: { algorithm: 'ed25519' } });
  const rotated = await createEndpoint(t, first.api, { url: `${rx.url}/rotated` });
  const rotatedOld = await secretOf(first.api, rotated.id);
  t.is((await rotate(first.api, rotated.id, { graceSeconds: 3600 })).status, 200);
  const secrets = {
    hmac: await secretOf(first.api, hmac.id),
    sha512: await secretOf(first.api, sha512.id),
    rotated: await secretOf(first.api, rotated.id),
  };
  const publicKey = (await json(await first.api(`/api/v1/endpoints/${ed.id}/public-key`))).publicKey as string;
  await first.service.stop();

  const total = (await query(dbUrl, 'SELECT count(*)::int AS n FROM hookrelay.signing_keys'))[0]!.n as number;
  t.is(total, 5);
  const sealedBefore = await query(dbUrl, `SELECT id, sealed_secret FROM hookrelay.signing_keys ORDER BY id`);
  const printA = fingerprintOf(Buffer.from(A, 'base64')).toString('hex');
  const printB = fingerprintOf(Buffer.from(B, 'base64')).toString('hex');

  // 2. Rewrap with B but without A: refused, clearly, and nothing changes.
  const withoutA = await runCli(t, ['keys', 'rewrap'], { DATABASE_URL: dbUrl, HOOKRELAY_MASTER_KEY: B });
  t.not(withoutA.code, 0, withoutA.stdout);
  t.regex(withoutA.stderr, /^hookrelay: .*master key/m, withoutA.stderr);
  t.true(withoutA.stderr.includes(printA), `names the fingerprint of the missing key: ${withoutA.stderr}`);
  t.false(withoutA.stderr.includes(A), 'the key itself is not printed');
  t.deepEqual(await query(dbUrl, `SELECT id, sealed_secret FROM hookrelay.signing_keys ORDER BY id`), sealedBefore);

  // Without any master key (and a DATABASE_URL): a configuration error.
  const noKey = await runCli(t, ['keys', 'rewrap'], { DATABASE_URL: dbUrl });
  t.is(noKey.code, 2);
  t.regex(noKey.stderr, /HOOKRELAY_MASTER_KEY/);

  // 3. Rewrap with B, A as a previous key.
  const run = await runCli(t, ['keys', 'rewrap'], { DATABASE_URL: dbUrl, HOOKRELAY_MASTER_KEY: B, HOOKRELAY_PREVIOUS_MASTER_KEYS: A });
  t.is(run.code, 0, run.stderr);
  t.regex(run.stdout, new RegExp(`rewrapped ${total} of ${total} signing keys`));
  const heads = await query(dbUrl, `SELECT DISTINCT encode(substring(sealed_secret FROM 2 FOR 8), 'hex') AS print FROM hookrelay.signing_keys`);
  t.deepEqual(heads.map((r) => r.print), [printB]);
  const expiries = await query(dbUrl, `SELECT id, expires_at, public_key FROM hookrelay.signing_keys ORDER BY id`);

  // 4. Again: nothing left to do.
  const again = await runCli(t, ['keys', 'rewrap'], { DATABASE_URL: dbUrl, HOOKRELAY_MASTER_KEY: B, HOOKRELAY_PREVIOUS_MASTER_KEYS: A });
  t.is(again.code, 0, again.stderr);
  t.regex(again.stdout, new RegExp(`rewrapped 0 of ${total} signing keys`));
  t.deepEqual(await query(dbUrl, `SELECT id, expires_at, public_key FROM hookrelay.signing_keys ORDER BY id`), expiries, 'rewrap changes no expiry or public key');

  // 5. A service with only B signs with the unchanged secrets.
  const config = loadConfig({
    DATABASE_URL: dbUrl,
    PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'error',
    HOOKRELAY_DB_POOL_MAX: '4',
    HOOKRELAY_SHUTDOWN_TIMEOUT_MS: '5000',
    HOOKRELAY_MASTER_KEY: B,
    HOOKRELAY_ALLOW_NETWORKS: TEST_ALLOW_NETWORKS,
  });
  const service = await startService(config, createLogger({ level: 'error', silent: true }));
  t.teardown(() => service.stop());
  const { token } = await createToken(service.db.db, 'after-rewrap');
  const api: Api = (path, init = {}) => {
    const headers = new Headers(init.headers);
    headers.set('authorization', `Bearer ${token}`);
    let body = init.body;
    if (init.json !== undefined) {
      body = JSON.stringify(init.json);
      headers.set('content-type', 'application/json');
    }
    return fetch(`http://127.0.0.1:${service.port}${path}`, { ...init, headers, body });
  };
  t.is(await secretOf(api, hmac.id), secrets.hmac);
  t.is(await secretOf(api, sha512.id), secrets.sha512);
  t.is(await secretOf(api, rotated.id), secrets.rotated);
  t.is((await json(await api(`/api/v1/endpoints/${ed.id}/public-key`))).publicKey, publicKey);

  const a = await deliver(t, api, rx, `${rx.url}/hmac`);
  t.is(a.endpointId, hmac.id);
  t.true(verifies(secrets.hmac, a.got));
  const b = await deliver(t, api, rx, `${rx.url}/sha512`);
  t.true(verifies(secrets.sha512, b.got));
  t.regex(b.got.headers['x-webhook-signature']!, /^sha512=[0-9a-f]{128}$/);
  const c = await deliver(t, api, rx, `${rx.url}/rotated`);
  t.deepEqual(standardEntries(c.got), [v1(secrets.rotated, c.got), v1(rotatedOld, c.got)], 'the key in grace was rewrapped too');
  const d = await deliver(t, api, rx, `${rx.url}/ed`);
  t.regex(d.got.headers['webhook-signature']!, /^v1a,/);
  const verdict = await json(await api('/api/v1/signatures/verify', { method: 'POST', json: { body: d.got.body, headers: d.got.headers, secret: publicKey } }));
  t.true(verdict.valid, JSON.stringify(verdict));
});
