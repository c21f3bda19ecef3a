import test from 'ava';
import { Webhook } from 'standardwebhooks';
import { newKeyPair, newSecret, signatureHeaders, type SignatureAlgorithm, type SigningKey } from '../../src/delivery/sign.ts';
import { parseSignatureHeader, verifySignature, type VerifyInput, type VerifyKey } from '../../src/delivery/verify.ts';

/**
 * verifySignature against what sign.ts produces. Signing and verifying are both pure, so every
 * case fixes its own clock: `NOW` is the receiver's time and `TS` the signer's.
 */

const TS = 1_700_000_000;
const NOW = TS * 1000;
const ID = 'msg_2ZC6J7S7QF2WY7Z5T1G3J0N4PB';
const BODY = '{"type":"invoice.paid","data":{"id":"in_1","note":"ünïcødé ✓"}}';

// Fixed keys, so a failing case can be reproduced; A and B are a rotation pair.
const SECRET_A = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'; // 24 bytes: the shortest accepted
const SECRET_B = newSecret();
const PAIR = newKeyPair();
const PAIR_2 = newKeyPair();

type Headers = Record<string, string>;

function sign(keys: SigningKey[], algorithm: SignatureAlgorithm = 'hmac-sha256', over: { id?: string; timestamp?: number; body?: string } = {}): Headers {
  return signatureHeaders({ webhookId: over.id ?? ID, timestamp: over.timestamp ?? TS, body: over.body ?? BODY, keys, algorithm });
}

/** Only one header family, as a receiver behind a proxy that keeps just those might see. */
function only(headers: Headers, family: 'webhook-' | 'x-webhook-'): Headers {
  return Object.fromEntries(Object.entries(headers).filter(([k]) => k.startsWith(family)));
}

function verify(headers: VerifyInput['headers'], keys: VerifyKey[], over: Partial<VerifyInput> = {}) {
  return verifySignature({ body: BODY, headers, keys, now: NOW, ...over });
}

// --- valid signatures, per algorithm and header family ------------------------------------

const hmacA = [{ id: 'key_a', secret: SECRET_A }];
const edKeys = [{ id: 'key_ed', publicKey: PAIR.publicKey }];

const validCases: { title: string; headers: Headers; keys: VerifyKey[]; scheme: string; algorithm: SignatureAlgorithm; keyId?: string }[] = [
  { title: 'hmac-sha256, both families (webhook-* wins)', headers: sign([{ id: 'a', secret: SECRET_A }]), keys: hmacA, scheme: 'standard-webhooks', algorithm: 'hmac-sha256', keyId: 'key_a' },
  { title: 'hmac-sha256, X-Webhook only', headers: only(sign([{ id: 'a', secret: SECRET_A }]), 'x-webhook-'), keys: hmacA, scheme: 'x-webhook', algorithm: 'hmac-sha256', keyId: 'key_a' },
  // Standard Webhooks v1 is HMAC-SHA256 whatever the endpoint's algorithm; only X-Webhook carries sha512.
  { title: 'hmac-sha512 endpoint, webhook-* still v1 (sha256)', headers: sign([{ id: 'a', secret: SECRET_A }], 'hmac-sha512'), keys: hmacA, scheme: 'standard-webhooks', algorithm: 'hmac-sha256', keyId: 'key_a' },
  { title: 'hmac-sha512, X-Webhook only', headers: only(sign([{ id: 'a', secret: SECRET_A }], 'hmac-sha512'), 'x-webhook-'), keys: hmacA, scheme: 'x-webhook', algorithm: 'hmac-sha512', keyId: 'key_a' },
  { title: 'ed25519 v1a with the public key', headers: sign([{ id: 'e', secret: PAIR.secret }], 'ed25519'), keys: edKeys, scheme: 'standard-webhooks', algorithm: 'ed25519', keyId: 'key_ed' },
  { title: 'ed25519= X-Webhook only', headers: only(sign([{ id: 'e', secret: PAIR.secret }], 'ed25519'), 'x-webhook-'), keys: edKeys, scheme: 'x-webhook', algorithm: 'ed25519', keyId: 'key_ed' },
  { title: 'ed25519 with the whsk_ signing key standing for its public key', headers: sign([{ id: 'e', secret: PAIR.secret }], 'ed25519'), keys: [{ id: 'key_sk', secret: PAIR.secret }], scheme: 'standard-webhooks', algorithm: 'ed25519', keyId: 'key_sk' },
  { title: 'ed25519 with the whpk_ public key given as `secret`', headers: sign([{ id: 'e', secret: PAIR.secret }], 'ed25519'), keys: [{ id: 'key_pk', secret: PAIR.publicKey }], scheme: 'standard-webhooks', algorithm: 'ed25519', keyId: 'key_pk' },
  { title: 'a key without an id', headers: sign([{ id: 'a', secret: SECRET_A }]), keys: [{ secret: SECRET_A }], scheme: 'standard-webhooks', algorithm: 'hmac-sha256' },
];

