import { CompiledQuery, sql, type Kysely, type Transaction } from 'kysely';
import type { RetryPolicy } from '../config.ts';
import { SCHEMA, type Db } from '../db/database.ts';
import { PREPARED } from '../db/prepared.ts';
import { isUniqueViolation } from '../db/constraints.ts';
import { allColumns, type CircuitState, type Database, type Endpoint, type EndpointHealth } from '../db/schema.ts';
import type { SignatureAlgorithm } from '../delivery/sign.ts';
import { AppError } from '../errors.ts';
import { newId } from '../ids.ts';
import type { Keyring } from './keyring.ts';
import { DEFAULT_GRACE_SECONDS, insertKey, kindOf, makeKey, rotateLocked } from './keys.ts';

/**
 * The endpoint store: registration (explicit, or on a URL's first webhook), configuration,
 * soft deletion and listing. Every function that creates an endpoint creates its first
 * signing key in the same transaction.
 */

type Executor = Kysely<Database> | Transaction<Database>;

export interface EndpointInput {
  url: string;
  description?: string | undefined;
  enabled?: boolean | undefined;
  headers?: Record<string, string> | undefined;
  retryPolicy?: Partial<RetryPolicy> | null | undefined;
  timeoutMs?: number | null | undefined;
  algorithm?: SignatureAlgorithm | undefined;
  metadata?: Record<string, unknown> | undefined;
  /** A secret of the caller's (`whsec_…`, or `whsk_…` for ed25519), already validated. */
  secret?: string | undefined;
}

export type EndpointPatch = Partial<Omit<EndpointInput, 'secret'>>;

function urlTaken(existingId: string | undefined): AppError {
  return new AppError(409, 'endpoint_url_taken', `an endpoint with this url already exists${existingId ? ` (${existingId})` : ''}`, {
    errors: [{ field: 'url', pointer: '/url', message: 'is already the url of another endpoint' }],
  });
}

async function liveIdForUrl(db: Executor, url: string): Promise<string | undefined> {
  const row = await db.selectFrom('endpoints').select('id').where('url', '=', url).where('deleted_at', 'is', null).executeTakeFirst();
  return row?.id;
}

export async function createEndpoint(db: Db, keyring: Keyring, input: EndpointInput): Promise<Endpoint> {
  const id = newId('endpoint');
  const algorithm = input.algorithm ?? 'hmac-sha256';
  try {
    return await db.transaction().execute(async (trx) => {
      const row = await trx
        .insertInto('endpoints')
        .values({
          id,
          url: input.url,
          description: input.description ?? '',
          enabled: input.enabled ?? true,
          disabled_reason: input.enabled === false ? 'disabled by the API' : null,
          headers: JSON.stringify(input.headers ?? {}),
          retry_policy: input.retryPolicy ? JSON.stringify(input.retryPolicy) : null,
          timeout_ms: input.timeoutMs ?? null,
          signature_algorithm: algorithm,
          metadata: JSON.stringify(input.metadata ?? {}),
        })
        .returningAll()
        .executeTakeFirstOrThrow();
      await insertKey(trx, keyring, id, makeKey(kindOf(algorithm), input.secret));
      return row;
    });
  } catch (err) {
    if (isUniqueViolation(err, 'endpoints_url_live_key')) throw urlTaken(await liveIdForUrl(db, input.url));
    throw err;
  }
}

/**
 * The live endpoint for `url`, registered with defaults and a new key on first use. Runs
 * inside the submitting transaction, so a rolled-back submission leaves no endpoint behind.
 *
 * It reads first and inserts only on a miss: an upsert would lock the endpoint row and so
 * serialize every submission to a busy endpoint. When two first submissions race, the loser's
 * insert waits for the winner's commit, does nothing, and the second read finds the row.
 */
export async function endpointForUrl(trx: Transaction<Database>, keyring: Keyring, url: string): Promise<Endpoint> {
  const found = await liveEndpointForUrl(trx, url);
  if (found) return found;
  const id = newId('endpoint');
  const inserted = await trx
    .insertInto('endpoints')
    .values({ id, url })
    .onConflict((oc) => oc.column('url').where('deleted_at', 'is', null).doNothing())
    .returningAll()
    .executeTakeFirst();
  if (inserted) {
    await insertKey(trx, keyring, id, makeKey('hmac'));
    return inserted;
  }
  return trx.selectFrom('endpoints').selectAll().where('url', '=', url).where('deleted_at', 'is', null).executeTakeFirstOrThrow();
}

