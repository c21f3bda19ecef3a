import { createHash, randomUUID } from 'node:crypto';
import type { Kysely, Transaction } from 'kysely';
import type { PgBoss } from 'pg-boss';
import type { RetryPolicy } from '../config.ts';
import type { Db } from '../db/database.ts';
import type { Database, Endpoint, NewWebhook } from '../db/schema.ts';
import { isUniqueViolation } from '../db/constraints.ts';
import type { Keyring } from '../endpoints/keyring.ts';
import { endpointForUrl, getEndpoint, liveEndpointForUrl } from '../endpoints/store.ts';
import { AppError, badField, fieldError } from '../errors.ts';
import { newId } from '../ids.ts';
import { DELIVERY_QUEUE, type DeliveryJob } from './queue.ts';
import { writeWithJobs } from './with-jobs.ts';

/**
 * Submission: the webhook row and the job for its first attempt are written in ONE
 * transaction. Commit means accepted; a rollback leaves neither.
 */

export interface WebhookInput {
  /** Normalized http(s) URL; its live endpoint is used, or registered on first use. */
  url?: string | undefined;
  /** Or an existing endpoint, by id. Exactly one of url and endpointId is given. */
  endpointId?: string | undefined;
  /** The payload, serialized once: the exact bytes every attempt signs and sends. */
  body: string;
  headers: Record<string, string>;
  /** The webhook's own policy fields; the endpoint's and then the server's fill the rest. */
  retryPolicy?: Partial<RetryPolicy> | undefined;
  idempotencyKey?: string | undefined;
  /** Hash of the request as submitted, compared when an Idempotency-Key is reused. */
  requestHash?: Buffer | undefined;
  requestId?: string | undefined;
  /** W3C traceparent of the submission, already validated (src/observability/traceparent.ts). */
  traceparent?: string | undefined;
}

export interface SubmitDeps {
  boss: PgBoss;
  keyring: Keyring;
  /** Server defaults (HOOKRELAY_RETRY_*). */
  retryDefaults: RetryPolicy;
}

export interface Accepted {
  id: string;
  endpointId: string;
  /** `held` when the endpoint is disabled: kept, and delivered once it is enabled. */
  status: 'pending' | 'held';
  /** True when an earlier request with the same Idempotency-Key already made this webhook. */
  replayed: boolean;
}

/** webhook fields over endpoint fields over server defaults. */
export function resolvePolicy(defaults: RetryPolicy, endpoint: Partial<RetryPolicy> | null, webhook: Partial<RetryPolicy> | undefined): RetryPolicy {
  const policy: RetryPolicy = { ...defaults, ...(endpoint ?? {}), ...(webhook ?? {}) };
  if (policy.maxDelayMs < policy.baseDelayMs) {
    const field = webhook?.maxDelayMs !== undefined ? 'retryPolicy.maxDelayMs' : 'retryPolicy.baseDelayMs';
    throw badField(field, `maxDelayMs (${policy.maxDelayMs}) must not be less than baseDelayMs (${policy.baseDelayMs}) once the endpoint's and the server's defaults are applied`);
  }
  return policy;
}

/**
 * Writes the webhook and its first job through `trx`, a transaction the caller owns: an
 * application can enqueue a webhook in the same transaction as its own business write, so
 * the webhook exists exactly when that write commits.
 */
export async function enqueueWebhook(trx: Transaction<Database>, deps: SubmitDeps, input: WebhookInput): Promise<Omit<Accepted, 'replayed'>> {
  let endpoint;
  if (input.endpointId !== undefined) {
    endpoint = liveEndpoint(input.endpointId, await getEndpoint(trx, input.endpointId));
  } else if (input.url !== undefined) {
    endpoint = await endpointForUrl(trx, deps.keyring, input.url);
  } else {
    throw badField('url', 'is required (or endpointId)');
  }
  return writeWebhook(trx, deps, endpoint, input);
}

/**
 * The webhook row and its first job, written in one statement (src/delivery/with-jobs.ts)
 * through `db`: the caller's transaction, or the pool, where the statement is its own
 * transaction. A held webhook (disabled endpoint) has no job and is one INSERT.
 */
async function writeWebhook(db: Kysely<Database>, deps: SubmitDeps, endpoint: Endpoint, input: WebhookInput): Promise<Omit<Accepted, 'replayed'>> {
  const retryPolicy = resolvePolicy(deps.retryDefaults, endpoint.retry_policy, input.retryPolicy);
  const row = webhookRow(endpoint, input, retryPolicy, new Date());
  const insert = db.insertInto('webhooks').values(row);
  if (row.status === 'held') {
    await insert.execute();
    return { id: row.id, endpointId: endpoint.id, status: 'held' };
  }
  const job = firstJob(row.id, endpoint.id);
  // One text for every lone submission (webhookRow sets every column): prepared.
  await writeWithJobs(db, insert.compile(), (jobDb) => deps.boss.send(DELIVERY_QUEUE, job.data, { db: jobDb, id: job.id, group: job.group }), { prepare: true });
  return { id: row.id, endpointId: endpoint.id, status: 'pending' };
}

