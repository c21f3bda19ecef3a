import { createHmac, createPublicKey, timingSafeEqual, verify as edVerify, type KeyObject } from 'node:crypto';
import { MIN_SECRET_BYTES, PRIVATE_KEY_PREFIX, PUBLIC_KEY_PREFIX, SECRET_PREFIX, publicKeyOf, type SignatureAlgorithm } from './sign.ts';

/**
 * The receiving side of sign.ts, as a pure function: given the exact body, the request headers
 * and the keys a receiver trusts, say whether the request was signed by one of them, and if
 * not, why. No I/O and no clock of its own (`now` is an input), so the API's
 * `POST /api/v1/signatures/verify` and the tests get the same answer for the same input.
 *
 * Which header family is checked: `webhook-signature` (Standard Webhooks) wins when present,
 * because every hookrelay delivery carries it and it is the one the ecosystem's libraries
 * check; `X-Webhook-Signature` is the fallback for receivers (and proxies) that keep only the
 * `sha256=<hex>` style headers. The two families are never mixed: an id from one and a
 * signature from the other would sign different facts.
 */

export const DEFAULT_TOLERANCE_SECONDS = 300;

export type SignatureScheme = 'standard-webhooks' | 'x-webhook';

export interface VerifyKey {
  /** Reported back as `keyId` when this key matches. */
  id?: string;
  /**
   * `whsec_…` (HMAC). Also accepted: a `whpk_…` public key (the verify API has a single
   * `secret` field for both kinds), and a `whsk_…` ed25519 signing key, which stands for its
   * public key, because that is what hookrelay stores for ed25519 endpoints.
   */
  secret?: string;
  /** `whpk_…`: the base64 of a raw 32-byte ed25519 public key. */
  publicKey?: string;
}

export interface VerifyInput {
  /** Exactly the bytes received (a string is taken as UTF-8). Re-serialised JSON will not verify. */
  body: string | Buffer;
  /** Header names in any case; array values are what Node gives for repeated headers. */
  headers: Record<string, string | string[] | undefined>;
  keys: readonly VerifyKey[];
  /** How far the timestamp may be from `now`, either way. Default 300; Infinity disables the check. */
  toleranceSeconds?: number;
  /** Unix time in milliseconds. */
  now: number;
}

export interface VerifyResult {
  valid: boolean;
  scheme: SignatureScheme | null;
  reason: string;
  /** The `id` of the key that matched (only when valid and the key has an id). */
  keyId?: string;
  /** The algorithm of the matching signature entry (only when valid). */
  algorithm?: SignatureAlgorithm;
}

/** One entry of a signature header: `tag` is `v1`/`v1a` or `sha256`/`sha512`/`ed25519`. */
export interface SignatureEntry {
  tag: string;
  signature: string;
}

interface SchemeInfo {
  scheme: SignatureScheme;
  id: string;
  timestamp: string;
  signature: string;
}

const SCHEMES: readonly SchemeInfo[] = [
  { scheme: 'standard-webhooks', id: 'webhook-id', timestamp: 'webhook-timestamp', signature: 'webhook-signature' },
  { scheme: 'x-webhook', id: 'x-webhook-id', timestamp: 'x-webhook-timestamp', signature: 'x-webhook-signature' },
];

/**
 * Splits a signature header into its entries. Standard Webhooks entries are separated by
 * spaces and look like `v1,<base64>`; X-Webhook entries are separated by commas and look like
 * `sha256=<hex>`. Entries without a separator are dropped; nothing is decoded here.
 */
export function parseSignatureHeader(scheme: SignatureScheme, value: string): SignatureEntry[] {
  const entries: SignatureEntry[] = [];
  if (scheme === 'standard-webhooks') {
    for (let part of value.split(/\s+/)) {
      // Node and fetch join a repeated header with ", ", which leaves a trailing comma on every
      // entry but the last; base64 never contains a comma, so dropping it is unambiguous
      // (`v1,` alone stays an entry with an empty signature).
      if (part.endsWith(',') && part.indexOf(',') < part.length - 1) part = part.slice(0, -1);
      const comma = part.indexOf(',');
      if (comma <= 0) continue;
      entries.push({ tag: part.slice(0, comma), signature: part.slice(comma + 1) });
    }
  } else {
    for (const raw of value.split(',')) {
      const part = raw.trim();
      const eq = part.indexOf('=');
      if (eq <= 0) continue;
      entries.push({ tag: part.slice(0, eq).trim().toLowerCase(), signature: part.slice(eq + 1).trim() });
    }
  }
  return entries;
}

/**
 * Every value of a header, whatever the case of its name: a record built by hand may hold
 * `Webhook-Id` and `webhook-id` both, and Node gives arrays for some repeated headers.
 */
