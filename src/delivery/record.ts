import { randomUUID } from 'node:crypto';
import { sql, type Transaction } from 'kysely';
import { fromKysely, type PgBoss } from 'pg-boss';
import type { Db } from '../db/database.ts';
import { prepared, preparing } from '../db/prepared.ts';
import { allColumns, type Database, type DeadLetterReason, type EndpointHealth, type WebhookStatus } from '../db/schema.ts';
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
  const [recorded] = await recordAttempts(db, boss, [rec]);
  return recorded!;
}

/**
 * `recordAttempt` for many attempts at once, in ONE transaction of five statements whatever
 * the count (six when some attempts scheduled a retry): the completion of every job; one
 * statement that updates the webhooks (from arrays, guarded by the attempt count as above),
 * inserts the attempts and dead letters of those it updated, and locks their endpoints' health
 * rows (settleAndLock); the next jobs; one update of the health rows; COMMIT. Answers in the
 * order of `recs`. At one attempt per transaction, which is how a worker records at a few
 * hundred webhooks/s, every statement saved is a round trip of the service and of PostgreSQL.
 *
 * Each webhook may appear once (the caller splits duplicates across calls). Health rows are
 * locked in endpoint id order, so two batches touching the same endpoints cannot deadlock on
 * them; the webhook rows are updated in id order for the same reason, and a deadlock the
 * planner still manages to produce fails the batch, which the Recorder then records job by job.
 */
export async function recordAttempts(db: Db, boss: PgBoss, recs: AttemptRecord[]): Promise<Recorded[]> {
  if (recs.length === 0) return [];
  if (new Set(recs.map((r) => r.webhookId)).size !== recs.length) throw new Error('recordAttempts: a webhook appears twice in one batch');
  return db.transaction().execute(async (trx) => {
    const now = new Date();
    const rows = recs.map((rec) => {
      const { result, outcome } = rec;
      const status: WebhookStatus = outcome.kind === 'delivered' ? 'delivered' : outcome.kind === 'dead' ? 'dead' : 'retrying';
      const lastError = outcome.kind === 'delivered' ? null : outcome.kind === 'dead' ? `${result.error} (${outcome.detail})` : result.error;
      return { rec, status, lastError };
    });
    // pg-boss's completion and insert have one text each whatever the batch's size.
    const pgDb = preparing(fromKysely(trx));
    // Stale jobs complete too: their attempt is recorded already, by another worker. First, so
    // that the health rows locked next are held for as short a time as possible.
    await boss.complete(DELIVERY_QUEUE, recs.map((r) => r.job), null, { db: pgDb });

    const sorted = [...rows].sort((a, b) => (a.rec.webhookId < b.rec.webhookId ? -1 : a.rec.webhookId > b.rec.webhookId ? 1 : 0));
    const { rows: locked } = await trx.executeQuery(prepared(settleAndLock(sorted, now).compile(trx)));
    // Every endpoint has its health row (created with it); a missing one fails the batch.
    if (locked.some((row) => row.endpoint_id === null)) throw new Error('recordAttempts: an endpoint has no health row');
    const byWebhook = new Map(rows.map((r) => [r.rec.webhookId, r]));
    const live = locked.flatMap((row) => row.settled_ids.map((id) => byWebhook.get(id)!));

    const retries = live.flatMap(({ rec }) => (rec.outcome.kind === 'retry' ? [{ rec, outcome: rec.outcome }] : []));
    if (retries.length > 0) {
      await boss.insert(DELIVERY_QUEUE, retries.map(({ rec, outcome }) => ({
        id: randomUUID(),
        data: { webhookId: rec.webhookId, attempt: outcome.nextAttempt } satisfies DeliveryJob,
        startAfter: outcome.at,
        group: { id: rec.endpointId },
      })), { db: pgDb });
    }
    // Attempts to one endpoint serialize on its health row, locked by settleAndLock, so the
    // counters stay exact. Within a batch an endpoint's attempts are applied in the order they
    // were made, as consecutive transactions would.
    const answers = new Map<AttemptRecord, Recorded>(recs.map((rec) => [rec, { status: 'stale', transition: null, disabled: null }]));
    if (locked.length === 0) return recs.map((rec) => answers.get(rec)!);
    const states: Array<{ endpoint_id: string } & ReturnType<typeof fromState>> = [];
    const disables: Array<[string, string]> = [];
    for (const health of locked) {
      const attempts = health.settled_ids.map((id) => byWebhook.get(id)!.rec).sort((a, b) => a.startedAt.getTime() - b.startedAt.getTime());
      let state = toState(health);
      let disabled: string | null = null;
      for (const rec of attempts) {
        const next = afterAttempt(state, rec.result.ok, now, rec.healthSettings, rec.probe);
        state = next.state;
        let reason: string | null = null;
        if (rec.outcome.kind === 'dead' && rec.outcome.reason === 'gone') reason = 'the receiver answered 410 Gone';
        else if (next.disable) reason = `failing without a success since ${next.state.failingSince?.toISOString()}`;
        disabled ??= reason;
        answers.set(rec, { status: 'recorded', transition: next.transition, disabled: reason });
      }
      states.push({ endpoint_id: health.endpoint_id, ...fromState(state) });
      if (disabled) disables.push([health.endpoint_id, disabled]);
    }
    // Every endpoint's new state in one statement (the rows are locked above, in id order).
    await trx.executeQuery(prepared(sql`
      UPDATE hookrelay.endpoint_health AS h SET
        circuit_state = v.circuit_state,
        consecutive_failures = v.consecutive_failures,
        window_started_at = v.window_started_at,
        window_attempts = v.window_attempts,
        window_failures = v.window_failures,
        opened_at = v.opened_at,
        open_count = v.open_count,
        next_probe_at = v.next_probe_at,
        probe_started_at = v.probe_started_at,
        last_success_at = v.last_success_at,
        last_failure_at = v.last_failure_at,
        failing_since = v.failing_since,
        health_score = v.health_score,
        updated_at = ${now}::timestamptz
      FROM jsonb_to_recordset(${JSON.stringify(states)}::jsonb) AS v(
        endpoint_id text, circuit_state text, consecutive_failures integer, window_started_at timestamptz,
        window_attempts integer, window_failures integer, opened_at timestamptz, open_count integer,
        next_probe_at timestamptz, probe_started_at timestamptz, last_success_at timestamptz,
        last_failure_at timestamptz, failing_since timestamptz, health_score integer)
      WHERE h.endpoint_id = v.endpoint_id`.compile(trx)));
    for (const [endpointId, reason] of disables) await disableEndpoint(trx, endpointId, reason, now);
    return recs.map((rec) => answers.get(rec)!);
  });
}

