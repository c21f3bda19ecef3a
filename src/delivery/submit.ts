import { createHash, randomUUID } from 'node:crypto';
import type { Transaction } from 'kysely';
import { fromKysely, type PgBoss } from 'pg-boss';
import type { RetryPolicy } from '../config.ts';
import type { Db } from '../db/database.ts';
import type { Database } from '../db/schema.ts';
import { isUniqueViolation } from '../db/constraints.ts';
import { endpointForUrl } from '../endpoints/store.ts';
import { AppError } from '../errors.ts';
import { newId } from '../ids.ts';
import { DELIVERY_QUEUE, type DeliveryJob } from './queue.ts';

/**
 * Submission: the webhook row and the job for its first attempt are written in ONE
 * transaction. Commit means accepted; a rollback leaves neither.
 */

export interface WebhookInput {
  /** Normalized http(s) URL. */
  url: string;
  payload: unknown;
  headers: Record<string, string>;
  /** Fully resolved: request fields over server defaults. */
  retryPolicy: RetryPolicy;
  idempotencyKey?: string | undefined;
  /** Hash of the request as submitted, compared when an Idempotency-Key is reused. */
  requestHash?: Buffer | undefined;
  requestId?: string | undefined;
}

export interface Accepted {
  id: string;
  endpointId: string;
  status: 'pending';
  /** True when an earlier request with the same Idempotency-Key already made this webhook. */
  replayed: boolean;
}

/**
 * Writes the webhook and its first job through `trx`, a transaction the caller owns: an
 * application can enqueue a webhook in the same transaction as its own business write, so
 * the webhook exists exactly when that write commits.
 */
export async function enqueueWebhook(trx: Transaction<Database>, boss: PgBoss, input: WebhookInput): Promise<Omit<Accepted, 'replayed'>> {
  const id = newId('webhook');
  const endpointId = await endpointForUrl(trx, input.url);
  await trx
    .insertInto('webhooks')
    .values({
      id,
      endpoint_id: endpointId,
      url: input.url,
      payload: JSON.stringify(input.payload),
      headers: JSON.stringify(input.headers),
      retry_policy: JSON.stringify(input.retryPolicy),
      idempotency_key: input.idempotencyKey ?? null,
      request_hash: input.idempotencyKey ? (input.requestHash ?? null) : null,
      request_id: input.requestId ?? null,
      next_attempt_at: new Date(),
      updated_at: new Date(),
    })
    .execute();
  const job: DeliveryJob = { webhookId: id, attempt: 1 };
  await boss.send(DELIVERY_QUEUE, job, { db: fromKysely(trx), id: randomUUID() });
  return { id, endpointId, status: 'pending' };
}

export async function submitWebhook(db: Db, boss: PgBoss, input: WebhookInput): Promise<Accepted> {
  try {
    const accepted = await db.transaction().execute((trx) => enqueueWebhook(trx, boss, input));
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

/** The earlier answer for a reused Idempotency-Key, or 409 when the request differs. */
export async function findReplay(db: Db, key: string, requestHash: Buffer | undefined): Promise<Accepted | undefined> {
  const row = await db
    .selectFrom('webhooks')
    .select(['id', 'endpoint_id', 'request_hash'])
    .where('idempotency_key', '=', key)
    .executeTakeFirst();
  if (!row) return undefined;
  if (!requestHash || !row.request_hash || !row.request_hash.equals(requestHash)) {
    throw new AppError(409, 'idempotency_conflict', 'Idempotency-Key was already used with a different request body');
  }
  return { id: row.id, endpointId: row.endpoint_id, status: 'pending', replayed: true };
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
