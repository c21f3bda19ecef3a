import { randomUUID } from 'node:crypto';
import { sql, type Transaction } from 'kysely';
import { fromKysely, type PgBoss } from 'pg-boss';
import type { Db } from '../db/database.ts';
import type { Database, DeadLetterReason, EndpointHealth, WebhookStatus } from '../db/schema.ts';
import { afterAttempt, type HealthSettings, type HealthState, type Transition } from '../endpoints/health.ts';
import { newId } from '../ids.ts';
import { DELIVERY_QUEUE, type DeliveryJob } from './queue.ts';
import type { SendResult } from './send.ts';

/** What an attempt decided, computed by the worker before anything is written. */
export type Outcome =
  | { kind: 'delivered' }
  | { kind: 'retry'; nextAttempt: number; at: Date }
  | { kind: 'dead'; reason: Exclude<DeadLetterReason, 'endpoint_deleted'>; detail: string };

export interface JobRef {
  id: string;
  retryCount: number;
}

export interface AttemptRecord {
  job: JobRef;
  webhookId: string;
  endpointId: string;
  attempt: number;
  startedAt: Date;
  result: SendResult;
  outcome: Outcome;
  healthSettings: HealthSettings;
  /** This attempt was the circuit's half-open probe. */
  probe: boolean;
}

export interface Recorded {
  status: 'recorded' | 'stale';
  transition: Transition;
  /** Why the endpoint was disabled by this attempt, if it was. */
  disabled: string | null;
}

/** Stored response excerpts are at most this many bytes (attempts_response_body_check). */
export const RESPONSE_EXCERPT_BYTES = 1024;

/**
 * Writes everything an attempt changes in ONE transaction: the attempt row, the webhook's new
 * state, the job for the next attempt or the dead letter, the endpoint's health (and its
 * disabling, after a 410 or days of failure), and the completion of the current job. Either
 * all of it commits or none, so a crash at any point leaves the current job to be retried and
 * no attempt half-recorded.
 *
 * The update is guarded by the attempt count: if another worker already recorded this attempt
 * (this job was handed out twice after a lost heartbeat), nothing is written and 'stale' is
 * returned.
 */
export async function recordAttempt(db: Db, boss: PgBoss, rec: AttemptRecord): Promise<Recorded> {
  return db.transaction().execute(async (trx) => {
    const now = new Date();
    const { result, outcome } = rec;
    const status: WebhookStatus = outcome.kind === 'delivered' ? 'delivered' : outcome.kind === 'dead' ? 'dead' : 'retrying';
    const lastError = outcome.kind === 'delivered' ? null : outcome.kind === 'dead' ? `${result.error} (${outcome.detail})` : result.error;
    const updated = await trx
      .updateTable('webhooks')
      .set({
        status,
        attempts: rec.attempt,
        last_attempt_at: rec.startedAt,
        next_attempt_at: outcome.kind === 'retry' ? outcome.at : null,
        delivered_at: outcome.kind === 'delivered' ? now : null,
        last_status_code: result.statusCode,
        last_error: lastError,
        updated_at: now,
      })
      .where('id', '=', rec.webhookId)
      .where('attempts', '=', rec.attempt - 1)
      .where('status', 'in', ['pending', 'retrying'])
      .executeTakeFirst();
    const pgDb = fromKysely(trx);
    if (updated.numUpdatedRows === 0n) {
      await boss.complete(DELIVERY_QUEUE, rec.job, null, { db: pgDb });
      return { status: 'stale', transition: null, disabled: null };
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
    } else if (outcome.kind === 'dead') {
      await trx
        .insertInto('dead_letters')
        .values({
          id: newId('deadLetter'),
          webhook_id: rec.webhookId,
          endpoint_id: rec.endpointId,
          reason: outcome.reason,
          last_status_code: result.statusCode,
          last_error: lastError,
          attempts: rec.attempt,
        })
        .execute();
    }
    await boss.complete(DELIVERY_QUEUE, rec.job, null, { db: pgDb });

    // Last, so the endpoint's health row is locked for as short a time as possible: attempts
    // to one endpoint serialize here, and the counters stay exact.
    const health = await trx.selectFrom('endpoint_health').selectAll().where('endpoint_id', '=', rec.endpointId).forUpdate().executeTakeFirstOrThrow();
    const next = afterAttempt(toState(health), result.ok, now, rec.healthSettings, rec.probe);
    await trx.updateTable('endpoint_health').set({ ...fromState(next.state), updated_at: now }).where('endpoint_id', '=', rec.endpointId).execute();
    let disabled: string | null = null;
    if (outcome.kind === 'dead' && outcome.reason === 'gone') disabled = 'the receiver answered 410 Gone';
    else if (next.disable) disabled = `failing without a success since ${next.state.failingSince?.toISOString()}`;
    if (disabled) await disableEndpoint(trx, rec.endpointId, disabled, now);
    return { status: 'recorded', transition: next.transition, disabled };
  });
}

/** Disables an endpoint (if enabled): its webhooks are held from now on, nothing is dropped. */
export async function disableEndpoint(trx: Transaction<Database>, endpointId: string, reason: string, now = new Date()): Promise<void> {
  await trx
    .updateTable('endpoints')
    .set({ enabled: false, disabled_reason: reason, updated_at: now })
    .where('id', '=', endpointId)
    .where('enabled', '=', true)
    .execute();
}