for (const c of validCases) {
  test(`valid: ${c.title}`, (t) => {
    const r = verify(c.headers, c.keys);
    t.true(r.valid, r.reason);
    t.is(r.scheme, c.scheme as any);
    t.is(r.algorithm, c.algorithm);
    t.is(r.keyId, c.keyId);
    t.is(r.reason, c.keyId ? `signature matches key ${c.keyId}` : 'signature matches an active key');
  });
}

// --- rotation -----------------------------------------------------------------------------

const rotationCases: { title: string; algorithm: SignatureAlgorithm; signing: SigningKey[]; family?: 'webhook-' | 'x-webhook-'; keys: VerifyKey[]; keyId: string | null }[] = [];
for (const family of ['webhook-', 'x-webhook-'] as const) {
  for (const algorithm of ['hmac-sha256', 'hmac-sha512'] as const) {
    const signing = [{ id: 'new', secret: SECRET_B }, { id: 'old', secret: SECRET_A }];
    rotationCases.push(
      { title: `${family} ${algorithm}: the new key alone`, algorithm, signing, family, keys: [{ id: 'key_b', secret: SECRET_B }], keyId: 'key_b' },
      { title: `${family} ${algorithm}: the old key alone`, algorithm, signing, family, keys: [{ id: 'key_a', secret: SECRET_A }], keyId: 'key_a' },
      { title: `${family} ${algorithm}: both keys, the first listed is reported`, algorithm, signing, family, keys: [{ id: 'key_a', secret: SECRET_A }, { id: 'key_b', secret: SECRET_B }], keyId: 'key_a' },
      { title: `${family} ${algorithm}: receiver knows only an unrelated key`, algorithm, signing, family, keys: [{ id: 'key_x', secret: newSecret() }], keyId: null },
      { title: `${family} ${algorithm}: signed with the old key only, receiver has the new one first`, algorithm, signing: [{ id: 'old', secret: SECRET_A }], family, keys: [{ id: 'key_b', secret: SECRET_B }, { id: 'key_a', secret: SECRET_A }], keyId: 'key_a' },
    );
  }
  rotationCases.push(
    { title: `${family} ed25519: the old key alone`, algorithm: 'ed25519', signing: [{ id: 'n', secret: PAIR_2.secret }, { id: 'o', secret: PAIR.secret }], family, keys: [{ id: 'pk_old', publicKey: PAIR.publicKey }], keyId: 'pk_old' },
    { title: `${family} ed25519: the new key alone`, algorithm: 'ed25519', signing: [{ id: 'n', secret: PAIR_2.secret }, { id: 'o', secret: PAIR.secret }], family, keys: [{ id: 'pk_new', publicKey: PAIR_2.publicKey }], keyId: 'pk_new' },
    { title: `${family} ed25519: an HMAC secret does not verify v1a/ed25519 entries`, algorithm: 'ed25519', signing: [{ id: 'o', secret: PAIR.secret }], family, keys: [{ id: 'k', secret: SECRET_A }], keyId: null },
  );
}