function headerValues(headers: VerifyInput['headers'], name: string): string[] {
  const values: string[] = [];
  for (const [key, value] of Object.entries(headers)) {
    if (key.toLowerCase() !== name || value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) if (v.trim() !== '') values.push(v.trim());
  }
  return values;
}

/**
 * Strict decoding: a value that is not canonical base64 / hex is a mismatch. Buffer.from
 * silently skips characters it does not understand, which would let many different header
 * values stand for the same signature; the standardwebhooks package compares the base64 text
 * itself, and being exactly as strict keeps the two in agreement.
 */
function decodeBase64(text: string): Buffer | undefined {
  if (text === '' || !/^[A-Za-z0-9+/]+={0,2}$/.test(text)) return undefined;
  const bytes = Buffer.from(text, 'base64');
  return bytes.toString('base64') === text ? bytes : undefined;
}

function decodeHex(text: string): Buffer | undefined {
  if (text === '' || text.length % 2 !== 0 || !/^[0-9a-fA-F]+$/.test(text)) return undefined;
  return Buffer.from(text, 'hex');
}

/** Equal-length comparison in constant time; a different length is simply not a match. */
function sameBytes(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

function hmacKey(secret: string): Buffer {
  const bytes = Buffer.from(secret.slice(SECRET_PREFIX.length), 'base64');
  // The API refuses such secrets when they are created or supplied; one reaching this far is a
  // bug in the caller, not a bad signature, so it must not be reported as "no match".
  if (bytes.length < MIN_SECRET_BYTES) throw new RangeError(`a whsec_ secret must decode to at least ${MIN_SECRET_BYTES} bytes, got ${bytes.length}`);
  return bytes;
}

/** SubjectPublicKeyInfo wrapping of a raw ed25519 public key (RFC 8410): fixed prefix, then the key. */
const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

function ed25519PublicKey(publicKey: string): KeyObject {
  const raw = Buffer.from(publicKey.slice(PUBLIC_KEY_PREFIX.length), 'base64');
  if (raw.length !== 32) throw new RangeError(`a whpk_ public key must decode to 32 bytes, got ${raw.length}`);
  return createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, raw]), format: 'der', type: 'spki' });
}

interface PreparedKey {
  id: string | undefined;
  hmac?: Buffer;
  ed25519?: KeyObject;
}