/**
 * Every column of an endpoint, named: the reads below are prepared statements (src/db/prepared.ts),
 * and a `SELECT *` prepared before a migration adds a column fails once its table changes
 * (PostgreSQL will not change a prepared statement's result type), where a named list does not.
 */
const ENDPOINT_COLUMNS = allColumns<Endpoint>()([
  'id', 'url', 'description', 'enabled', 'disabled_reason', 'headers', 'retry_policy', 'timeout_ms',
  'signature_algorithm', 'metadata', 'created_at', 'updated_at', 'deleted_at',
]);

/**
 * The texts of the two reads every submission makes, compiled by Kysely once (their text does
 * not depend on the value looked up) and marked at each call to run as named statements.
 * Compiled at every call they cost a walk of the query tree and a fresh string to find the
 * statement's name by. The schema is named here, not left to whichever handle compiles them
 * first: an application's own handle (enqueueWebhook in its transaction) may have none.
 */
const byUrlText = once((db: Executor) => db.withSchema(SCHEMA).selectFrom('endpoints').select(ENDPOINT_COLUMNS).where('url', '=', '').where('deleted_at', 'is', null).compile().sql);
const byIdText = once((db: Executor) => db.withSchema(SCHEMA).selectFrom('endpoints').select(ENDPOINT_COLUMNS).where('id', '=', '').compile().sql);

function once<T>(make: (db: Executor) => T): (db: Executor) => T {
  let made: { value: T } | undefined;
  return (db) => (made ??= { value: make(db) }).value;
}

/** The live (not deleted) endpoint for `url`, if there is one. */
export async function liveEndpointForUrl(db: Executor, url: string): Promise<Endpoint | undefined> {
  const { rows } = await db.executeQuery(CompiledQuery.raw(PREPARED.prepare(byUrlText(db)), [url]) as CompiledQuery<Endpoint>);
  return rows[0];
}

/** An endpoint by id, deleted ones included (their history stays readable). */
export async function getEndpoint(db: Executor, id: string): Promise<Endpoint | undefined> {
  const { rows } = await db.executeQuery(CompiledQuery.raw(PREPARED.prepare(byIdText(db)), [id]) as CompiledQuery<Endpoint>);
  return rows[0];
}

export async function requireEndpoint(db: Executor, id: string): Promise<Endpoint> {
  const endpoint = await getEndpoint(db, id);
  if (!endpoint) throw new AppError(404, 'endpoint_not_found', `no endpoint with id ${JSON.stringify(id)}`);
  return endpoint;
}

/**
 * Applies a partial update. Switching between HMAC and ed25519 needs a key of the other
 * kind: the endpoint gets one at once, and the old key keeps signing for the default grace
 * period so receivers can switch over.
 */
export async function updateEndpoint(db: Db, keyring: Keyring, id: string, patch: EndpointPatch): Promise<Endpoint> {
  try {
    return await db.transaction().execute(async (trx) => {
      const current = await trx.selectFrom('endpoints').selectAll().where('id', '=', id).forUpdate().executeTakeFirst();
      if (!current) throw new AppError(404, 'endpoint_not_found', `no endpoint with id ${JSON.stringify(id)}`);
      if (current.deleted_at) throw new AppError(409, 'endpoint_deleted', 'the endpoint is deleted and cannot be changed');
      const set: Record<string, unknown> = { updated_at: new Date() };
      if (patch.url !== undefined) set.url = patch.url;
      if (patch.description !== undefined) set.description = patch.description;
      if (patch.enabled !== undefined) {
        set.enabled = patch.enabled;
        set.disabled_reason = patch.enabled ? null : 'disabled by the API';
      }
      const enabling = patch.enabled === true && !current.enabled;
      if (patch.headers !== undefined) set.headers = JSON.stringify(patch.headers);
      if (patch.retryPolicy !== undefined) set.retry_policy = patch.retryPolicy === null ? null : JSON.stringify(patch.retryPolicy);
      if (patch.timeoutMs !== undefined) set.timeout_ms = patch.timeoutMs;
      if (patch.metadata !== undefined) set.metadata = JSON.stringify(patch.metadata);
      if (patch.algorithm !== undefined) {
        set.signature_algorithm = patch.algorithm;
        if (kindOf(patch.algorithm) !== kindOf(current.signature_algorithm)) {
          await rotateLocked(trx, keyring, id, { kind: kindOf(patch.algorithm), graceSeconds: DEFAULT_GRACE_SECONDS });
        }
      }
      const updated = await trx.updateTable('endpoints').set(set).where('id', '=', id).returningAll().executeTakeFirstOrThrow();
      if (enabling) {
        // An operator enabling an endpoint overrides what its history says: a fresh, closed
        // circuit, and everything it held goes out again (after the row says enabled).
        await trx.updateTable('endpoint_health').set({
          circuit_state: 'closed', consecutive_failures: 0, window_started_at: new Date(), window_attempts: 0, window_failures: 0,
          opened_at: null, open_count: 0, next_probe_at: null, probe_started_at: null, failing_since: null, updated_at: new Date(),
        }).where('endpoint_id', '=', id).execute();
        await sql`SELECT hookrelay.release_held(${id})`.execute(trx);
      }
      return updated;
    });
  } catch (err) {
    if (patch.url !== undefined && isUniqueViolation(err, 'endpoints_url_live_key')) throw urlTaken(await liveIdForUrl(db, patch.url));
    throw err;
  }
}