/** A webhook's new state after an attempt, as recordAttempts writes it. */
export interface SettledWebhook {
  rec: Pick<AttemptRecord, 'webhookId' | 'attempt' | 'startedAt' | 'result' | 'outcome'>;
  status: WebhookStatus;
  lastError: string | null;
}

/**
 * The UPDATE of the webhooks a batch of attempts settles, guarded by the attempt count and the
 * status (recordAttempts). Raw SQL: the builder cannot say UPDATE … FROM unnest(…). Arrays
 * keep the statement's parameter count fixed (seven) however large the batch.
 */
export function settleWebhooks(rows: SettledWebhook[], now: Date) {
  return sql<{ id: string; endpoint_id: string }>`
      UPDATE hookrelay.webhooks AS w SET
        status = v.status,
        attempts = v.attempt,
        last_attempt_at = v.started_at,
        next_attempt_at = v.next_attempt_at,
        delivered_at = CASE WHEN v.status = 'delivered' THEN ${now}::timestamptz END,
        last_status_code = v.status_code,
        last_error = v.last_error,
        updated_at = ${now}::timestamptz
      FROM unnest(
        ${rows.map((r) => r.rec.webhookId)}::text[],
        ${rows.map((r) => r.rec.attempt)}::int[],
        ${rows.map((r) => r.status)}::text[],
        ${rows.map((r) => r.rec.startedAt.toISOString())}::timestamptz[],
        ${rows.map((r) => (r.rec.outcome.kind === 'retry' ? r.rec.outcome.at.toISOString() : null))}::timestamptz[],
        ${rows.map((r) => r.rec.result.statusCode)}::int[],
        ${rows.map((r) => r.lastError)}::text[]
      ) AS v(id, attempt, status, started_at, next_attempt_at, status_code, last_error)
      WHERE w.id = v.id AND w.attempts = v.attempt - 1 AND w.status IN ('pending', 'retrying')
      RETURNING w.id, w.endpoint_id`;
}