/** The endpoint an `endpointId` names, or the 404/409 a submission naming it gets. */
export function liveEndpoint(endpointId: string, endpoint: Endpoint | undefined): Endpoint {
  if (!endpoint) throw new AppError(404, 'endpoint_not_found', `no endpoint with id ${JSON.stringify(endpointId)}`, { errors: [fieldError('endpointId', 'does not name an endpoint')] });
  if (endpoint.deleted_at) throw new AppError(409, 'endpoint_deleted', 'the endpoint is deleted', { errors: [fieldError('endpointId', 'names a deleted endpoint')] });
  return endpoint;
}

/**
 * The webhooks row of one submission: the single place that maps a WebhookInput to columns,
 * shared by enqueueWebhook and the batched insert of group commit (src/delivery/group-commit.ts),
 * so a field added here is stored on both paths.
 */
export function webhookRow(endpoint: Endpoint, input: WebhookInput, retryPolicy: RetryPolicy, now: Date) {
  const held = !endpoint.enabled;
  return {
    id: newId('webhook'),
    endpoint_id: endpoint.id,
    url: endpoint.url,
    body: input.body,
    headers: JSON.stringify(input.headers),
    retry_policy: JSON.stringify(retryPolicy),
    idempotency_key: input.idempotencyKey ?? null,
    request_hash: input.idempotencyKey ? (input.requestHash ?? null) : null,
    request_id: input.requestId ?? null,
    traceparent: input.traceparent ?? null,
    status: held ? ('held' as const) : ('pending' as const),
    next_attempt_at: held ? null : now,
    updated_at: now,
  } satisfies NewWebhook;
}

/**
 * The pg-boss job of a webhook's first attempt, its id made here so a batch needs no RETURNING.
 * Grouped by endpoint like every later attempt's job (src/delivery/record.ts), so the queue's
 * per-endpoint concurrency limit holds from the first attempt on.
 */
export function firstJob(webhookId: string, endpointId: string): { id: string; data: DeliveryJob; group: { id: string } } {
  return { id: randomUUID(), data: { webhookId, attempt: 1 }, group: { id: endpointId } };
}

/**
 * One submission on its own. Its endpoint is read first; then the webhook and its job are
 * one statement, with no BEGIN or COMMIT around it. Reading the endpoint outside the insert's
 * transaction changes nothing: inside it, at READ COMMITTED and without a lock, the read would
 * not keep the endpoint from being disabled or deleted before the commit either, and the
 * worker holds a webhook whose endpoint it finds disabled or deleted (src/delivery/worker.ts).
 * A URL seen for the first time registers its endpoint, so that submission is one transaction,
 * as enqueueWebhook: refused, it leaves no endpoint behind.
 */
export async function submitWebhook(db: Db, deps: SubmitDeps, input: WebhookInput): Promise<Accepted> {
  try {
    let accepted: Omit<Accepted, 'replayed'>;
    const endpoint = await existingEndpoint(db, input);
    if (endpoint) accepted = await writeWebhook(db, deps, endpoint, input);
    else accepted = await db.transaction().execute((trx) => enqueueWebhook(trx, deps, input));
    return { ...accepted, replayed: false };
  } catch (err) {
    // The same key arriving twice at once: the second insert waited for the first commit and
    // hit the unique constraint. Answer it from the committed row.
    if (input.idempotencyKey && isUniqueViolation(err, 'webhooks_idempotency_key_key')) {
      return replay(db, input.idempotencyKey, input.requestHash);
    }
    throw err;
  }
}

/** The endpoint a submission names, or undefined for a URL that has no live endpoint yet. */
async function existingEndpoint(db: Db, input: WebhookInput): Promise<Endpoint | undefined> {
  if (input.endpointId !== undefined) return liveEndpoint(input.endpointId, await getEndpoint(db, input.endpointId));
  if (input.url !== undefined) return liveEndpointForUrl(db, input.url);
  throw badField('url', 'is required (or endpointId)');
}

/** The earlier answer for a reused Idempotency-Key, or 409 when the request differs. */
export async function findReplay(db: Db, key: string, requestHash: Buffer | undefined): Promise<Accepted | undefined> {
  const row = await db
    .selectFrom('webhooks')
    .select(['id', 'endpoint_id', 'request_hash', 'attempts', 'status'])
    .where('idempotency_key', '=', key)
    .executeTakeFirst();
  if (!row) return undefined;
  if (!requestHash || !row.request_hash || !row.request_hash.equals(requestHash)) {
    throw new AppError(409, 'idempotency_conflict', 'Idempotency-Key was already used with a different request body');
  }
  // The answer the first request got: held if it was accepted for a disabled endpoint.
  const status = row.status === 'held' && row.attempts === 0 ? 'held' : 'pending';
  return { id: row.id, endpointId: row.endpoint_id, status, replayed: true };
}

async function replay(db: Db, key: string, requestHash: Buffer | undefined): Promise<Accepted> {
  const found = await findReplay(db, key, requestHash);
  if (!found) throw new Error('idempotency key violated its constraint but no row holds it');
  return found;
}

/** A stable hash of a JSON value: object keys sorted, so key order does not change it. */
export function requestHash(value: unknown): Buffer {
  return createHash('sha256').update(canonicalJson(value)).digest();
}

function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const entries = Object.keys(value).sort().map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`);
  return `{${entries.join(',')}}`;
}
