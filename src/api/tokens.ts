import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { crc32 } from 'node:zlib';
import type { Db } from '../db/database.ts';
import { newId } from '../ids.ts';

/**
 * API tokens look like `hr_<32 base62 characters>_<6 base62 checksum characters>`. The
 * checksum lets a mistyped or truncated token be refused without a database query, and the
 * prefix makes leaked tokens easy to find with a secret scanner. Only the SHA-256 of a token
 * is stored; the text is shown once, when it is created.
 */

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const TOKEN_SHAPE = /^hr_([0-9A-Za-z]{32})_([0-9A-Za-z]{6})$/;

function base62(bytes: Buffer, length: number): string {
  let n = BigInt('0x' + (bytes.toString('hex') || '0'));
  let out = '';
  while (out.length < length) {
    out = BASE62[Number(n % 62n)] + out;
    n /= 62n;
  }
  return out;
}

function checksum(body: string): string {
  const buf = Buffer.alloc(4);
  buf.writeUInt32BE(crc32(body));
  return base62(buf, 6);
}

export function generateToken(): string {
  // 24 random bytes (192 bits) fill 32 base62 characters.
  const body = base62(randomBytes(24), 32);
  return `hr_${body}_${checksum(body)}`;
}

/** True when the text has the token shape and its checksum matches. */
export function isWellFormedToken(token: string): boolean {
  const match = TOKEN_SHAPE.exec(token);
  return match !== null && checksum(match[1]!) === match[2];
}

export function hashToken(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

export async function createToken(db: Db, name: string): Promise<{ id: string; token: string }> {
  const token = generateToken();
  const id = newId('token');
  await db.insertInto('api_tokens').values({ id, name, token_hash: hashToken(token) }).execute();
  return { id, token };
}

/**
 * Stores the hash of HOOKRELAY_ADMIN_TOKEN, so that the token table alone says which tokens
 * exist. Idempotent across restarts and across instances starting at once.
 */
export async function ensureAdminToken(db: Db, token: string): Promise<string> {
  const hash = hashToken(token);
  await db
    .insertInto('api_tokens')
    .values({ id: newId('token'), name: 'HOOKRELAY_ADMIN_TOKEN', token_hash: hash })
    .onConflict((oc) => oc.column('token_hash').doNothing())
    .execute();
  const row = await db.selectFrom('api_tokens').select('id').where('token_hash', '=', hash).executeTakeFirstOrThrow();
  return row.id;
}

export interface Authenticator {
  /** The id of the token's row, or undefined when the token is not valid. */
  authenticate(token: string): Promise<string | undefined>;
}

export function createAuthenticator(db: Db, adminToken?: { token: string; id: string }): Authenticator {
  const adminHash = adminToken ? hashToken(adminToken.token) : undefined;
  return {
    async authenticate(token) {
      const hash = hashToken(token);
      // The admin token need not have the hr_ shape; every other token must, and a malformed
      // one is refused without a query. Hashes are compared in constant time.
      const isAdmin = adminHash !== undefined && timingSafeEqual(hash, adminHash);
      if (!isAdmin && !isWellFormedToken(token)) return undefined;
      // The table decides, for the admin token too: revoking its row revokes it.
      const row = await db
        .selectFrom('api_tokens')
        .select('id')
        .where('token_hash', '=', hash)
        .where('revoked_at', 'is', null)
        .executeTakeFirst();
      return row?.id;
    },
  };
}