/** An endpoint's health row, locked, with the webhooks of the batch settled for it. */
type LockedHealth = EndpointHealth & { settled_ids: string[] };

/**
 * The health row's columns, named rather than `h.*`: the statement is prepared (src/db/prepared.ts),
 * and PostgreSQL refuses to run a prepared statement whose result type a migration changed,
 * which a column added to the table would do to `h.*`.
 */
const HEALTH_COLUMNS = allColumns<EndpointHealth>()([
  'endpoint_id', 'circuit_state', 'consecutive_failures', 'window_started_at', 'window_attempts', 'window_failures', 'opened_at',
  'open_count', 'next_probe_at', 'probe_started_at', 'last_success_at', 'last_failure_at', 'failing_since', 'health_score', 'updated_at',
]);

/**
 * One statement for the writes of a batch that need no decision of ours: the webhooks' new
 * states (settleWebhooks, as a data-modifying CTE), the attempt rows and dead letters of the
 * webhooks it updated (a stale attempt writes neither), and a FOR UPDATE lock, in endpoint id
 * order, on the health rows of their endpoints, returned with the ids settled for each. One
 * round trip where there were four; PostgreSQL runs the CTEs in one snapshot, and the lock
 * reads the newest committed row as a statement of its own would. An endpoint without a
 * health row comes back with `endpoint_id` null. Raw SQL for the same reason as settleWebhooks.
 */
export function settleAndLock(rows: Array<SettledWebhook & { rec: Pick<AttemptRecord, 'endpointId'> }>, now: Date) {
  const attempts = rows.map((r) => r.rec);
  const dead = rows.flatMap((r) => (r.rec.outcome.kind === 'dead' ? [{ ...r, reason: r.rec.outcome.reason }] : []));
  // Dead letters are the rare case: the statement names their table only when there are some.
  const deadLetters = dead.length === 0 ? sql`` : sql`, dead AS (
        INSERT INTO hookrelay.dead_letters (id, webhook_id, endpoint_id, reason, last_status_code, last_error, attempts)
        SELECT d.* FROM unnest(
          ${dead.map(() => newId('deadLetter'))}::text[],
          ${dead.map((r) => r.rec.webhookId)}::text[],
          ${dead.map((r) => r.rec.endpointId)}::text[],
          ${dead.map((r) => r.reason)}::text[],
          ${dead.map((r) => r.rec.result.statusCode)}::int[],
          ${dead.map((r) => r.lastError)}::text[],
          ${dead.map((r) => r.rec.attempt)}::int[]
        ) AS d(id, webhook_id, endpoint_id, reason, last_status_code, last_error, attempts)
        WHERE d.webhook_id IN (SELECT id FROM settled)
      )`;
  return sql<LockedHealth>`
      WITH settled AS (${settleWebhooks(rows, now)}),
      attempt_rows AS (
        INSERT INTO hookrelay.attempts (webhook_id, attempt, endpoint_id, started_at, duration_ms, status_code, outcome, error_class, error, response_body)
        SELECT a.* FROM unnest(
          ${attempts.map((r) => r.webhookId)}::text[],
          ${attempts.map((r) => r.attempt)}::int[],
          ${attempts.map((r) => r.endpointId)}::text[],
          ${attempts.map((r) => r.startedAt.toISOString())}::timestamptz[],
          ${attempts.map((r) => r.result.durationMs)}::int[],
          ${attempts.map((r) => r.result.statusCode)}::int[],
          ${attempts.map((r) => (r.result.ok ? 'success' : 'failure'))}::text[],
          ${attempts.map((r) => r.result.errorClass)}::text[],
          ${attempts.map((r) => r.result.error)}::text[],
          ${attempts.map((r) => responseExcerpt(r.result.responseBody))}::text[]
        ) AS a(webhook_id, attempt, endpoint_id, started_at, duration_ms, status_code, outcome, error_class, error, response_body)
        WHERE a.webhook_id IN (SELECT id FROM settled)
      )${deadLetters},
      locked AS MATERIALIZED (
        SELECT ${sql.raw(HEALTH_COLUMNS.map((c) => `h.${c}`).join(', '))} FROM hookrelay.endpoint_health h
         WHERE h.endpoint_id IN (SELECT endpoint_id FROM settled)
         ORDER BY h.endpoint_id
           FOR UPDATE OF h
      )
      SELECT l.*, s.ids AS settled_ids
        FROM (SELECT endpoint_id, array_agg(id) AS ids FROM settled GROUP BY endpoint_id) s
        LEFT JOIN locked l ON l.endpoint_id = s.endpoint_id
       ORDER BY s.endpoint_id`;
}

