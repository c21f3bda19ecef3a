import type pg from 'pg';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Db } from '../db/database.ts';
import type { Logger } from '../log.ts';
import { ATTEMPT_OUTCOMES, attemptOutcome, backlogFigures, worstEndpoints, type AttemptOutcome, type BacklogFigures, type WorstEndpoint } from './stats.ts';

/**
 * The Prometheus metrics of one service: its own registry (not prom-client's global one), so
 * several services can run in one process, as the tests do. Counters and histograms count what
 * this process did; the backlog and endpoint gauges are read from PostgreSQL at scrape time
 * (cached for `cacheMs`, so frequent or parallel scrapes cost one round of queries) and
 * describe the whole installation.
 */

export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** Seconds: attempt durations (a receiver answering within ms up to the 15 s default deadline and beyond). */
const ATTEMPT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30, 60];
/** Seconds from an attempt being due to a worker taking it. */
const QUEUE_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600];
const REQUEST_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export const CIRCUIT_STATES = ['closed', 'half_open', 'open'] as const;

export interface MetricsOptions {
  db: Db;
  /** hookrelay's own pool (src/db/database.ts), for the pool usage gauges. */
  pool?: pg.Pool;
  log?: Logger;
  /** How long database-backed figures are reused between scrapes (5 s). */
  cacheMs?: number;
  /** Process metrics (CPU, memory, event loop, GC); on unless false. */
  processMetrics?: boolean;
}

export interface AttemptObservation {
  ok: boolean;
  statusCode: number | null;
  errorClass: string | null;
  durationMs: number;
}

export interface Metrics {
  registry: Registry;
  /** The whole exposition, in the Prometheus text format. */
  render(): Promise<string>;
  webhookAccepted(count?: number): void;
  attemptMade(a: AttemptObservation): void;
  delivered(): void;
  deadLettered(reason: string): void;
  retryScheduled(delayMs: number): void;
  /** Seconds between an attempt being due and a worker starting it. */
  queueLatency(seconds: number): void;
  circuitTransition(transition: string): void;
  endpointDisabled(): void;
  /** `route` is the operation's path template (`/api/v1/webhooks/{id}`), never a raw path. */
  apiRequest(method: string, route: string, status: number, seconds: number): void;
}