/** Keys are checked for shape before any header is looked at: a caller's mistake throws even for a request that would fail anyway. */
function prepareKeys(keys: readonly VerifyKey[]): PreparedKey[] {
  return keys.map((key, i) => {
    const prepared: PreparedKey = { id: key.id };
    if (key.secret !== undefined) {
      if (key.secret.startsWith(SECRET_PREFIX)) prepared.hmac = hmacKey(key.secret);
      else if (key.secret.startsWith(PRIVATE_KEY_PREFIX)) prepared.ed25519 = ed25519PublicKey(publicKeyOf(key.secret));
      // The verify API takes one `secret` field that may hold a public key; accept it here so
      // the handler need not sort prefixes itself.
      else if (key.secret.startsWith(PUBLIC_KEY_PREFIX)) prepared.ed25519 = ed25519PublicKey(key.secret);
      else throw new RangeError(`key ${key.id ?? `#${i}`}: secret must start with ${SECRET_PREFIX}, ${PRIVATE_KEY_PREFIX} or ${PUBLIC_KEY_PREFIX}`);
    }
    if (key.publicKey !== undefined) {
      if (!key.publicKey.startsWith(PUBLIC_KEY_PREFIX)) throw new RangeError(`key ${key.id ?? `#${i}`}: publicKey must start with ${PUBLIC_KEY_PREFIX}`);
      prepared.ed25519 = ed25519PublicKey(key.publicKey);
    }
    if (!prepared.hmac && !prepared.ed25519) throw new RangeError(`key ${key.id ?? `#${i}`} has neither a secret nor a publicKey`);
    return prepared;
  });
}

/** What one entry needs to be checked: the algorithm and the decoded signature bytes. */
function decodeEntry(scheme: SignatureScheme, entry: SignatureEntry): { algorithm: SignatureAlgorithm; bytes: Buffer | undefined } | undefined {
  if (scheme === 'standard-webhooks') {
    // Unknown versions are skipped, as the specification asks, so new ones can be added
    // alongside without breaking today's receivers.
    if (entry.tag === 'v1') return { algorithm: 'hmac-sha256', bytes: decodeBase64(entry.signature) };
    if (entry.tag === 'v1a') return { algorithm: 'ed25519', bytes: decodeBase64(entry.signature) };
    return undefined;
  }
  if (entry.tag === 'sha256') return { algorithm: 'hmac-sha256', bytes: decodeHex(entry.signature) };
  if (entry.tag === 'sha512') return { algorithm: 'hmac-sha512', bytes: decodeHex(entry.signature) };
  if (entry.tag === 'ed25519') return { algorithm: 'ed25519', bytes: decodeHex(entry.signature) };
  return undefined;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

export function verifySignature(input: VerifyInput): VerifyResult {
  const tolerance = input.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS;
  if (Number.isNaN(tolerance) || tolerance < 0) throw new RangeError('toleranceSeconds must be a non-negative number');
  if (!Number.isFinite(input.now)) throw new RangeError('now must be a finite number of milliseconds');
  const keys = prepareKeys(input.keys);

  const info = SCHEMES.find((s) => headerValues(input.headers, s.signature).length > 0);
  if (!info) return { valid: false, scheme: null, reason: 'missing webhook-signature (or X-Webhook-Signature) header' };
  const { scheme } = info;
  const fail = (reason: string): VerifyResult => ({ valid: false, scheme, reason });

  const ids = headerValues(input.headers, info.id);
  const timestamps = headerValues(input.headers, info.timestamp);
  if (ids.length === 0) return fail(`missing ${info.id} header`);
  if (timestamps.length === 0) return fail(`missing ${info.timestamp} header`);
  // Two different ids or timestamps cannot both be what was signed; guessing one would make
  // the answer depend on header order.
  if (new Set(ids).size > 1) return fail(`conflicting ${info.id} headers`);
  if (new Set(timestamps).size > 1) return fail(`conflicting ${info.timestamp} headers`);
  const id = ids[0]!;
  const timestampText = timestamps[0]!;

  // Canonical digits only (no sign, no leading zero): the signed content holds the header text,
  // and the standardwebhooks package re-prints the parsed number, so any other spelling of the
  // same number would verify here and fail there.
  if (!/^(0|[1-9]\d{0,14})$/.test(timestampText)) return fail(`${info.timestamp} is not an integer number of seconds`);
  const timestamp = Number(timestampText);
  // Whole seconds, as the signer and the standardwebhooks package count them: a timestamp
  // exactly `tolerance` seconds away still passes, one second more does not.
  const nowSeconds = Math.floor(input.now / 1000);
  const age = nowSeconds - timestamp;
  if (age > tolerance) return fail(`timestamp is ${plural(age, 'second')} old: ${age - tolerance} s older than the ${tolerance} s tolerance`);
  if (-age > tolerance) return fail(`timestamp is ${plural(-age, 'second')} in the future: ${-age - tolerance} s beyond the ${tolerance} s tolerance`);

  const entries = parseSignatureHeader(scheme, headerValues(input.headers, info.signature).join(scheme === 'standard-webhooks' ? ' ' : ','))
    .map((e) => decodeEntry(scheme, e))
    .filter((e) => e !== undefined);
  if (entries.length === 0) {
    return fail(scheme === 'standard-webhooks'
      ? 'webhook-signature has no v1 or v1a entry'
      : 'x-webhook-signature has no sha256=, sha512= or ed25519= entry');
  }
  if (keys.length === 0) return fail('no active key to verify with');

  const body = typeof input.body === 'string' ? Buffer.from(input.body, 'utf8') : input.body;
  const content = Buffer.concat([Buffer.from(`${id}.${timestampText}.`, 'utf8'), body]);

  // Keys in the caller's order (the current key first), so that during a rotation the newest
  // key that matches is the one reported. Each HMAC is computed once per key, not per entry.
  for (const key of keys) {
    const digests = new Map<string, Buffer>();
    const hmac = (alg: 'sha256' | 'sha512', secret: Buffer): Buffer => {
      const cached = digests.get(alg);
      if (cached) return cached;
      const digest = createHmac(alg, secret).update(content).digest();
      digests.set(alg, digest);
      return digest;
    };
    for (const { algorithm, bytes } of entries) {
      if (!bytes) continue;
      let match = false;
      if (algorithm === 'ed25519') {
        // Signature verification compares nothing secret, so it needs no constant-time care;
        // a wrong-length signature is rejected up front because crypto.verify would throw.
        match = key.ed25519 !== undefined && bytes.length === 64 && edVerify(null, content, key.ed25519, bytes);
      } else if (key.hmac) {
        match = sameBytes(bytes, hmac(algorithm === 'hmac-sha512' ? 'sha512' : 'sha256', key.hmac));
      }
      if (match) {
        const result: VerifyResult = { valid: true, scheme, algorithm, reason: key.id === undefined ? 'signature matches an active key' : `signature matches key ${key.id}` };
        if (key.id !== undefined) result.keyId = key.id;
        return result;
      }
    }
  }
  return fail('no signature matches any active key');
}