export interface RecorderOptions {
  /** Most attempts in one transaction. */
  maxBatch?: number;
  /** Recording transactions open at once; attempts finishing meanwhile wait for the next one. */
  maxInFlight?: number;
}

export interface Recorder {
  /** Resolves once the attempt's transaction committed (or rejects if it could not be recorded). */
  record(rec: AttemptRecord): Promise<Recorded>;
}

/**
 * Group commit for attempt recording: attempts that finish while a recording transaction is
 * open are gathered and recorded together by the next one, so the cost per attempt falls as
 * the load rises, with no timer and no added wait when the worker is idle. A batch that fails
 * (one bad row, a deadlock, the database going away) is recorded again attempt by attempt,
 * so one bad item fails only its own job.
 */
export function createRecorder(db: Db, boss: PgBoss, options: RecorderOptions = {}): Recorder {
  const maxBatch = options.maxBatch ?? 500;
  const maxInFlight = options.maxInFlight ?? 2;
  type Pending = { rec: AttemptRecord; resolve: (r: Recorded) => void; reject: (err: unknown) => void };
  let queue: Pending[] = [];
  let inFlight = 0;
  let scheduled = false;

  const schedule = () => {
    if (scheduled || inFlight >= maxInFlight || queue.length === 0) return;
    scheduled = true;
    // One turn of the event loop lets the attempts that finished together join one batch.
    setImmediate(() => {
      scheduled = false;
      void flush();
    });
  };

  const flush = async () => {
    if (inFlight >= maxInFlight || queue.length === 0) return;
    const batch: Pending[] = [];
    const rest: Pending[] = [];
    const seen = new Set<string>();
    for (const p of queue) {
      // A webhook twice in the queue (a job handed out twice): the second waits for the next batch.
      if (batch.length < maxBatch && !seen.has(p.rec.webhookId)) {
        seen.add(p.rec.webhookId);
        batch.push(p);
      } else {
        rest.push(p);
      }
    }
    queue = rest;
    inFlight += 1;
    try {
      const answers = await recordAttempts(db, boss, batch.map((p) => p.rec));
      batch.forEach((p, i) => p.resolve(answers[i]!));
    } catch (err) {
      // Alone, the failure is this attempt's own; in a batch, each attempt is tried alone.
      if (batch.length === 1) batch[0]!.reject(err);
      else await Promise.all(batch.map((p) => recordAttempts(db, boss, [p.rec]).then(([r]) => p.resolve(r!), p.reject)));
    } finally {
      inFlight -= 1;
      schedule();
    }
  };

  return {
    record(rec) {
      return new Promise<Recorded>((resolve, reject) => {
        queue.push({ rec, resolve, reject });
        schedule();
      });
    },
  };
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
      await boss.send(DELIVERY_QUEUE, again, { db: pgDb, id: randomUUID(), group: { id: endpointId } });
    }
    await boss.complete(DELIVERY_QUEUE, job, null, { db: pgDb });
    return !acted ? 'stale' : enabled ? 'requeued' : 'held';
  });
}

/**
 * The circuit is open: the same attempt is queued again for `until`, without using an
 * attempt, and the current job completes.
 */
export async function deferAttempt(db: Db, boss: PgBoss, job: JobRef, webhookId: string, endpointId: string, attempt: number, until: Date): Promise<boolean> {
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
      await boss.send(DELIVERY_QUEUE, again, { db: pgDb, id: randomUUID(), startAfter: until, group: { id: endpointId } });
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