for (const c of rotationCases) {
  test(`rotation: ${c.title}`, (t) => {
    const headers = only(sign(c.signing, c.algorithm), c.family ?? 'webhook-');
    const r = verify(headers, c.keys);
    t.is(r.valid, c.keyId !== null, r.reason);
    if (c.keyId !== null) t.is(r.keyId, c.keyId);
    else t.is(r.reason, 'no signature matches any active key');
  });
}

test('rotation: a mixed header with an HMAC and an ed25519 entry verifies with either kind of key', (t) => {
  const headers = sign([{ id: 'h', secret: SECRET_A }, { id: 'e', secret: PAIR.secret }]);
  t.regex(headers['webhook-signature']!, /^v1,\S+ v1a,\S+$/);
  t.like(verify(headers, [{ id: 'pk', publicKey: PAIR.publicKey }]), { valid: true, keyId: 'pk', algorithm: 'ed25519' });
  t.like(verify(headers, [{ id: 'sec', secret: SECRET_A }]), { valid: true, keyId: 'sec', algorithm: 'hmac-sha256' });
});

// --- tampering ----------------------------------------------------------------------------

for (const family of ['webhook-', 'x-webhook-'] as const) {
  for (const algorithm of ['hmac-sha256', 'hmac-sha512', 'ed25519'] as const) {
    const key = algorithm === 'ed25519' ? { id: 'e', secret: PAIR.secret } : { id: 'h', secret: SECRET_A };
    const keys = algorithm === 'ed25519' ? [{ id: 'k', publicKey: PAIR.publicKey }] : [{ id: 'k', secret: SECRET_A }];
    const headers = only(sign([key], algorithm), family);
    const tampered: [string, Partial<VerifyInput>][] = [
      ['body', { body: BODY.replace('in_1', 'in_2') }],
      ['body (trailing newline)', { body: `${BODY}\n` }],
      ['body (re-serialised JSON)', { body: JSON.stringify(JSON.parse(BODY), null, 1) }],
      ['id', { headers: { ...headers, [`${family}id`]: 'msg_other' } }],
      ['timestamp', { headers: { ...headers, [`${family}timestamp`]: String(TS + 1) } }],
    ];
    for (const [what, over] of tampered) {
      test(`tampered ${what} fails: ${family}* ${algorithm}`, (t) => {
        t.true(verify(headers, keys).valid);
        const r = verify(headers, keys, over);
        t.false(r.valid);
        t.is(r.reason, 'no signature matches any active key');
        t.is(r.keyId, undefined);
        t.is(r.algorithm, undefined);
      });
    }
  }
}

// --- timestamp tolerance ------------------------------------------------------------------

const toleranceCases: { title: string; nowMs: number; tolerance?: number; valid: boolean; reason?: string }[] = [
  { title: 'same second', nowMs: NOW, valid: true },
  { title: 'exactly 300 s old', nowMs: NOW + 300_000, valid: true },
  // Whole seconds: 300.999 s is still "300 s old".
  { title: '300.999 s old', nowMs: NOW + 300_999, valid: true },
  { title: '301 s old', nowMs: NOW + 301_000, valid: false, reason: 'timestamp is 301 seconds old: 1 s older than the 300 s tolerance' },
  { title: '712 s old', nowMs: NOW + 712_000, valid: false, reason: 'timestamp is 712 seconds old: 412 s older than the 300 s tolerance' },
  { title: 'exactly 300 s in the future', nowMs: NOW - 300_000, valid: true },
  { title: '301 s in the future', nowMs: NOW - 301_000, valid: false, reason: 'timestamp is 301 seconds in the future: 1 s beyond the 300 s tolerance' },
  { title: 'custom tolerance 10 s, exactly 10 s old', nowMs: NOW + 10_000, tolerance: 10, valid: true },
  { title: 'custom tolerance 10 s, 11 s old', nowMs: NOW + 11_000, tolerance: 10, valid: false, reason: 'timestamp is 11 seconds old: 1 s older than the 10 s tolerance' },
  { title: 'custom tolerance 10 s, 11 s in the future', nowMs: NOW - 11_000, tolerance: 10, valid: false, reason: 'timestamp is 11 seconds in the future: 1 s beyond the 10 s tolerance' },
  { title: 'tolerance 0, same second', nowMs: NOW + 999, tolerance: 0, valid: true },
  { title: 'tolerance 0, 1 s old', nowMs: NOW + 1_000, tolerance: 0, valid: false, reason: 'timestamp is 1 second old: 1 s older than the 0 s tolerance' },
  { title: 'tolerance Infinity, a year old', nowMs: NOW + 365 * 86_400_000, tolerance: Infinity, valid: true },
];