export function createMetrics(options: MetricsOptions): Metrics {
  const registry = new Registry();
  const cacheMs = options.cacheMs ?? 5_000;
  if (options.processMetrics !== false) collectDefaultMetrics({ register: registry });

  const accepted = new Counter({ name: 'hookrelay_webhooks_accepted_total', help: 'Webhooks accepted (committed) by this process\'s API.', registers: [registry] });
  const attempts = new Counter({ name: 'hookrelay_attempts_total', help: 'Delivery attempts made by this process, by outcome: success, http_3xx, http_4xx, http_5xx, timeout, network, blocked.', labelNames: ['outcome'] as const, registers: [registry] });
  for (const o of ATTEMPT_OUTCOMES) attempts.inc({ outcome: o }, 0);
  const deliveries = new Counter({ name: 'hookrelay_deliveries_total', help: 'Webhooks delivered (an attempt succeeded) by this process.', registers: [registry] });
  const deadLetters = new Counter({ name: 'hookrelay_dead_letters_total', help: 'Webhooks that died (moved to the dead letters) at an attempt of this process, by reason.', labelNames: ['reason'] as const, registers: [registry] });
  for (const r of ['attempts_exhausted', 'gone']) deadLetters.inc({ reason: r }, 0);
  const retries = new Counter({ name: 'hookrelay_retries_scheduled_total', help: 'Failed attempts after which a retry was scheduled.', registers: [registry] });
  const retryDelay = new Histogram({ name: 'hookrelay_retry_delay_seconds', help: 'Delay of each scheduled retry.', buckets: [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400], registers: [registry] });
  const attemptDuration = new Histogram({ name: 'hookrelay_attempt_duration_seconds', help: 'Duration of delivery attempts (connect to the end of the response), by outcome.', labelNames: ['outcome'] as const, buckets: ATTEMPT_BUCKETS, registers: [registry] });
  const queueLatency = new Histogram({ name: 'hookrelay_queue_latency_seconds', help: 'Time from an attempt being due (accepted, or its retry time) to a worker starting it.', buckets: QUEUE_BUCKETS, registers: [registry] });
  const transitions = new Counter({ name: 'hookrelay_circuit_transitions_total', help: 'Circuit breaker state changes recorded by this process (opened, half_opened, closed, reopened).', labelNames: ['transition'] as const, registers: [registry] });
  const disabled = new Counter({ name: 'hookrelay_endpoints_disabled_total', help: 'Endpoints disabled by this process after failing for too long or answering 410 Gone.', registers: [registry] });
  const requests = new Histogram({ name: 'hookrelay_http_request_duration_seconds', help: 'API request duration by method, route (operation path template) and status code.', labelNames: ['method', 'route', 'status'] as const, buckets: REQUEST_BUCKETS, registers: [registry] });

  // Figures read from PostgreSQL: one round of queries per cacheMs, shared by all gauges.
  let cached: { at: number; value: Promise<DbFigures | undefined> } | undefined;
  const dbFigures = (): Promise<DbFigures | undefined> => {
    const now = Date.now();
    if (!cached || now - cached.at >= cacheMs) {
      cached = {
        at: now,
        value: readDbFigures(options.db).catch((err: unknown) => {
          options.log?.warn('metrics: could not read figures from PostgreSQL', { error: err instanceof Error ? err.message : String(err) });
          cached = undefined;
          return undefined;
        }),
      };
    }
    return cached.value;
  };
  new Gauge({
    name: 'hookrelay_backlog', help: 'Webhooks waiting, by state (pending, retrying, held), in the whole database.', labelNames: ['state'] as const, registers: [registry],
    async collect() {
      const f = await dbFigures();
      if (!f) return this.reset();
      for (const [state, n] of Object.entries(f.backlog.backlog)) this.set({ state }, n);
    },
  });
  new Gauge({
    name: 'hookrelay_oldest_pending_age_seconds', help: 'Age of the oldest pending or retrying webhook (0 when none is waiting).', registers: [registry],
    async collect() {
      const f = await dbFigures();
      if (!f) return this.reset();
      this.set(f.backlog.oldestPendingAgeSeconds ?? 0);
    },
  });
  new Gauge({
    name: 'hookrelay_endpoint_health_score', help: 'Health score (0-100) of the worst endpoints (at most 10, so the label set stays bounded).', labelNames: ['endpoint_id'] as const, registers: [registry],
    async collect() {
      this.reset();
      const f = await dbFigures();
      for (const e of f?.worst ?? []) this.set({ endpoint_id: e.endpointId }, e.healthScore);
    },
  });
  new Gauge({
    name: 'hookrelay_endpoint_circuit_state', help: 'Circuit state of the worst endpoints (at most 10): 1 for the current state, 0 for the others.', labelNames: ['endpoint_id', 'state'] as const, registers: [registry],
    async collect() {
      this.reset();
      const f = await dbFigures();
      for (const e of f?.worst ?? []) for (const state of CIRCUIT_STATES) this.set({ endpoint_id: e.endpointId, state }, e.circuitState === state ? 1 : 0);
    },
  });
  new Gauge({
    name: 'hookrelay_endpoint_consecutive_failures', help: 'Consecutive failed attempts of the worst endpoints (at most 10).', labelNames: ['endpoint_id'] as const, registers: [registry],
    async collect() {
      this.reset();
      const f = await dbFigures();
      for (const e of f?.worst ?? []) this.set({ endpoint_id: e.endpointId }, e.consecutiveFailures);
    },
  });
  new Gauge({
    name: 'hookrelay_endpoints', help: 'Live endpoints by circuit state, and disabled ones (state="disabled"), in the whole database.', labelNames: ['state'] as const, registers: [registry],
    async collect() {
      const f = await dbFigures();
      if (!f) return this.reset();
      for (const [state, n] of Object.entries(f.endpoints)) this.set({ state }, n);
    },
  });
  const pool = options.pool;
  if (pool) {
    new Gauge({ name: 'hookrelay_db_pool_connections', help: 'Connections in hookrelay\'s PostgreSQL pool (pg Pool totalCount).', registers: [registry], collect() { this.set(pool.totalCount); } });
    new Gauge({ name: 'hookrelay_db_pool_idle_connections', help: 'Idle connections in the pool (pg Pool idleCount).', registers: [registry], collect() { this.set(pool.idleCount); } });
    new Gauge({ name: 'hookrelay_db_pool_waiting_requests', help: 'Queries waiting for a pooled connection (pg Pool waitingCount).', registers: [registry], collect() { this.set(pool.waitingCount); } });
  }

  return {
    registry,
    render: () => registry.metrics(),
    webhookAccepted: (count = 1) => accepted.inc(count),
    attemptMade(a) {
      const outcome: AttemptOutcome = attemptOutcome(a.ok, a.statusCode, a.errorClass);
      attempts.inc({ outcome });
      attemptDuration.observe({ outcome }, a.durationMs / 1000);
    },
    delivered: () => deliveries.inc(),
    deadLettered: (reason) => deadLetters.inc({ reason }),
    retryScheduled(delayMs) {
      retries.inc();
      retryDelay.observe(Math.max(0, delayMs) / 1000);
    },
    queueLatency: (seconds) => queueLatency.observe(Math.max(0, seconds)),
    circuitTransition: (transition) => transitions.inc({ transition }),
    endpointDisabled: () => disabled.inc(),
    apiRequest: (method, route, status, seconds) => requests.observe({ method, route, status: String(status) }, seconds),
  };
}

interface DbFigures {
  backlog: BacklogFigures;
  worst: WorstEndpoint[];
  endpoints: Record<'closed' | 'half_open' | 'open' | 'disabled', number>;
}

async function readDbFigures(db: Db): Promise<DbFigures> {
  // One after the other: a scrape holds at most one pooled connection.
  const backlog = await backlogFigures(db);
  const worst = await worstEndpoints(db);
  const counts = await db.selectFrom('endpoints as e')
    .innerJoin('endpoint_health as h', 'h.endpoint_id', 'e.id')
    .where('e.deleted_at', 'is', null)
    .select((eb) => ['h.circuit_state', 'e.enabled', eb.fn.countAll<string>().as('n')])
    .groupBy(['h.circuit_state', 'e.enabled'])
    .execute();
  const endpoints = { closed: 0, half_open: 0, open: 0, disabled: 0 };
  for (const r of counts) {
    const n = Number(r.n);
    if (!r.enabled) endpoints.disabled += n;
    else endpoints[r.circuit_state] += n;
  }
  return { backlog, worst, endpoints };
}
