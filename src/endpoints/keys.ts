import type { Kysely, Transaction } from 'kysely';
import type { Db } from '../db/database.ts';
import type { Database } from '../db/schema.ts';
import { isAsymmetric, newKeyPair, newSecret, publicKeyOf, type SignatureAlgorithm, type SigningKey } from '../delivery/sign.ts';
import { AppError } from '../errors.ts';
import { newId } from '../ids.ts';
import type { Keyring } from './keyring.ts';

/**
 * Signing keys of endpoints. Each endpoint has one current key (expires_at IS NULL) and any
 * number of previous keys that keep signing until their expires_at, so a receiver can move
 * to a new secret without missing a delivery. Secrets are sealed by the keyring before they
 * reach the database and opened only to sign, to verify, or for GET …/secret.
 */

/** How long a replaced key keeps signing when a rotation does not say (seconds). */
export const DEFAULT_GRACE_SECONDS = 86_400;

type Executor = Kysely<Database> | Transaction<Database>;

export type KeyKind = 'hmac' | 'ed25519';

export function kindOf(algorithm: SignatureAlgorithm): KeyKind {
  return isAsymmetric(algorithm) ? 'ed25519' : 'hmac';
}

export interface NewKey {
  id: string;
  kind: KeyKind;
  /** `whsec_…` or `whsk_…` */
  secret: string;
  publicKey: string | null;
}

/** Makes a key of `kind`, from `secret` when the caller brings one (already validated). */
export function makeKey(kind: KeyKind, secret?: string): NewKey {
  if (kind === 'hmac') return { id: newId('key'), kind, secret: secret ?? newSecret(), publicKey: null };
  if (secret) return { id: newId('key'), kind, secret, publicKey: publicKeyOf(secret) };
  const pair = newKeyPair();
  return { id: newId('key'), kind, secret: pair.secret, publicKey: pair.publicKey };
}

export async function insertKey(trx: Executor, keyring: Keyring, endpointId: string, key: NewKey): Promise<void> {
  await trx
    .insertInto('signing_keys')
    .values({
      id: key.id,
      endpoint_id: endpointId,
      kind: key.kind,
      sealed_secret: keyring.seal(key.secret, endpointId, key.id),
      public_key: key.publicKey,
    })
    .execute();
}

export interface Rotation {
  keyId: string;
  kind: KeyKind;
  publicKey: string | null;
  previousKeyId: string | null;
  /** When the replaced key stops signing (now, for a grace period of 0). */
  previousKeyExpiresAt: Date | null;
}

/**
 * Makes a new current key of the kind the endpoint's algorithm needs. The replaced key, and
 * any older key still in its grace period, keep signing for at most `graceSeconds` more: a
 * rotation with a grace of 0 stops every old key at once (after a leak, say). Serialized per
 * endpoint by locking the endpoint row, which is also where the key kind is read, so a
 * concurrent change of algorithm cannot leave a key of the wrong kind.
 */
export async function rotateKey(
  db: Db,
  keyring: Keyring,
  endpointId: string,
  options: { secret?: string | undefined; graceSeconds: number; checkSecret?: (secret: string, kind: KeyKind) => string },
): Promise<Rotation> {
  return db.transaction().execute(async (trx) => {
    const endpoint = await trx.selectFrom('endpoints').select(['id', 'deleted_at', 'signature_algorithm']).where('id', '=', endpointId).forUpdate().executeTakeFirst();
    if (!endpoint) throw new AppError(404, 'endpoint_not_found', `no endpoint with id ${JSON.stringify(endpointId)}`);
    if (endpoint.deleted_at) throw new AppError(409, 'endpoint_deleted', 'the endpoint is deleted; its keys cannot be rotated');
    const kind = kindOf(endpoint.signature_algorithm);
    const secret = options.secret !== undefined && options.checkSecret ? options.checkSecret(options.secret, kind) : options.secret;
    return rotateLocked(trx, keyring, endpointId, { kind, secret, graceSeconds: options.graceSeconds });
  });
}