for (const c of toleranceCases) {
  for (const family of ['webhook-', 'x-webhook-'] as const) {
    test(`tolerance: ${c.title} (${family}*)`, (t) => {
      const r = verify(only(sign([{ id: 'a', secret: SECRET_A }]), family), hmacA, { now: c.nowMs, ...(c.tolerance === undefined ? {} : { toleranceSeconds: c.tolerance }) });
      t.is(r.valid, c.valid, r.reason);
      if (c.reason) t.is(r.reason, c.reason);
    });
  }
}

test('an invalid tolerance or clock is the caller\'s error', (t) => {
  const headers = sign([{ id: 'a', secret: SECRET_A }]);
  t.throws(() => verify(headers, hmacA, { toleranceSeconds: -1 }), { instanceOf: RangeError });
  t.throws(() => verify(headers, hmacA, { toleranceSeconds: Number.NaN }), { instanceOf: RangeError });
  t.throws(() => verify(headers, hmacA, { now: Number.NaN }), { instanceOf: RangeError });
});

// --- missing, malformed and garbage headers -----------------------------------------------

const good = sign([{ id: 'a', secret: SECRET_A }]);
const goodStd = only(good, 'webhook-');
const goodX = only(good, 'x-webhook-');
const without = (h: Headers, name: string): Headers => Object.fromEntries(Object.entries(h).filter(([k]) => k !== name));