/**
 * Soft deletion: the endpoint and its history stay readable, its URL is free for a new
 * endpoint, and webhooks still waiting for it end `dead` with the reason (never silently
 * dropped: each gets a dead letter). Their queued jobs find them dead and complete without an attempt.
 */
export async function deleteEndpoint(db: Db, id: string): Promise<Endpoint> {
  return db.transaction().execute(async (trx) => {
    const current = await trx.selectFrom('endpoints').selectAll().where('id', '=', id).forUpdate().executeTakeFirst();
    if (!current) throw new AppError(404, 'endpoint_not_found', `no endpoint with id ${JSON.stringify(id)}`);
    if (current.deleted_at) return current;
    const now = new Date();
    const killed = await trx
      .updateTable('webhooks')
      .set({ status: 'dead', next_attempt_at: null, last_error: 'endpoint deleted', updated_at: now })
      .where('endpoint_id', '=', id)
      .where('status', 'in', ['pending', 'retrying', 'held'])
      .returning(['id', 'attempts', 'last_status_code'])
      .execute();
    if (killed.length > 0) {
      await trx.insertInto('dead_letters').values(killed.map((w) => ({
        id: newId('deadLetter'),
        webhook_id: w.id,
        endpoint_id: id,
        reason: 'endpoint_deleted' as const,
        last_status_code: w.last_status_code,
        last_error: 'endpoint deleted',
        attempts: w.attempts,
      }))).execute();
    }
    return trx
      .updateTable('endpoints')
      .set({ deleted_at: now, enabled: false, disabled_reason: 'deleted', updated_at: now })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirstOrThrow();
  });
}

export interface EndpointFilter {
  enabled?: boolean | undefined;
  /** Substring of the URL, case-insensitive. */
  url?: string | undefined;
  includeDeleted?: boolean | undefined;
  /** Circuit state of the endpoint's health (closed, open, half_open). */
  healthState?: string | undefined;
}

/**
 * A page of endpoints in id order (ids are time-ordered, so this is creation order), after
 * the id `after`. Asks for one row more than `limit` to know whether another page exists.
 */
export async function listEndpoints(db: Db, filter: EndpointFilter, page: { limit: number; after?: string | undefined }): Promise<{ rows: Endpoint[]; more: boolean }> {
  let q = db.selectFrom('endpoints').selectAll();
  if (!filter.includeDeleted) q = q.where('deleted_at', 'is', null);
  if (filter.enabled !== undefined) q = q.where('enabled', '=', filter.enabled);
  // strpos rather than ILIKE: a substring typed by a user must not act as a pattern (% and _).
  if (filter.url) q = q.where(sql<boolean>`strpos(lower(url), lower(${filter.url})) > 0`);
  if (filter.healthState) {
    const state = filter.healthState as CircuitState;
    q = q.where((eb) => eb.exists(eb.selectFrom('endpoint_health as h').select('h.endpoint_id').whereRef('h.endpoint_id', '=', 'endpoints.id').where('h.circuit_state', '=', state)));
  }
  if (page.after) q = q.where('id', '>', page.after);
  const rows = await q.orderBy('id').limit(page.limit + 1).execute();
  return { rows: rows.slice(0, page.limit), more: rows.length > page.limit };
}

/** Health rows of the given endpoints, by endpoint id. */
export async function healthOf(db: Executor, endpointIds: readonly string[]): Promise<Map<string, EndpointHealth>> {
  if (endpointIds.length === 0) return new Map();
  const rows = await db.selectFrom('endpoint_health').selectAll().where('endpoint_id', 'in', endpointIds).execute();
  return new Map(rows.map((r) => [r.endpoint_id, r]));
}
