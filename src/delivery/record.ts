import { randomUUID } from 'node:crypto';
import { fromKysely, type PgBoss } from 'pg-boss';
import type { Db } from '../db/database.ts';
import type { WebhookStatus } from '../db/schema.ts';
import { DELIVERY_QUEUE, type DeliveryJob } from './queue.ts';
import type { SendResult } from './send.ts';

/** What an attempt decided, computed by the worker before anything is written. */
export type Outcome =
  | { kind: 'delivered' }
  | { kind: 'retry'; nextAttempt: number; at: Date }
  | { kind: 'dead'; reason: string };

export interface AttemptRecord {
  job: { id: string; retryCount: number };
  webhookId: string;
  endpointId: string;
  attempt: number;
  startedAt: Date;
  result: SendResult;
  outcome: Outcome;
}

/** Stored response excerpts are at most this many bytes (attempts_response_body_check). */
export const RESPONSE_EXCERPT_BYTES = 1024;

/**
 * Writes everything an attempt changes in ONE transaction: the attempt row, the webhook's new
 * state, the job for the next attempt (if any) and the completion of the current job. Either
 * all of it commits or none, so a crash at any point leaves the current job to be retried and
 * no attempt half-recorded.
 *
 * The update is guarded by the attempt count: if another worker already recorded this attempt
 * (this job was handed out twice after a lost heartbeat), nothing is written and 'stale' is
 * returned.
 */
export async function recordAttempt(db: Db, boss: PgBoss, rec: AttemptRecord): Promise<'recorded' | 'stale'> {
  return db.transaction().execute(async (trx) => {
    const now = new Date();
    const { result, outcome } = rec;
    const status: WebhookStatus = outcome.kind === 'delivered' ? 'delivered' : outcome.kind === 'dead' ? 'dead' : 'retrying';
    const updated = await trx
      .updateTable('webhooks')
      .set({
        status,
        attempts: rec.attempt,
        last_attempt_at: rec.startedAt,
        next_attempt_at: outcome.kind === 'retry' ? outcome.at : null,
        delivered_at: outcome.kind === 'delivered' ? now : null,
        last_status_code: result.statusCode,
        last_error: outcome.kind === 'delivered' ? null : outcome.kind === 'dead' ? `${result.error} (${outcome.reason})` : result.error,
        updated_at: now,
      })
      .where('id', '=', rec.webhookId)
      .where('attempts', '=', rec.attempt - 1)
      .where('status', 'in', ['pending', 'retrying'])
      .executeTakeFirst();
    const pgDb = fromKysely(trx);
    if (updated.numUpdatedRows === 0n) {
      await boss.complete(DELIVERY_QUEUE, rec.job, null, { db: pgDb });
      return 'stale';
    }
    await trx
      .insertInto('attempts')
      .values({
        webhook_id: rec.webhookId,
        attempt: rec.attempt,
        endpoint_id: rec.endpointId,
        started_at: rec.startedAt,
        duration_ms: result.durationMs,
        status_code: result.statusCode,
        outcome: result.ok ? 'success' : 'failure',
        error_class: result.errorClass,
        error: result.error,
        response_body: responseExcerpt(result.responseBody),
      })
      .execute();
    if (outcome.kind === 'retry') {
      const next: DeliveryJob = { webhookId: rec.webhookId, attempt: outcome.nextAttempt };
      await boss.send(DELIVERY_QUEUE, next, { db: pgDb, id: randomUUID(), startAfter: outcome.at });
    }
    await boss.complete(DELIVERY_QUEUE, rec.job, null, { db: pgDb });
    return 'recorded';
  });
}

/** The first bytes of a response as text that fits the column: valid UTF-8, no NUL, ≤ 1 KiB. */
export function responseExcerpt(body: Buffer): string | null {
  if (body.length === 0) return null;
  let text = body.subarray(0, RESPONSE_EXCERPT_BYTES).toString('utf8').replace(/\u0000/g, '\uFFFD');
  // A multi-byte character cut at the limit decodes to U+FFFD, which is 3 bytes: trim until it fits.
  while (Buffer.byteLength(text) > RESPONSE_EXCERPT_BYTES) text = text.slice(0, -1);
  return text;
}