const invalidCases: { title: string; headers: VerifyInput['headers']; scheme: string | null; reason: string | RegExp }[] = [
  { title: 'no headers at all', headers: {}, scheme: null, reason: 'missing webhook-signature (or X-Webhook-Signature) header' },
  { title: 'ids and timestamps but no signature header', headers: without(without(good, 'webhook-signature'), 'x-webhook-signature'), scheme: null, reason: /^missing webhook-signature/ },
  { title: 'missing webhook-id', headers: without(goodStd, 'webhook-id'), scheme: 'standard-webhooks', reason: 'missing webhook-id header' },
  { title: 'missing webhook-timestamp', headers: without(goodStd, 'webhook-timestamp'), scheme: 'standard-webhooks', reason: 'missing webhook-timestamp header' },
  // The families are never mixed: a webhook-signature does not borrow the x-webhook-id.
  { title: 'webhook-signature with only x-webhook-id', headers: { ...goodX, 'webhook-signature': good['webhook-signature']!, 'webhook-timestamp': String(TS) }, scheme: 'standard-webhooks', reason: 'missing webhook-id header' },
  { title: 'missing x-webhook-id', headers: without(goodX, 'x-webhook-id'), scheme: 'x-webhook', reason: 'missing x-webhook-id header' },
  { title: 'missing x-webhook-timestamp', headers: without(goodX, 'x-webhook-timestamp'), scheme: 'x-webhook', reason: 'missing x-webhook-timestamp header' },
  { title: 'empty webhook-id', headers: { ...goodStd, 'webhook-id': '' }, scheme: 'standard-webhooks', reason: 'missing webhook-id header' },
  { title: 'blank webhook-signature falls through to X-Webhook', headers: { ...good, 'webhook-signature': '  ' }, scheme: 'x-webhook', reason: /^signature matches/ },
  { title: 'timestamp with a fraction', headers: { ...goodStd, 'webhook-timestamp': `${TS}.5` }, scheme: 'standard-webhooks', reason: 'webhook-timestamp is not an integer number of seconds' },
  { title: 'timestamp in milliseconds is merely far in the future', headers: { ...goodStd, 'webhook-timestamp': String(NOW) }, scheme: 'standard-webhooks', reason: /^timestamp is \d+ seconds in the future/ },
  { title: 'timestamp as a date', headers: { ...goodX, 'x-webhook-timestamp': new Date(NOW).toISOString() }, scheme: 'x-webhook', reason: 'x-webhook-timestamp is not an integer number of seconds' },
  { title: 'negative timestamp', headers: { ...goodStd, 'webhook-timestamp': '-1' }, scheme: 'standard-webhooks', reason: 'webhook-timestamp is not an integer number of seconds' },
  { title: 'timestamp with a leading zero', headers: { ...goodStd, 'webhook-timestamp': `0${TS}` }, scheme: 'standard-webhooks', reason: 'webhook-timestamp is not an integer number of seconds' },
  { title: 'two different webhook-ids', headers: { ...goodStd, 'webhook-id': [ID, 'msg_other'] }, scheme: 'standard-webhooks', reason: 'conflicting webhook-id headers' },
  { title: 'only unknown versions', headers: { ...goodStd, 'webhook-signature': 'v2,abc v0,def' }, scheme: 'standard-webhooks', reason: 'webhook-signature has no v1 or v1a entry' },
  { title: 'no comma at all', headers: { ...goodStd, 'webhook-signature': 'garbage' }, scheme: 'standard-webhooks', reason: 'webhook-signature has no v1 or v1a entry' },
  { title: 'only unknown X-Webhook algorithms', headers: { ...goodX, 'x-webhook-signature': 'md5=abcd,sha1=ef01' }, scheme: 'x-webhook', reason: 'x-webhook-signature has no sha256=, sha512= or ed25519= entry' },
  { title: 'v1 entry that is not base64', headers: { ...goodStd, 'webhook-signature': 'v1,!!!not-base64!!!' }, scheme: 'standard-webhooks', reason: 'no signature matches any active key' },
  { title: 'v1 entry, empty', headers: { ...goodStd, 'webhook-signature': 'v1,' }, scheme: 'standard-webhooks', reason: 'no signature matches any active key' },
  { title: 'v1 entry, truncated', headers: { ...goodStd, 'webhook-signature': good['webhook-signature']!.slice(0, -4) }, scheme: 'standard-webhooks', reason: 'no signature matches any active key' },
  { title: 'v1 entry with junk appended (Buffer.from would ignore it)', headers: { ...goodStd, 'webhook-signature': `${good['webhook-signature']}!!` }, scheme: 'standard-webhooks', reason: 'no signature matches any active key' },
  { title: 'v1 entry without padding', headers: { ...goodStd, 'webhook-signature': good['webhook-signature']!.replace(/=+$/, '') }, scheme: 'standard-webhooks', reason: 'no signature matches any active key' },
  { title: 'v1 entry doubled in length', headers: { ...goodStd, 'webhook-signature': `v1,${Buffer.alloc(64).toString('base64')}` }, scheme: 'standard-webhooks', reason: 'no signature matches any active key' },
  { title: 'v1a entry of the wrong length', headers: { ...goodStd, 'webhook-signature': 'v1a,AAAA' }, scheme: 'standard-webhooks', reason: 'no signature matches any active key' },
  { title: 'sha256= that is not hex', headers: { ...goodX, 'x-webhook-signature': `sha256=${'zz'.repeat(32)}` }, scheme: 'x-webhook', reason: 'no signature matches any active key' },
  { title: 'sha256= with an odd number of digits', headers: { ...goodX, 'x-webhook-signature': goodX['x-webhook-signature']!.slice(0, -1) }, scheme: 'x-webhook', reason: 'no signature matches any active key' },
  { title: 'sha256= hex of a sha512 length', headers: { ...goodX, 'x-webhook-signature': `sha256=${'00'.repeat(64)}` }, scheme: 'x-webhook', reason: 'no signature matches any active key' },
  { title: 'sha512= carrying the sha256 digest', headers: { ...goodX, 'x-webhook-signature': goodX['x-webhook-signature']!.replace('sha256=', 'sha512=') }, scheme: 'x-webhook', reason: 'no signature matches any active key' },
  { title: 'ed25519= garbage', headers: { ...goodX, 'x-webhook-signature': 'ed25519=00ff' }, scheme: 'x-webhook', reason: 'no signature matches any active key' },
];