/** The rotation itself, for callers that already hold the endpoint row's lock. */
export async function rotateLocked(trx: Transaction<Database>, keyring: Keyring, endpointId: string, options: { kind: KeyKind; secret?: string | undefined; graceSeconds: number }): Promise<Rotation> {
  const now = new Date();
  const expiresAt = new Date(now.getTime() + options.graceSeconds * 1000);
  const previous = await trx
    .updateTable('signing_keys')
    .set({ expires_at: expiresAt })
    .where('endpoint_id', '=', endpointId)
    .where('expires_at', 'is', null)
    .returning('id')
    .executeTakeFirst();
  // Older keys still in grace never outlive the newest grace period.
  await trx
    .updateTable('signing_keys')
    .set({ expires_at: expiresAt })
    .where('endpoint_id', '=', endpointId)
    .where('expires_at', '>', expiresAt)
    .execute();
  const key = makeKey(options.kind, options.secret);
  await insertKey(trx, keyring, endpointId, key);
  return {
    keyId: key.id,
    kind: key.kind,
    publicKey: key.publicKey,
    previousKeyId: previous?.id ?? null,
    previousKeyExpiresAt: previous ? expiresAt : null,
  };
}

/**
 * The keys that sign now, for each of `endpointIds`: the current key first, then previous
 * keys still in their grace period, newest first. One query for a whole batch.
 */
export async function activeKeys(db: Executor, keyring: Keyring, endpointIds: readonly string[], now = new Date()): Promise<Map<string, SigningKey[]>> {
  const out = new Map<string, SigningKey[]>();
  if (endpointIds.length === 0) return out;
  const rows = await db
    .selectFrom('signing_keys')
    .select(['id', 'endpoint_id', 'sealed_secret', 'expires_at'])
    .where('endpoint_id', 'in', endpointIds)
    .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', now)]))
    .orderBy('endpoint_id')
    .orderBy((eb) => eb.ref('expires_at'), (ob) => ob.desc().nullsFirst())
    .execute();
  for (const row of rows) {
    const list = out.get(row.endpoint_id) ?? [];
    list.push({ id: row.id, secret: openCached(keyring, row.id, row.endpoint_id, row.sealed_secret) });
    out.set(row.endpoint_id, list);
  }
  return out;
}

export interface CurrentKey {
  id: string;
  kind: KeyKind;
  secret: string;
  publicKey: string | null;
}

export async function currentKey(db: Executor, keyring: Keyring, endpointId: string): Promise<CurrentKey | undefined> {
  const row = await db
    .selectFrom('signing_keys')
    .select(['id', 'kind', 'sealed_secret', 'public_key'])
    .where('endpoint_id', '=', endpointId)
    .where('expires_at', 'is', null)
    .executeTakeFirst();
  if (!row) return undefined;
  return { id: row.id, kind: row.kind, secret: keyring.open(row.sealed_secret, endpointId, row.id), publicKey: row.public_key };
}

/** Opened secrets, by key id and sealed bytes: signing a batch should not mean an AES pass per job. */
const opened = new Map<string, string>();
const OPENED_MAX = 10_000;

function openCached(keyring: Keyring, keyId: string, endpointId: string, sealed: Buffer): string {
  return openSealed(keyring, keyId, endpointId, sealed.toString('base64'));
}

/**
 * A key's secret from its sealed form as base64 (how the worker's fetch statement reads it);
 * opened once per master key and sealed value, then served from memory.
 */
export function openSealed(keyring: Keyring, keyId: string, endpointId: string, sealedBase64: string): string {
  const cacheKey = `${keyring.fingerprint}:${keyId}:${sealedBase64}`;
  const hit = opened.get(cacheKey);
  if (hit !== undefined) return hit;
  const secret = keyring.open(Buffer.from(sealedBase64, 'base64'), endpointId, keyId);
  if (opened.size >= OPENED_MAX) opened.clear();
  opened.set(cacheKey, secret);
  return secret;
}

/**
 * Re-seals every key that is not sealed with the current master key, in batches, each batch
 * in its own transaction. Safe to run while the service runs and to run again.
 */
export async function rewrapKeys(db: Db, keyring: Keyring, batchSize = 500): Promise<{ rewrapped: number; total: number }> {
  let rewrapped = 0;
  let total = 0;
  let after = '';
  for (;;) {
    const done = await db.transaction().execute(async (trx) => {
      const rows = await trx
        .selectFrom('signing_keys')
        .select(['id', 'endpoint_id', 'sealed_secret'])
        .where('id', '>', after)
        .orderBy('id')
        .limit(batchSize)
        .forUpdate()
        .execute();
      for (const row of rows) {
        total += 1;
        after = row.id;
        if (keyring.isCurrent(row.sealed_secret)) continue;
        const secret = keyring.open(row.sealed_secret, row.endpoint_id, row.id);
        await trx.updateTable('signing_keys').set({ sealed_secret: keyring.seal(secret, row.endpoint_id, row.id) }).where('id', '=', row.id).execute();
        rewrapped += 1;
      }
      return rows.length < batchSize;
    });
    if (done) return { rewrapped, total };
  }
}
