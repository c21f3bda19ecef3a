import { sql } from 'kysely';
import type { Db } from '../db/database.ts';
import type { CircuitState } from '../db/schema.ts';

/**
 * Delivery figures read from PostgreSQL: the same numbers for `GET /api/v1/stats` (JSON) and
 * the database-backed gauges of `GET /metrics`. Read from the tables, not from one process's
 * memory, so they cover every instance sharing the database.
 */

/** How an attempt row maps to an outcome; the same names label hookrelay_attempts_total. */
export const ATTEMPT_OUTCOMES = ['success', 'http_3xx', 'http_4xx', 'http_5xx', 'timeout', 'network', 'blocked'] as const;
export type AttemptOutcome = (typeof ATTEMPT_OUTCOMES)[number];

/**
 * The outcome of an attempt from what was recorded: success, the HTTP status class of a
 * failed answer, or the kind of failure without one (refused and reset connections, DNS, TLS
 * and invalid responses are all `network`).
 */
export function attemptOutcome(ok: boolean, statusCode: number | null, errorClass: string | null): AttemptOutcome {
  if (ok) return 'success';
  if (statusCode !== null) {
    if (statusCode >= 500) return 'http_5xx';
    if (statusCode >= 400) return 'http_4xx';
    return 'http_3xx';
  }
  if (errorClass === 'timeout') return 'timeout';
  if (errorClass === 'blocked') return 'blocked';
  return 'network';
}

/** attemptOutcome() in SQL, over hookrelay.attempts columns. */
const OUTCOME_SQL = sql<AttemptOutcome>`CASE
  WHEN outcome = 'success' THEN 'success'
  WHEN status_code >= 500 THEN 'http_5xx'
  WHEN status_code >= 400 THEN 'http_4xx'
  WHEN status_code IS NOT NULL THEN 'http_3xx'
  WHEN error_class = 'timeout' THEN 'timeout'
  WHEN error_class = 'blocked' THEN 'blocked'
  ELSE 'network' END`;

export interface Backlog {
  pending: number;
  retrying: number;
  held: number;
}

export interface BacklogFigures {
  backlog: Backlog;
  /** Seconds since the oldest pending or retrying webhook was accepted; null when none is. */
  oldestPendingAgeSeconds: number | null;
}

export interface WorstEndpoint {
  endpointId: string;
  url: string;
  healthScore: number;
  circuitState: CircuitState;
  consecutiveFailures: number;
  disabled: boolean;
}

export interface MinuteFigures {
  minute: string;
  accepted: number;
  delivered: number;
  failed: number;
  dead: number;
}

export interface Stats extends BacklogFigures {
  generatedAt: string;
  lastHour: { accepted: number; delivered: number; failedAttempts: number; dead: number; attempts: number; successRate: number | null };
  perMinute: MinuteFigures[];
  attemptsByOutcome: Record<AttemptOutcome, number>;
  worstEndpoints: WorstEndpoint[];
}

/** Endpoints listed by worstEndpoints() and labelled in the health gauges, at most. */
export const WORST_ENDPOINTS = 10;

export async function backlogFigures(db: Db): Promise<BacklogFigures> {
  const rows = await sql<{ status: keyof Backlog; n: number }>`
    SELECT status, count(*)::int AS n FROM hookrelay.webhooks
    WHERE status IN ('pending', 'retrying', 'held') GROUP BY status`.execute(db);
  const backlog: Backlog = { pending: 0, retrying: 0, held: 0 };
  for (const r of rows.rows) backlog[r.status] = r.n;
  const oldest = await sql<{ age: number | null }>`
    SELECT extract(epoch FROM now() - min(created_at))::float8 AS age FROM hookrelay.webhooks
    WHERE status IN ('pending', 'retrying')`.execute(db);
  const age = oldest.rows[0]?.age ?? null;
  return { backlog, oldestPendingAgeSeconds: age === null ? null : Math.max(0, age) };
}

/**
 * Live endpoints in the worst health first: disabled, then open, half-open, closed circuits;
 * within each the lowest score, then the longest run of failures.
 */