for (const c of invalidCases) {
  test(`headers: ${c.title}`, (t) => {
    const r = verify(c.headers, hmacA);
    t.is(r.scheme, c.scheme as any);
    if (typeof c.reason === 'string') t.is(r.reason, c.reason);
    else t.regex(r.reason, c.reason);
    if (!r.reason.startsWith('signature matches')) t.false(r.valid);
  });
}

test('garbage entries next to a good one do not hide it', (t) => {
  const std = { ...goodStd, 'webhook-signature': `v2,zzz v1,!!! v1a,AAAA nonsense ${good['webhook-signature']} v1,` };
  t.like(verify(std, hmacA), { valid: true, keyId: 'key_a' });
  const x = { ...goodX, 'x-webhook-signature': `md5=00, sha256=zz, =, sha512, ed25519=00, ${goodX['x-webhook-signature']}` };
  t.like(verify(x, hmacA), { valid: true, keyId: 'key_a', algorithm: 'hmac-sha256' });
});

test('an empty key list verifies nothing', (t) => {
  t.like(verify(good, []), { valid: false, scheme: 'standard-webhooks', reason: 'no active key to verify with' });
});

test('header names in any case; array values', (t) => {
  const upper = Object.fromEntries(Object.entries(good).map(([k, v]) => [k.toUpperCase(), v]));
  t.like(verify(upper, hmacA), { valid: true, scheme: 'standard-webhooks' });
  const title = { 'Webhook-Id': ID, 'Webhook-Timestamp': String(TS), 'Webhook-Signature': good['webhook-signature']! };
  t.like(verify(title, hmacA), { valid: true, scheme: 'standard-webhooks' });
  const x = { 'X-Webhook-ID': ID, 'X-Webhook-Timestamp': String(TS), 'X-WEBHOOK-SIGNATURE': goodX['x-webhook-signature']! };
  t.like(verify(x, hmacA), { valid: true, scheme: 'x-webhook' });

  // Arrays, as Node gives for a repeated header: every element counts as entries.
  const rotated = sign([{ id: 'n', secret: SECRET_B }, { id: 'o', secret: SECRET_A }]);
  const [sigB, sigA] = rotated['webhook-signature']!.split(' ');
  t.like(verify({ ...goodStd, 'webhook-signature': [sigB!, sigA!] }, hmacA), { valid: true, keyId: 'key_a' });
  const [xB, xA] = rotated['x-webhook-signature']!.split(',');
  t.like(verify({ ...goodX, 'x-webhook-signature': [xB!, xA!] }, hmacA), { valid: true, keyId: 'key_a' });
  // Repeated equal ids/timestamps are one value; undefined entries are absent headers.
  t.like(verify({ ...goodStd, 'webhook-id': [ID, ID], 'webhook-timestamp': [String(TS)], 'x-webhook-id': undefined }, hmacA), { valid: true });
  t.like(verify({ ...goodStd, 'webhook-id': [] }, hmacA), { valid: false, reason: 'missing webhook-id header' });
  // The same header under two spellings of its name is a repeat, not an override.
  t.like(verify({ ...goodStd, 'Webhook-Id': 'msg_other' }, hmacA), { valid: false, reason: 'conflicting webhook-id headers' });
  // What fetch and Node do with a repeated header: join the values with ", ".
  t.like(verify({ ...goodStd, 'webhook-signature': `${sigB}, ${sigA}` }, hmacA), { valid: true, keyId: 'key_a' });
  t.like(verify({ ...goodX, 'x-webhook-signature': `${xB}, ${xA}` }, hmacA), { valid: true, keyId: 'key_a' });
});