/**
 * The endpoint is disabled: the webhook is `held` (no attempt used, no job left) until the
 * endpoint is enabled again, which re-queues it. The endpoint row is share-locked and read
 * again: if an enabling committed since the batch was loaded, the attempt is queued again
 * at once instead, so nothing stays held on an enabled endpoint.
 */
export async function holdWebhook(db: Db, boss: PgBoss, job: JobRef, webhookId: string, endpointId: string, attempt: number): Promise<'held' | 'requeued' | 'stale'> {
  return db.transaction().execute(async (trx) => {
    const pgDb = fromKysely(trx);
    const endpoint = await trx.selectFrom('endpoints').select(['enabled', 'deleted_at']).where('id', '=', endpointId).forShare().executeTakeFirstOrThrow();
    const enabled = endpoint.enabled && !endpoint.deleted_at;
    const updated = await trx
      .updateTable('webhooks')
      .set(enabled ? { updated_at: new Date() } : { status: 'held', next_attempt_at: null, updated_at: new Date() })
      .where('id', '=', webhookId)
      .where('attempts', '=', attempt - 1)
      .where('status', 'in', ['pending', 'retrying'])
      .executeTakeFirst();
    const acted = updated.numUpdatedRows > 0n;
    if (acted && enabled) {
      const again: DeliveryJob = { webhookId, attempt };
      await boss.send(DELIVERY_QUEUE, again, { db: pgDb, id: randomUUID() });
    }
    await boss.complete(DELIVERY_QUEUE, job, null, { db: pgDb });
    return !acted ? 'stale' : enabled ? 'requeued' : 'held';
  });
}

/**
 * The circuit is open: the same attempt is queued again for `until`, without using an
 * attempt, and the current job completes.
 */
export async function deferAttempt(db: Db, boss: PgBoss, job: JobRef, webhookId: string, attempt: number, until: Date): Promise<boolean> {
  return db.transaction().execute(async (trx) => {
    const updated = await trx
      .updateTable('webhooks')
      .set({ next_attempt_at: until, updated_at: new Date() })
      .where('id', '=', webhookId)
      .where('attempts', '=', attempt - 1)
      .where('status', 'in', ['pending', 'retrying'])
      .executeTakeFirst();
    const pgDb = fromKysely(trx);
    if (updated.numUpdatedRows > 0n) {
      const again: DeliveryJob = { webhookId, attempt };
      await boss.send(DELIVERY_QUEUE, again, { db: pgDb, id: randomUUID(), startAfter: until });
    }
    await boss.complete(DELIVERY_QUEUE, job, null, { db: pgDb });
    return updated.numUpdatedRows > 0n;
  });
}

/**
 * Claims the half-open probe for an endpoint: exactly one of the workers that find the
 * circuit due for a probe wins (the row update is atomic); the others defer.
 */
export async function claimProbe(db: Db, endpointId: string, probeTimeoutMs: number): Promise<boolean> {
  const claimed = await db
    .updateTable('endpoint_health')
    .set({ circuit_state: 'half_open', probe_started_at: sql<Date>`now()`, updated_at: sql<Date>`now()` })
    .where('endpoint_id', '=', endpointId)
    .where((eb) => eb.or([
      eb.and([eb('circuit_state', '=', 'open'), eb('next_probe_at', '<=', sql<Date>`now()`)]),
      eb.and([eb('circuit_state', '=', 'half_open'), eb('probe_started_at', '<', sql<Date>`now() - ${probeTimeoutMs} * interval '1 millisecond'`)]),
    ]))
    .executeTakeFirst();
  return claimed.numUpdatedRows > 0n;
}

export function toState(row: EndpointHealth): HealthState {
  return {
    circuitState: row.circuit_state,
    consecutiveFailures: row.consecutive_failures,
    windowStartedAt: row.window_started_at,
    windowAttempts: row.window_attempts,
    windowFailures: row.window_failures,
    openedAt: row.opened_at,
    openCount: row.open_count,
    nextProbeAt: row.next_probe_at,
    probeStartedAt: row.probe_started_at,
    lastSuccessAt: row.last_success_at,
    lastFailureAt: row.last_failure_at,
    failingSince: row.failing_since,
    healthScore: row.health_score,
  };
}

function fromState(s: HealthState) {
  return {
    circuit_state: s.circuitState,
    consecutive_failures: s.consecutiveFailures,
    window_started_at: s.windowStartedAt,
    window_attempts: s.windowAttempts,
    window_failures: s.windowFailures,
    opened_at: s.openedAt,
    open_count: s.openCount,
    next_probe_at: s.nextProbeAt,
    probe_started_at: s.probeStartedAt,
    last_success_at: s.lastSuccessAt,
    last_failure_at: s.lastFailureAt,
    failing_since: s.failingSince,
    health_score: s.healthScore,
  };
}

/** The first bytes of a response as text that fits the column: valid UTF-8, no NUL, ≤ 1 KiB. */
export function responseExcerpt(body: Buffer): string | null {
  if (body.length === 0) return null;
  let text = body.subarray(0, RESPONSE_EXCERPT_BYTES).toString('utf8').replace(/\u0000/g, '\uFFFD');
  // A multi-byte character cut at the limit decodes to U+FFFD, which is 3 bytes: trim until it fits.
  while (Buffer.byteLength(text) > RESPONSE_EXCERPT_BYTES) text = text.slice(0, -1);
  return text;
}
