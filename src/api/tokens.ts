import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { sql } from 'kysely';
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

/** What a token may do. `admin` implies every other scope and is needed for the token API. */
export const SCOPES = Object.freeze(['webhooks:write', 'webhooks:read', 'endpoints:write', 'endpoints:read', 'admin'] as const);
export type Scope = (typeof SCOPES)[number];
/** The scopes of a token created without --scopes: everything but admin (the database default too). */
export const DEFAULT_SCOPES: readonly Scope[] = Object.freeze(['webhooks:write', 'webhooks:read', 'endpoints:write', 'endpoints:read']);

export function isScope(text: string): text is Scope {
  return (SCOPES as readonly string[]).includes(text);
}

/** Whether a token holding `held` may use an operation that needs every one of `needed`. */
export function hasScopes(held: readonly string[], needed: readonly string[]): boolean {
  return held.includes('admin') || needed.every((s) => held.includes(s));
}

export interface TokenOptions {
  scopes?: readonly Scope[];
  expiresAt?: Date | null;
  rateLimitPerSecond?: number | null;
  rateLimitBurst?: number | null;
}

export async function createToken(db: Db, name: string, options: TokenOptions = {}): Promise<{ id: string; token: string }> {
  const token = generateToken();
  const id = newId('token');
  // Only the columns given are written, so the database defaults apply to the rest.
  const values: Record<string, unknown> = { id, name, token_hash: hashToken(token) };
  if (options.scopes !== undefined) values.scopes = [...new Set(options.scopes)];
  if (options.expiresAt) values.expires_at = options.expiresAt;
  if (options.rateLimitPerSecond != null) values.rate_limit_per_second = options.rateLimitPerSecond;
  if (options.rateLimitBurst != null) values.rate_limit_burst = options.rateLimitBurst;
  await db.insertInto('api_tokens').values(values as never).execute();
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

/** Records that the HOOKRELAY_ADMIN_TOKEN row has the admin scope (the authenticator grants it anyway). */
export async function grantAdminScope(db: Db, id: string): Promise<void> {
  await db.updateTable('api_tokens').set({ scopes: ['admin'] }).where('id', '=', id).execute();
}

/** Revokes a token by id, or by its text (the token itself). Idempotent: the first revocation time stays. */
export async function revokeToken(db: Db, idOrToken: string): Promise<TokenRecord | undefined> {
  const row = await db
    .updateTable('api_tokens')
    .set((eb) => ({ revoked_at: eb.fn.coalesce('revoked_at', sql<Date>`now()`) }))
    .where((eb) => eb.or([eb('id', '=', idOrToken), eb('token_hash', '=', hashToken(idOrToken))]))
    .returning(RECORD_COLUMNS)
    .executeTakeFirst();
  return row;
}

const RECORD_COLUMNS = ['id', 'name', 'scopes', 'created_at', 'expires_at', 'revoked_at', 'last_used_at', 'rate_limit_per_second', 'rate_limit_burst'] as const;

/** A token's row without its hash: what lists and the API show. */
export interface TokenRecord {
  id: string;
  name: string;
  scopes: string[];
  created_at: Date;
  expires_at: Date | null;
  revoked_at: Date | null;
  last_used_at: Date | null;
  rate_limit_per_second: number | null;
  rate_limit_burst: number | null;
}

/** Tokens in id (creation) order, after the id `after` when given. Never the hash. */
export async function listTokens(db: Db, options: { after?: string; limit?: number; ids?: string[] } = {}): Promise<TokenRecord[]> {
  let query = db.selectFrom('api_tokens').select(RECORD_COLUMNS);
  if (options.ids !== undefined) {
    if (options.ids.length === 0) return [];
    query = query.where('id', 'in', options.ids);
  }
  if (options.after !== undefined) query = query.where('id', '>', options.after);
  query = query.orderBy('id', 'asc');
  if (options.limit !== undefined) query = query.limit(options.limit);
  return query.execute();
}

/** An authenticated token: its row id, what it may do, and its own rate limit if it has one. */
export interface TokenInfo {
  id: string;
  scopes: readonly string[];
  rateLimitPerSecond: number | null;
  rateLimitBurst: number | null;
}

export interface Authenticator {
  /** The id of the token's row, or undefined when the token is not valid. */
  authenticate(token: string): Promise<string | undefined>;
  /** The token's id, scopes and limits, or undefined when it is unknown, revoked or expired. */
  lookup(token: string): Promise<TokenInfo | undefined>;
}

/** How stale api_tokens.last_used_at may be. */
export const LAST_USED_PRECISION_MS = 60_000;

type TokenRow = Partial<TokenRecord> & { id: string; token_hash: Buffer };

/**
 * No cache: every request's token is read from the table after the request arrived, so a
 * revocation or an expiry takes effect with the next request, on every instance.
 *
 * The reads of concurrent requests share queries, as group commit shares transactions: a
 * lookup waits for the next query to start and never joins one already running (that one may
 * have read the table before a revocation this request should see). A query reads every
 * token hash waiting at the time, while at most LOOKUPS_IN_FLIGHT are running; an idle API
 * sends each lookup at once, a busy one a few queries per round trip instead of one per
 * request.
 */
export function createAuthenticator(db: Db, adminToken?: { token: string; id: string }): Authenticator {
  const adminHash = adminToken ? hashToken(adminToken.token) : undefined;
  /**
   * last_used_at, written at most once a minute per token: a write per request would turn
   * every read into a write. A failed write is only a stale timestamp, so it is dropped.
   */
  const touch = async (id: string, last: Date | null) => {
    if (last && Date.now() - last.getTime() < LAST_USED_PRECISION_MS) return;
    await db
      .updateTable('api_tokens')
      .set({ last_used_at: new Date() })
      .where('id', '=', id)
      .where((eb) => eb.or([eb('last_used_at', 'is', null), eb('last_used_at', '<', new Date(Date.now() - LAST_USED_PRECISION_MS))]))
      .execute()
      .catch(() => undefined);
  };
  const readRows = createLookupBatcher(async (hashes) => {
    // selectAll, so that a table from before 0004_token_scopes (no scopes, no expiry) is still read.
    const rows = (await db
      .selectFrom('api_tokens')
      .selectAll()
      .where('token_hash', 'in', hashes)
      .where('revoked_at', 'is', null)
      .execute()) as TokenRow[];
    // Once per row and query, however many requests the row answers.
    await Promise.all(rows.map((row) => touch(row.id, row.last_used_at ?? null)));
    return rows;
  });
  const lookup = async (token: string): Promise<TokenInfo | undefined> => {
    const hash = hashToken(token);
    // The admin token need not have the hr_ shape; every other token must, and a malformed
    // one is refused without a query. Hashes are compared in constant time.
    const isAdmin = adminHash !== undefined && timingSafeEqual(hash, adminHash);
    if (!isAdmin && !isWellFormedToken(token)) return undefined;
    // The table decides, for the admin token too: revoking its row revokes it.
    const row = await readRows(hash);
    if (!row) return undefined;
    if (row.expires_at && row.expires_at.getTime() <= Date.now()) return undefined;
    return {
      id: row.id,
      scopes: isAdmin ? ['admin'] : (row.scopes ?? DEFAULT_SCOPES),
      rateLimitPerSecond: row.rate_limit_per_second ?? null,
      rateLimitBurst: row.rate_limit_burst ?? null,
    };
  };
  return {
    lookup,
    async authenticate(token) {
      return (await lookup(token))?.id;
    },
  };
}

/** Token-lookup queries one authenticator runs at once; more lookups wait for the next. */
export const LOOKUPS_IN_FLIGHT = 2;

/**
 * Coalesces row reads by token hash: each call is answered by a query that started after the
 * call was made; one query serves every hash waiting when it starts.
 */
function createLookupBatcher(read: (hashes: Buffer[]) => Promise<TokenRow[]>): (hash: Buffer) => Promise<TokenRow | undefined> {
  type Waiter = { resolve: (row: TokenRow | undefined) => void; reject: (err: unknown) => void };
  let waiting = new Map<string, { hash: Buffer; waiters: Waiter[] }>();
  let running = 0;
  const flush = () => {
    if (waiting.size === 0 || running >= LOOKUPS_IN_FLIGHT) return;
    const batch = waiting;
    waiting = new Map();
    running += 1;
    read([...batch.values()].map((w) => w.hash)).then(
      (rows) => {
        const byHash = new Map(rows.map((r) => [Buffer.from(r.token_hash).toString('hex'), r]));
        for (const [key, { waiters }] of batch) for (const w of waiters) w.resolve(byHash.get(key));
      },
      (err) => {
        for (const { waiters } of batch.values()) for (const w of waiters) w.reject(err);
      },
    ).finally(() => {
      running -= 1;
      flush();
    });
  };
  return (hash) => new Promise((resolve, reject) => {
    const key = hash.toString('hex');
    const entry = waiting.get(key);
    if (entry) entry.waiters.push({ resolve, reject });
    else waiting.set(key, { hash, waiters: [{ resolve, reject }] });
    flush();
  });
}