test('a Buffer body is the same bytes as its UTF-8 string', (t) => {
  t.like(verify(good, hmacA, { body: Buffer.from(BODY, 'utf8') }), { valid: true });
  t.like(verify(sign([{ id: 'a', secret: SECRET_A }], 'hmac-sha256', { body: '' }), hmacA, { body: '' }), { valid: true });
});

test('bad keys are the caller\'s error: RangeError, never a plain mismatch', (t) => {
  const short = `whsec_${Buffer.alloc(23, 7).toString('base64')}`;
  const ok24 = `whsec_${Buffer.alloc(24, 7).toString('base64')}`;
  t.throws(() => verify(good, [{ id: 'k', secret: short }]), { instanceOf: RangeError, message: /at least 24 bytes, got 23/ });
  t.throws(() => verify(good, [{ id: 'k', secret: 'whsec_' }]), { instanceOf: RangeError });
  // Thrown even when the headers would fail anyway: the bug is in the key, not the request.
  t.throws(() => verify({}, [{ id: 'k', secret: short }]), { instanceOf: RangeError });
  t.like(verify(good, [{ id: 'k', secret: ok24 }]), { valid: false, reason: 'no signature matches any active key' });
  t.throws(() => verify(good, [{ id: 'k', secret: 'not-a-secret' }]), { instanceOf: RangeError, message: /key k: secret must start with whsec_/ });
  t.throws(() => verify(good, [{ id: 'k', publicKey: 'whpk_AAAA' }]), { instanceOf: RangeError, message: /32 bytes/ });
  t.throws(() => verify(good, [{ id: 'k', publicKey: SECRET_A }]), { instanceOf: RangeError });
  t.throws(() => verify(good, [{ id: 'k' }]), { instanceOf: RangeError, message: /neither/ });
});

test('parseSignatureHeader splits entries without decoding them', (t) => {
  t.deepEqual(parseSignatureHeader('standard-webhooks', 'v1,abc= v1a,de+/ junk v2,x,y'), [
    { tag: 'v1', signature: 'abc=' },
    { tag: 'v1a', signature: 'de+/' },
    { tag: 'v2', signature: 'x,y' },
  ]);
  t.deepEqual(parseSignatureHeader('standard-webhooks', 'v1,abc, v1,def'), [{ tag: 'v1', signature: 'abc' }, { tag: 'v1', signature: 'def' }]);
  t.deepEqual(parseSignatureHeader('x-webhook', 'sha256=ab, SHA512 = cd,junk,=ef'), [
    { tag: 'sha256', signature: 'ab' },
    { tag: 'sha512', signature: 'cd' },
  ]);
  t.deepEqual(parseSignatureHeader('x-webhook', ''), []);
});

// --- agreement with the standardwebhooks package ------------------------------------------

/** The package reads the clock itself, so these cases are signed relative to the real time. */
function packageVerdict(secret: string, body: string, headers: Headers): boolean {
  try {
    new Webhook(secret).verify(body, headers, { jsonParse: false });
    return true;
  } catch {
    return false;
  }
}