export async function worstEndpoints(db: Db, limit = WORST_ENDPOINTS): Promise<WorstEndpoint[]> {
  const rows = await sql<{ id: string; url: string; health_score: number; circuit_state: CircuitState; consecutive_failures: number; enabled: boolean }>`
    SELECT e.id, e.url, h.health_score, h.circuit_state, h.consecutive_failures, e.enabled
    FROM hookrelay.endpoints e JOIN hookrelay.endpoint_health h ON h.endpoint_id = e.id
    WHERE e.deleted_at IS NULL
    ORDER BY e.enabled, CASE h.circuit_state WHEN 'open' THEN 0 WHEN 'half_open' THEN 1 ELSE 2 END,
      h.health_score, h.consecutive_failures DESC, e.id
    LIMIT ${limit}`.execute(db);
  return rows.rows.map((r) => ({
    endpointId: r.id,
    url: r.url,
    healthScore: r.health_score,
    circuitState: r.circuit_state,
    consecutiveFailures: r.consecutive_failures,
    disabled: !r.enabled,
  }));
}

/**
 * Everything `GET /api/v1/stats` answers. The last hour is the current minute and the 59
 * whole minutes before it, so `lastHour` is exactly the sum of `perMinute`.
 */
export async function readStats(db: Db): Promise<Stats> {
  const clock = await sql<{ now: Date; since: Date }>`
    SELECT now() AS now, date_trunc('minute', now()) - interval '59 minutes' AS since`.execute(db);
  const { now, since } = clock.rows[0]!;
  const [figures, minutes, outcomes, worst] = await Promise.all([
    backlogFigures(db),
    sql<{ minute: Date; accepted: number; delivered: number; failed: number; dead: number }>`
      WITH m AS (SELECT generate_series(${since}::timestamptz, date_trunc('minute', ${now}::timestamptz), interval '1 minute') AS minute),
      a AS (SELECT date_trunc('minute', created_at) AS minute, count(*)::int AS n FROM hookrelay.webhooks WHERE created_at >= ${since} GROUP BY 1),
      d AS (SELECT date_trunc('minute', delivered_at) AS minute, count(*)::int AS n FROM hookrelay.webhooks WHERE delivered_at >= ${since} GROUP BY 1),
      f AS (SELECT date_trunc('minute', started_at) AS minute, count(*)::int AS n FROM hookrelay.attempts WHERE started_at >= ${since} AND outcome = 'failure' GROUP BY 1),
      x AS (SELECT date_trunc('minute', dead_at) AS minute, count(*)::int AS n FROM hookrelay.dead_letters WHERE dead_at >= ${since} GROUP BY 1)
      SELECT m.minute, coalesce(a.n, 0) AS accepted, coalesce(d.n, 0) AS delivered, coalesce(f.n, 0) AS failed, coalesce(x.n, 0) AS dead
      FROM m LEFT JOIN a USING (minute) LEFT JOIN d USING (minute) LEFT JOIN f USING (minute) LEFT JOIN x USING (minute)
      ORDER BY m.minute`.execute(db),
    sql<{ outcome: AttemptOutcome; n: number }>`
      SELECT ${OUTCOME_SQL} AS outcome, count(*)::int AS n FROM hookrelay.attempts
      WHERE started_at >= ${since} AND started_at < date_trunc('minute', ${now}::timestamptz) + interval '1 minute' GROUP BY 1`.execute(db),
    worstEndpoints(db),
  ]);
  const perMinute = minutes.rows.map((r) => ({ minute: r.minute.toISOString(), accepted: r.accepted, delivered: r.delivered, failed: r.failed, dead: r.dead }));
  const attemptsByOutcome = Object.fromEntries(ATTEMPT_OUTCOMES.map((o) => [o, 0])) as Record<AttemptOutcome, number>;
  for (const r of outcomes.rows) attemptsByOutcome[r.outcome] = r.n;
  const attempts = ATTEMPT_OUTCOMES.reduce((sum, o) => sum + attemptsByOutcome[o], 0);
  const sum = (k: 'accepted' | 'delivered' | 'failed' | 'dead') => perMinute.reduce((s, m) => s + m[k], 0);
  return {
    generatedAt: now.toISOString(),
    ...figures,
    lastHour: {
      accepted: sum('accepted'),
      delivered: sum('delivered'),
      failedAttempts: sum('failed'),
      dead: sum('dead'),
      attempts,
      successRate: attempts === 0 ? null : attemptsByOutcome.success / attempts,
    },
    perMinute,
    attemptsByOutcome,
    worstEndpoints: worst,
  };
}