test('the standardwebhooks package and verifySignature agree', (t) => {
  const now = Date.now();
  const ts = Math.floor(now / 1000);
  const secret = newSecret();
  const other = newSecret();
  const signed = (over: { keys?: SigningKey[]; timestamp?: number; body?: string; algorithm?: SignatureAlgorithm } = {}) =>
    only(signatureHeaders({ webhookId: ID, timestamp: over.timestamp ?? ts, body: over.body ?? BODY, keys: over.keys ?? [{ id: 'k', secret }], algorithm: over.algorithm }), 'webhook-');
  const base = signed();
  const cases: { title: string; body?: string; headers: Headers; expected: boolean }[] = [
    { title: 'fresh signature', headers: base, expected: true },
    { title: 'empty body', body: '', headers: signed({ body: '' }), expected: true },
    { title: 'hmac-sha512 endpoint (v1 is sha256)', headers: signed({ algorithm: 'hmac-sha512' }), expected: true },
    { title: 'rotation: other key first', headers: signed({ keys: [{ id: 'o', secret: other }, { id: 'k', secret }] }), expected: true },
    { title: 'rotation: ed25519 entry next to v1', headers: signed({ keys: [{ id: 'e', secret: PAIR.secret }, { id: 'k', secret }] }), expected: true },
    { title: 'signed with another key', headers: signed({ keys: [{ id: 'o', secret: other }] }), expected: false },
    { title: 'only a v1a entry', headers: signed({ keys: [{ id: 'e', secret: PAIR.secret }], algorithm: 'ed25519' }), expected: false },
    { title: 'tampered body', body: `${BODY} `, headers: base, expected: false },
    { title: 'tampered id', headers: { ...base, 'webhook-id': 'msg_x' }, expected: false },
    { title: 'tampered timestamp', headers: { ...base, 'webhook-timestamp': String(ts - 1) }, expected: false },
    { title: '10 s old', headers: signed({ timestamp: ts - 10 }), expected: true },
    { title: '10 s in the future', headers: signed({ timestamp: ts + 10 }), expected: true },
    // The exact boundary is left out on purpose: the package reads its own clock, which may
    // tick between our `now` and its check.
    { title: '10 minutes old', headers: signed({ timestamp: ts - 600 }), expected: false },
    { title: '10 minutes in the future', headers: signed({ timestamp: ts + 600 }), expected: false },
    { title: 'timestamp not a number', headers: { ...base, 'webhook-timestamp': 'soon' }, expected: false },
    { title: 'missing id', headers: without(base, 'webhook-id'), expected: false },
    { title: 'missing timestamp', headers: without(base, 'webhook-timestamp'), expected: false },
    { title: 'missing signature', headers: without(base, 'webhook-signature'), expected: false },
    { title: 'unknown versions only', headers: { ...base, 'webhook-signature': base['webhook-signature']!.replace('v1,', 'v9,') }, expected: false },
    { title: 'garbage entries then the good one', headers: { ...base, 'webhook-signature': `v1,garbage v1a,junk ${base['webhook-signature']}` }, expected: true },
    { title: 'unpadded base64', headers: { ...base, 'webhook-signature': base['webhook-signature']!.replace(/=+$/, '') }, expected: false },
    { title: 'base64 with junk appended', headers: { ...base, 'webhook-signature': `${base['webhook-signature']}AA` }, expected: false },
    { title: 'upper-case header names', headers: Object.fromEntries(Object.entries(base).map(([k, v]) => [k.toUpperCase(), v])), expected: true },
  ];
  for (const c of cases) {
    const body = c.body ?? BODY;
    const ours = verifySignature({ body, headers: c.headers, keys: [{ id: 'k', secret }], now });
    const theirs = packageVerdict(secret, body, c.headers);
    t.is(theirs, c.expected, `package: ${c.title}`);
    t.is(ours.valid, c.expected, `verifySignature: ${c.title} (${ours.reason})`);
  }
});

test('the standardwebhooks package and verifySignature agree on random bodies and keys', (t) => {
  const now = Date.now();
  const ts = Math.floor(now / 1000);
  for (let i = 0; i < 50; i++) {
    const secret = newSecret();
    const body = JSON.stringify({ i, r: Math.random(), s: String.fromCodePoint(...Array.from({ length: 8 }, () => 32 + Math.floor(Math.random() * 0x2000))) });
    const headers = only(signatureHeaders({ webhookId: `msg_${i}`, timestamp: ts, body, keys: [{ id: 'k', secret }] }), 'webhook-');
    // Half of the cases flip one character of the body.
    const received = i % 2 === 0 ? body : body.replace(/.$/, (c) => (c === '}' ? ']' : '}'));
    const ours = verifySignature({ body: received, headers, keys: [{ secret }], now }).valid;
    t.is(ours, packageVerdict(secret, received, headers), `case ${i}`);
    t.is(ours, i % 2 === 0);
  }
});
