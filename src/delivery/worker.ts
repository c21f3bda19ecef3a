import type pg from 'pg';
import type { PgBoss, Job, JobResult } from 'pg-boss';
import type { Config } from '../config.ts';
import { QUEUE_SCHEMA, type Db } from '../db/database.ts';
import { byText, PreparedTexts } from '../db/prepared.ts';
import type { Logger } from '../log.ts';
import { createFetchBackoff, DELIVERY_QUEUE, type DeliveryJob } from './queue.ts';
import { claimProbe, createRecorder, deferAttempt, holdWebhook, type JobRef, type Outcome, type Recorder } from './record.ts';
import { admit, DEFAULT_HEALTH_SETTINGS, initialHealth, type HealthSettings } from '../endpoints/health.ts';
import { nextRetry } from './retry-policy.ts';
import { HOP_BY_HOP, type Sender, type SendResult } from './send.ts';
import { signatureHeaders, type SigningKey } from './sign.ts';
import { activeKeys, openSealed } from '../endpoints/keys.ts';
import type { Keyring } from '../endpoints/keyring.ts';
import type { Metrics } from '../observability/metrics.ts';
import { startAttempt, type ObservedAttempt } from '../observability/tracing.ts';

/**
 * The worker only orchestrates. Each fetch claims a batch of jobs and, in the same statement,
 * reads what their attempts need (fetchDeliveries); then for each job:
 *   (stale? complete) → (endpoint at its cap? defer) → sign → send → decide (retry policy) → record.
 * Every decision is made by a pure function; every write happens in `record`. Attempts are
 * recorded by a Recorder, which commits the attempts that finish together in one transaction.
 */

export interface WorkerDeps {
  db: Db;
  boss: PgBoss;
  sender: Sender;
  keyring: Keyring;
  log: Logger;
  config: Pick<Config, 'deliveryTimeoutMs' | 'maxResponseBytes' | 'workerBatchSize' | 'workerConcurrency'> & Partial<Pick<Config, 'endpointConcurrency' | 'queueHeartbeatSeconds' | 'workerPreparedFetch'>>;
  now?: () => number;
  random?: () => number;
  /** Told when an attempt scheduled a retry, so the process can wake itself when it is due. */
  onRetryScheduled?: (at: Date) => void;
  /** Counters and histograms of attempts (GET /metrics); spans go through @opentelemetry/api. */
  metrics?: Metrics;
  /** Circuit breaker settings (DEFAULT_HEALTH_SETTINGS when absent). */
  health?: HealthSettings;
  /** True for a job given back to the queue at shutdown: its attempt is not ours to record. */
  handedBack?: (jobId: string) => boolean;
  /** Records attempts in batches; one per worker (deliverBatch makes its own when absent). */
  recorder?: Recorder;
  /** Attempts in flight per endpoint, shared by the fetch loops of this process. */
  slots?: EndpointSlots;
  /** How long a NOTIFY that may echo a local commit waits for a fetch to cover it (ECHO_MS). */
  echoMs?: number;
}

export interface Worker {
  /** Wakes the fetch loops now (after a local commit), instead of waiting for NOTIFY or a poll. */
  wake(): void;
  /** Stops fetching and waits up to `graceMs` for attempts in flight; the rest go back to the queue. */
  stop(graceMs?: number): Promise<void>;
}

export const USER_AGENT = 'hookrelay/0.1';

/** A worker that lost the race for a probe looks again this much later. */
const PROBE_RACE_DEFER_MS = 1_000;

/** An attempt whose endpoint has its full share of attempts in flight waits this long. */
const ENDPOINT_BUSY_DEFER_MS = 500;

/** Attempts in flight per endpoint when HOOKRELAY_ENDPOINT_CONCURRENCY is not given. */
export const DEFAULT_ENDPOINT_CONCURRENCY = 64;

/**
 * Attempts in flight per endpoint in this process. The queue's own group limit (pg-boss
 * `groupConcurrency`, group id = endpoint id, counted over every instance) keeps a busy
 * endpoint's jobs from being fetched at all; this count is the second line, for jobs queued
 * without a group, which are deferred (as grouped jobs) rather than held here, where they
 * would take slots of the in-flight budget from other endpoints.
 */
export class EndpointSlots {
  readonly limit: number;
  readonly #busy = new Map<string, number>();
  constructor(limit: number) {
    this.limit = limit;
  }
  /** Takes a slot if one is free (always, with `force`: a claimed probe must go out). */
  take(endpointId: string, force = false): boolean {
    const n = this.#busy.get(endpointId) ?? 0;
    if (n >= this.limit && !force) return false;
    this.#busy.set(endpointId, n + 1);
    return true;
  }
  release(endpointId: string): void {
    const n = (this.#busy.get(endpointId) ?? 1) - 1;
    if (n <= 0) this.#busy.delete(endpointId);
    else this.#busy.set(endpointId, n);
  }
}

/** Polling is the backstop for deferred jobs (NOTIFY fires when a job is created, not when it
 * comes due); a retry due sooner than this is woken by a local timer instead. */
const POLL_SECONDS = 5;

/** How long a NOTIFY that may be a local commit's echo waits for a fetch to cover it (startWorker). */
export const ECHO_MS = 10;

export async function startWorker(deps: WorkerDeps): Promise<Worker> {
  const { boss, config, log } = deps;
  const batchSize = config.workerBatchSize;
  // The in-flight budget: fetched jobs whose attempt is not settled yet, over all loops.
  const budget = config.workerBatchSize * config.workerConcurrency;
  const endpointConcurrency = config.endpointConcurrency ?? DEFAULT_ENDPOINT_CONCURRENCY;
  const recorder = deps.recorder ?? createRecorder(deps.db, boss);
  const slots = deps.slots ?? new EndpointSlots(endpointConcurrency);
  const inFlight = new Map<string, JobRef>();
  // Room taken by fetches under way, so that loops fetching at once stay within the budget.
  let reserved = 0;
  const handedBack = new Set<string>();
  const timers = new Set<NodeJS.Timeout>();
  let stopping = false;

  // Wake-ups: a NOTIFY for the queue, a local commit, a deferred job coming due, an attempt
  // settling (a slot of the budget and of its endpoint came free). Each wakes ONE sleeping
  // loop; a loop whose fetch came back full wakes the next, so a burst of work brings in every
  // loop while a trickle costs one fetch per wake-up, not one per loop. A loop woken from
  // idleness fetches after the event, which covers it. When no loop is idle the wake-up is
  // counted (the generation), and the first loop to finish a fetch that started before it
  // fetches once more instead of sleeping; the others sleep, since one fetch after the event
  // covers it. Letting every loop under way fetch again for it cost, at 500 webhooks/s, four
  // empty fetches for each that found work.
  let generation = 0;
  /** The generation when the latest fetch started: every wake-up up to it is covered. */
  let covered = 0;
  /** Loops asleep after an empty fetch (or a failed one): woken, they fetch. */
  const idle = new Set<() => void>();
  /** Loops asleep because the in-flight budget is spent: woken, they only look again. */
  const waitingForRoom = new Set<() => void>();
  let drained: (() => void) | undefined;
  const wakeNow = () => {
    const first = idle.values().next();
    if (!first.done) return first.value();
    generation += 1;
    const waiting = waitingForRoom.values().next();
    if (!waiting.done) waiting.value();
  };
  // Wake-ups of one turn of the event loop are one: the webhooks of a group commit are answered
  // together and each announces itself, and a fetch after the last of them covers them all,
  // where one loop woken for each fetched the batch once and found nothing three times.
  let wakeQueued = false;
  const wake = () => {
    if (wakeQueued) return;
    wakeQueued = true;
    queueMicrotask(() => {
      wakeQueued = false;
      wakeNow();
    });
  };
  const wakeAll = () => {
    generation += 1;
    for (const done of [...idle, ...waitingForRoom]) done();
  };
  const sleep = (ms: number, seen: number, set = idle) => new Promise<void>((resolve) => {
    if (generation !== seen || stopping) return resolve();
    sleepUntilWoken(ms, set, resolve);
  });
  /** An idle loop sleeps unless a wake-up came that no fetch started since covers. */
  const sleepIdle = (ms: number) => new Promise<void>((resolve) => {
    if (generation > covered || stopping) return resolve();
    sleepUntilWoken(ms, idle, resolve);
  });
  const sleepUntilWoken = (ms: number, set: Set<() => void>, resolve: () => void) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      set.delete(done);
      resolve();
    }
    set.add(done);
  };
  // An attempt settling wakes a loop only when that can let a fetch take more: a loop sleeps
  // because the in-flight budget was spent, or the attempt's endpoint was at its limit (its
  // queued jobs may be fetchable now). Otherwise the loops need no help: a loop fetches again
  // after every batch until a fetch comes back empty, and new work is announced. Waking on
  // every settle cost an empty fetch per attempt at 500 webhooks/s.
  const endpointInFlight = new Map<string, number>();
  const announce = wake;
  // A local commit is announced twice: by the API at once (`wake`, below) and by its NOTIFY a
  // moment later, which arrives after the fetch the first started and so could not count as
  // covered by it: at 500 webhooks/s, an empty fetch for each webhook. A NOTIFY that comes
  // within ECHO_MS of a local announcement is therefore held for ECHO_MS, and dropped if a
  // fetch starts meanwhile (that fetch covers it, whosever commit it was). Any other NOTIFY,
  // another process's commit, wakes at once; one taken for an echo waits at most ECHO_MS.
  const echoMs = deps.echoMs ?? ECHO_MS;
  let fetchesStarted = 0;
  let announcedAt = Number.NEGATIVE_INFINITY;
  const announceLocal = () => {
    announcedAt = performance.now();
    announce();
  };
  const notified = () => {
    if (performance.now() - announcedAt > echoMs) return announce();
    const seen = fetchesStarted;
    const timer = setTimeout(() => {
      timers.delete(timer);
      if (fetchesStarted === seen) announce();
    }, echoMs);
    timer.unref();
    timers.add(timer);
  };
  const wakeAt = (at: Date) => {
    const delay = at.getTime() - Date.now();
    if (delay >= POLL_SECONDS * 1000) return;
    const timer = setTimeout(() => {
      timers.delete(timer);
      announce();
    }, Math.max(0, delay));
    timer.unref();
    timers.add(timer);
  };

  const batchDeps: WorkerDeps = { ...deps, recorder, slots, onRetryScheduled: wakeAt, handedBack: (id) => handedBack.has(id) };
  const settle = (job: Job<DeliveryJob>, result: Promise<JobResult>) => {
    void result
      .then(async (r) => {
        // Completions happen in the transactions that record each outcome; only our own faults
        // are left to settle here, as a job-level retry.
        if (r.status === 'failed' && !handedBack.has(job.id)) {
          await boss.fail(DELIVERY_QUEUE, { id: job.id, retryCount: job.retryCount }, (r.output as object | undefined) ?? null);
        }
      })
      .catch((err: unknown) => log.error('could not settle a delivery job; its heartbeat lapses and the queue retries it', { err, jobId: job.id }))
      .finally(() => {
        inFlight.delete(job.id);
        if (inFlight.size === 0) drained?.();
        const group = job.groupId ?? undefined;
        const busy = group === undefined ? 0 : endpointInFlight.get(group) ?? 0;
        if (group !== undefined) {
          if (busy <= 1) endpointInFlight.delete(group);
          else endpointInFlight.set(group, busy - 1);
        }
        if (waitingForRoom.size > 0 || busy >= endpointConcurrency) wake();
      });
  };

  // One for all loops: an outage is logged once, and every loop backs off.
  const fetchBackoff = createFetchBackoff(log);
  const statements = config.workerPreparedFetch === false ? undefined : new StatementNames();
  // A fetch smaller than a full batch is cut to a multiple of a quarter batch, so the fetch
  // statement has a handful of texts (its LIMIT is part of the text), each prepared once.
  const quarter = Math.ceil(batchSize / 4);
  const loop = async () => {
    while (!stopping) {
      const seen = generation;
      let room = Math.min(batchSize, budget - inFlight.size - reserved);
      // Near the budget, wait for a few slots to free rather than fetch one job at a time.
      if (room <= 0 || (room < quarter && inFlight.size > 0)) {
        await sleep(POLL_SECONDS * 1000, seen, waitingForRoom);
        continue;
      }
      if (room < batchSize && room > quarter) room -= room % quarter;
      let jobs: Job<DeliveryJob>[];
      let loaded: Map<string, Loaded>;
      let drained: boolean;
      reserved += room;
      covered = generation;
      fetchesStarted += 1;
      try {
        ({ jobs, loaded, drained } = await fetchDeliveries(boss, deps.keyring, room, endpointConcurrency, statements));
      } catch (err) {
        await sleep(fetchBackoff.failed(err), generation);
        continue;
      } finally {
        reserved -= room;
      }
      fetchBackoff.succeeded();
      // A short batch alone does not say the queue has nothing more for us: pg-boss cuts a
      // fetch to the endpoints' free slots after taking the oldest candidates, so jobs of other
      // endpoints may wait behind them. The fetch says whether it looked at every due job.
      if (jobs.length === room) wake();
      if (jobs.length === 0) {
        // Nothing we may take now: wait for a wake-up, or poll (the backstop for deferred jobs,
        // for which no NOTIFY comes when they come due).
        await sleepIdle(POLL_SECONDS * 1000);
        continue;
      }
      for (const job of jobs) {
        inFlight.set(job.id, { id: job.id, retryCount: job.retryCount });
        if (job.groupId) endpointInFlight.set(job.groupId, (endpointInFlight.get(job.groupId) ?? 0) + 1);
      }
      try {
        const started = await startBatch(batchDeps, jobs, loaded);
        jobs.forEach((job, i) => settle(job, started[i]!));
      } catch (err) {
        // The batch could not even be loaded (the database went away): the queue retries it.
        log.error('delivery batch failed; the queue will retry it', { err, jobs: jobs.length });
        for (const job of jobs) settle(job, Promise.resolve({ id: job.id, status: 'failed', output: { message: err instanceof Error ? err.message : String(err) } }));
      }
      // After a batch that left due jobs behind (a full one, or one cut to the endpoints' free
      // slots), fetch again at once. After one that looked at every due job, a fetch now would
      // come back empty (at 500 webhooks/s that was one fetch in two): sleep until a wake-up,
      // unless one came while this fetch was under way.
      if (drained) await sleepIdle(POLL_SECONDS * 1000);
    }
  };

  // Fetched jobs are ours until settled: their heartbeat keeps another instance's supervisor
  // from handing them out again. A killed process stops heart-beating, which is the point.
  const heartbeatMs = ((config.queueHeartbeatSeconds ?? 10) * 1000) / 2;
  const heartbeat = setInterval(() => {
    if (inFlight.size === 0) return;
    boss.touch(DELIVERY_QUEUE, [...inFlight.values()]).catch((err: unknown) => log.warn('heartbeat of delivery jobs failed', { error: (err as Error)?.message }));
  }, heartbeatMs);
  heartbeat.unref();

  // NOTIFY wakes the loops when a job is queued by any process (queue `notify`); pg-boss's
  // own listener only wakes pg-boss workers, and these loops fetch by themselves.
  const db = boss.getDb();
  const listener = db.listen
    ? await db.executeSql(`SELECT ('pgboss_' || left(encode(sha224('${QUEUE_SCHEMA}'::bytea), 'hex'), 24)) AS channel`)
      .then(({ rows }) => db.listen!(rows[0].channel as string, (payload) => {
        if (payload === DELIVERY_QUEUE) notified();
      }, announce))
      .catch((err: unknown) => {
        log.warn('LISTEN for new delivery jobs failed; polling only', { error: (err as Error)?.message });
        return undefined;
      })
    : undefined;

  const loops = Array.from({ length: config.workerConcurrency }, () => loop());

  return {
    wake: announceLocal,
    async stop(graceMs = Number.POSITIVE_INFINITY) {
      stopping = true;
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      wakeAll();
      await Promise.all(loops);
      await listener?.close().catch(() => undefined);
      let timer: NodeJS.Timeout | undefined;
      const done = await Promise.race([
        new Promise<true>((resolve) => {
          if (inFlight.size === 0) resolve(true);
          drained = () => resolve(true);
        }),
        new Promise<false>((resolve) => {
          if (Number.isFinite(graceMs)) timer = setTimeout(() => resolve(false), graceMs);
        }),
      ]);
      clearTimeout(timer);
      clearInterval(heartbeat);
      if (!done && inFlight.size > 0) {
        // Attempts still running at the end of the grace period are handed back to the queue
        // now (a job-level retry, not a webhook attempt), so another instance takes them at
        // once instead of after a missed heartbeat. The receiver may see them twice.
        const jobs = [...inFlight.values()];
        for (const job of jobs) handedBack.add(job.id);
        log.warn('shutdown grace period over; handing in-flight deliveries back to the queue', { jobs: jobs.length });
        await boss.fail(DELIVERY_QUEUE, jobs, { message: 'worker shut down before the attempt finished' });
      }
    },
  };
}

/**
 * What an attempt needs to know of its webhook (w), its endpoint (e) and the endpoint's circuit
 * (h): read by loadBatch through the query builder and by the fetch statement (`withLoad`).
 */
const LOADED_COLUMNS = [
  'w.id', 'w.endpoint_id', 'w.url', 'w.body', 'w.headers', 'w.retry_policy', 'w.status', 'w.attempts', 'w.request_id', 'w.traceparent', 'w.next_attempt_at',
  'w.attempts_base', 'e.headers as endpoint_headers', 'e.timeout_ms', 'e.signature_algorithm', 'e.enabled', 'e.deleted_at',
  'h.circuit_state', 'h.next_probe_at', 'h.probe_started_at',
] as const;

type LoadedWebhook = Awaited<ReturnType<typeof loadBatch>> extends Map<string, infer V> ? V : never;

/** A fetched job's webhook and its endpoint's signing keys, read with the job. */
export interface Loaded {
  webhook: LoadedWebhook;
  keys: SigningKey[];
}

/** The webhooks of `ids` with their endpoints and circuits, by webhook id. */
export async function loadBatch(db: Db, ids: string[]) {
  const rows = await db
    .selectFrom('webhooks as w')
    .innerJoin('endpoints as e', 'e.id', 'w.endpoint_id')
    .innerJoin('endpoint_health as h', 'h.endpoint_id', 'w.endpoint_id')
    .select([...LOADED_COLUMNS])
    .where('w.id', 'in', ids)
    .execute();
  return new Map(rows.map((r) => [r.id, r]));
}

/** Prefix of the columns the fetch statement adds to each job row (taken off before use). */
const LOADED_PREFIX = '__hr_';

/** The column of the first row that says how many candidates the fetch looked at. */
const CANDIDATES = `${LOADED_PREFIX}candidates`;

const RETURNING = 'RETURNING j.';

/**
 * Adds to the rows of pg-boss's claim how many candidates its `next` CTE took (at most the
 * fetch's LIMIT): pg-boss takes the oldest due jobs up to the LIMIT, then leaves out those
 * past their endpoint's limit, so a short batch alone does not say the queue has no more work
 * for this fetch. Fewer candidates than the LIMIT does: every due job was looked at. A text
 * of another shape is left as it is (and every short batch is followed by another fetch).
 */
function withCandidates(sql: string): string {
  const at = sql.indexOf(RETURNING);
  if (at < 0 || sql.indexOf(RETURNING, at + 1) >= 0 || candidateLimit(sql) === undefined) return sql;
  return `${sql.slice(0, at)}RETURNING (SELECT count(*) FROM next)::int AS "${CANDIDATES}", j.${sql.slice(at + RETURNING.length)}`;
}

/** The LIMIT of the claim's `next` CTE (part of pg-boss's text), if the text has that shape. */
export function candidateLimit(sql: string): number | undefined {
  const at = sql.search(/\bnext AS \(/);
  const limit = at < 0 ? undefined : /\bLIMIT (\d+)\b/.exec(sql.slice(at))?.[1];
  return limit === undefined ? undefined : Number(limit);
}

/**
 * pg-boss's fetch statement, wrapped so that the same round trip also reads what each job's
 * attempt needs: its webhook, endpoint and circuit (one row, by primary keys) and the
 * endpoint's active signing keys, newest first. The claim (pg-boss's UPDATE … RETURNING, with
 * its SKIP LOCKED and per-endpoint limits) is unchanged: it runs as a data-modifying CTE and
 * the outer SELECT joins its rows. Without this, every fetch was followed by a second round
 * trip for the batch, on the path from a webhook's commit to its attempt. Its rows also say
 * how many candidates the claim looked at (withCandidates).
 */
export function withLoad(fetchSql: string): string {
  const columns = [
    // 'w.url' as "__hr_url", 'e.headers as endpoint_headers' as "__hr_endpoint_headers".
    ...LOADED_COLUMNS.map((c) => {
      const [column, as] = c.split(' as ');
      return `${column} AS "${LOADED_PREFIX}${as ?? column!.slice(2)}"`;
    }),
    `(SELECT json_agg(json_build_array(k.id, encode(k.sealed_secret, 'base64')) ORDER BY k.expires_at DESC NULLS FIRST)
        FROM hookrelay.signing_keys k
       WHERE k.endpoint_id = w.endpoint_id AND (k.expires_at IS NULL OR k.expires_at > now())) AS "${LOADED_PREFIX}keys"`,
  ];
  return `WITH fetched AS (${withCandidates(fetchSql)})
    SELECT f.*, l.* FROM fetched f
    LEFT JOIN LATERAL (
      SELECT ${columns.join(',\n        ')}
        FROM hookrelay.webhooks w
        JOIN hookrelay.endpoints e ON e.id = w.endpoint_id
        JOIN hookrelay.endpoint_health h ON h.endpoint_id = w.endpoint_id
       WHERE w.id = f.data->>'webhookId'
    ) l ON true`;
}

/** withLoad and candidateLimit of pg-boss's fetch text, remembered by text (a handful per process). */
const fetchTextOf = byText((text: string) => ({ limit: candidateLimit(text), wrapped: withLoad(text) }));

/**
 * Names for the texts of the fetch statement, and the connections that run them. Planning it
 * costs PostgreSQL several times what running it does (0.5 ms against 0.08 ms for a batch of
 * 100, measured with EXPLAIN ANALYZE on a warm connection), and pg-boss sends it unprepared;
 * prepared under a name, each connection plans each text once. At most `max` texts are named
 * (the rest run unprepared), so a connection holds a few plans, not one per batch size.
 *
 * "Once" needs the session's `plan_cache_mode` at `force_generic_plan`: left at `auto`,
 * PostgreSQL plans a prepared statement anew for its values (a custom plan) whenever its
 * generic plan looks dearer, and for this statement it did so at a third of the runs (658
 * plans for 2,164 runs at 500 webhooks/s, 1.7 ms each). The statement's values cannot change
 * its best plan: one queue name, the states, the group limit, and a LIMIT that is part of the
 * text. So a connection is set so the first time a fetch takes it; the setting stays with it,
 * where pg-boss's own statements (unprepared, planned at every run either way) see it too.
 */
export class StatementNames {
  readonly #texts: PreparedTexts;
  readonly #generic = new WeakSet<pg.PoolClient>();
  constructor(max = 8) {
    this.#texts = new PreparedTexts(max, 'hookrelay_fetch');
  }
  /** The name `text` runs under, given it now if fewer than `max` texts have one. */
  of(text: string): string | undefined {
    return this.#texts.nameOf(this.#texts.prepare(text));
  }
  /** New names from now on: a column's type changed under a prepared plan (SQLSTATE 0A000). */
  forget(): void {
    this.#texts.forget();
  }
  /**
   * Runs the statement `name` on a connection of `pool` that plans it once (above). As
   * `pool.query` does, a connection whose statement failed is closed, not pooled again.
   */
  async run(pool: pg.Pool, name: string, text: string, values: unknown[] | undefined): Promise<pg.QueryResult> {
    const client = await pool.connect();
    let failed: unknown;
    // Checked out, a connection has no listener of the pool's: a socket dying now would be an
    // uncaught 'error'. The statement fails with it too, so the listener only takes note.
    const onError = (err: unknown) => { failed = err; };
    client.on('error', onError);
    try {
      if (!this.#generic.has(client)) {
        await client.query('SET plan_cache_mode = force_generic_plan');
        this.#generic.add(client);
      }
      return await client.query({ name, text, values });
    } catch (err) {
      failed = err;
      throw err;
    } finally {
      client.removeListener('error', onError);
      client.release(failed === undefined ? undefined : (failed as Error));
    }
  }
}

/**
 * Fetches up to `room` delivery jobs (pg-boss `fetch`, at most `groupConcurrency` active per
 * endpoint) and, in the same statement, what their attempts need (`withLoad`). A job whose
 * webhook the statement did not find has no entry in `loaded`; startBatch looks for it again.
 * The statement runs on pg-boss's own pool, as its fetch does; with `statements`, prepared
 * under a name, on connections set to plan it once (StatementNames).
 */
export async function fetchDeliveries(
  boss: PgBoss, keyring: Keyring, room: number, groupConcurrency: number, statements?: StatementNames,
): Promise<{ jobs: Job<DeliveryJob>[]; loaded: Map<string, Loaded>; drained: boolean }> {
  const own = boss.getDb();
  // pg-boss's pool (its adapter for node-postgres keeps it as `pool`, opened by start()).
  const pool = (own as { pool?: pg.Pool }).pool;
  // What the candidates are counted against: the LIMIT in the text, not the size asked for.
  let limit: number | undefined;
  let wrapped: string;
  const db = {
    async executeSql(text: string, values?: unknown[]) {
      ({ limit, wrapped } = fetchTextOf(text));
      const name = pool === undefined ? undefined : statements?.of(wrapped);
      try {
        return name === undefined ? await own.executeSql(wrapped, values) : await statements!.run(pool!, name, wrapped, values);
      } catch (err) {
        if ((err as { code?: string }).code === '0A000') statements?.forget();
        throw err;
      }
    },
  };
  const rows = await boss.fetch<DeliveryJob>(DELIVERY_QUEUE, { batchSize: room, groupConcurrency, db }) as unknown as Array<Record<string, any>>;
  // Every due job was looked at: nothing, or fewer candidates than the LIMIT (see withCandidates).
  const candidates = rows[0]?.[CANDIDATES];
  const drained = rows.length === 0 || (typeof candidates === 'number' && limit !== undefined && candidates < limit);
  const jobs: Job<DeliveryJob>[] = [];
  const loaded = new Map<string, Loaded>();
  const keysOf = new Map<string, SigningKey[] | null>();
  for (const row of rows) {
    // Fresh objects of fixed shape for the job and its webhook, built as literals: they live
    // as long as the attempt (10,000 at once when receivers are slow), and the statement's
    // rows (the job's columns and the webhook's, 29 in all) are garbage as soon as this is done.
    const job = {
      id: row.id, name: row.name, data: row.data, retryCount: row.retryCount, expireInSeconds: row.expireInSeconds,
      heartbeatSeconds: row.heartbeatSeconds, groupId: row.groupId, groupTier: row.groupTier,
    } as Job<DeliveryJob>;
    jobs.push(job);
    const p = LOADED_PREFIX;
    if (row[`${p}id`] === null || row[`${p}id`] === undefined) continue;
    const webhook: LoadedWebhook = {
      id: row[`${p}id`], endpoint_id: row[`${p}endpoint_id`], url: row[`${p}url`], body: row[`${p}body`], headers: row[`${p}headers`],
      retry_policy: row[`${p}retry_policy`], status: row[`${p}status`], attempts: row[`${p}attempts`], request_id: row[`${p}request_id`],
      traceparent: row[`${p}traceparent`], next_attempt_at: row[`${p}next_attempt_at`], attempts_base: row[`${p}attempts_base`],
      endpoint_headers: row[`${p}endpoint_headers`], timeout_ms: row[`${p}timeout_ms`], signature_algorithm: row[`${p}signature_algorithm`],
      enabled: row[`${p}enabled`], deleted_at: row[`${p}deleted_at`], circuit_state: row[`${p}circuit_state`], next_probe_at: row[`${p}next_probe_at`],
      probe_started_at: row[`${p}probe_started_at`],
    };
    // One list per endpoint and batch: the statement read the same keys for each of its jobs.
    let keys = keysOf.get(webhook.endpoint_id);
    if (keys === undefined) {
      const sealed = (row[`${p}keys`] ?? []) as Array<[string, string]>;
      try {
        keys = sealed.map(([id, secret]) => ({ id, secret: openSealed(keyring, id, webhook.endpoint_id, secret) }));
      } catch {
        // A key that does not open (sealed under a master key this process lacks): the jobs
        // are claimed already, so they must not be dropped here; left without an entry,
        // startBatch reads them again and fails them with the keyring's own error, and the
        // queue retries them.
        keys = null;
      }
      keysOf.set(webhook.endpoint_id, keys);
    }
    if (keys !== null) loaded.set(job.id, { webhook, keys });
  }
  // The statement's rows, emptied: node-postgres (8.23) keeps, for the life of each pooled
  // connection, the promise of the query that made the pool open it, and with it that query's
  // result. Fetches of 1,000 rows with their bodies held that way, one per connection, were
  // 14 MB of a heap snapshot taken with 10,000 attempts in flight.
  rows.length = 0;
  return { jobs, loaded, drained };
}

/** Delivers a fetched batch; resolves when every job of it is settled. */
export async function deliverBatch(deps: WorkerDeps, jobs: Job<DeliveryJob>[]): Promise<JobResult[]> {
  return Promise.all(await startBatch(deps, jobs));
}

/**
 * Starts every job of a fetched batch; each promise settles with its own job, so one slow
 * receiver holds only its own. What `fetchDeliveries` read with the jobs is used as it is;
 * the rest of the batch is loaded here (one query for its webhooks, one for their keys).
 */
export async function startBatch(deps: WorkerDeps, jobs: Job<DeliveryJob>[], loaded: ReadonlyMap<string, Loaded> = new Map()): Promise<Promise<JobResult>[]> {
  const unloaded = jobs.filter((job) => !loaded.has(job.id));
  let webhooks = new Map<string, LoadedWebhook>();
  let keys = new Map<string, SigningKey[]>();
  if (unloaded.length > 0) {
    // A job's group is its endpoint, so the keys are read at the same time as the webhooks,
    // not one round trip later; an endpoint the groups did not name is read after.
    const grouped = [...new Set(unloaded.flatMap((j) => (j.groupId ? [j.groupId] : [])))];
    [webhooks, keys] = await Promise.all([
      loadBatch(deps.db, [...new Set(unloaded.map((j) => j.data.webhookId))]),
      activeKeys(deps.db, deps.keyring, grouped),
    ]);
    const asked = new Set(grouped);
    const missing = [...new Set([...webhooks.values()].map((w) => w.endpoint_id))].filter((id) => !asked.has(id));
    if (missing.length > 0) for (const [id, list] of await activeKeys(deps.db, deps.keyring, missing)) keys.set(id, list);
  }
  const recorder = deps.recorder ?? createRecorder(deps.db, deps.boss);
  const slots = deps.slots ?? new EndpointSlots(deps.config.endpointConcurrency ?? DEFAULT_ENDPOINT_CONCURRENCY);
  return jobs.map((job) => {
    const pre = loaded.get(job.id);
    if (pre) return deliverOne({ ...deps, recorder, slots }, job, pre.webhook, pre.keys);
    const webhook = webhooks.get(job.data.webhookId);
    return deliverOne({ ...deps, recorder, slots }, job, webhook, webhook ? keys.get(webhook.endpoint_id) ?? [] : []);
  });
}

async function deliverOne(deps: WorkerDeps & Required<Pick<WorkerDeps, 'recorder' | 'slots'>>, job: Job<DeliveryJob>, webhook: LoadedWebhook | undefined, keys: SigningKey[]): Promise<JobResult> {
  const { db, boss, sender, config } = deps;
  const now = deps.now ?? Date.now;
  const random = deps.random ?? Math.random;
  const { webhookId, attempt } = job.data;
  const log = deps.log.child({ webhookId, attempt, endpointId: webhook?.endpoint_id, requestId: webhook?.request_id ?? undefined });
  let observed: ObservedAttempt | undefined;
  try {
    if (!webhook) {
      // Cannot happen while webhook and job are written together; say so loudly if it does.
      log.error('job refers to a webhook that does not exist; completing it');
      await boss.complete(DELIVERY_QUEUE, job);
      return { id: job.id, status: 'completed' };
    }
    if (webhook.attempts >= attempt || (webhook.status !== 'pending' && webhook.status !== 'retrying')) {
      log.info('stale job: this attempt was already recorded', { recordedAttempts: webhook.attempts, status: webhook.status });
      await boss.complete(DELIVERY_QUEUE, job);
      return { id: job.id, status: 'completed' };
    }
    if (!webhook.enabled || webhook.deleted_at) {
      const held = await holdWebhook(db, boss, job, webhookId, webhook.endpoint_id, attempt);
      if (held === 'held') log.info('endpoint disabled: webhook held until it is enabled again');
      return { id: job.id, status: 'completed' };
    }
    const timeoutMs = webhook.timeout_ms ?? config.deliveryTimeoutMs;
    // A probe whose worker vanished may be claimed again after this long.
    const probeTimeoutMs = timeoutMs + 30_000;
    // Admission reads only the circuit fields; the rest keep their initial values.
    const admission = admit({
      ...initialHealth(new Date(0)),
      circuitState: webhook.circuit_state,
      nextProbeAt: webhook.next_probe_at,
      probeStartedAt: webhook.probe_started_at,
    }, new Date(now()), probeTimeoutMs);
    let probe = false;
    if (admission.action === 'probe') {
      probe = await claimProbe(db, webhook.endpoint_id, probeTimeoutMs);
      if (!probe) {
        const until = new Date(now() + PROBE_RACE_DEFER_MS);
        if (await deferAttempt(db, boss, job, webhookId, webhook.endpoint_id, attempt, until)) deps.onRetryScheduled?.(until);
        return { id: job.id, status: 'completed' };
      }
      log.info('circuit half-open: this attempt is the probe');
    } else if (admission.action === 'defer') {
      if (await deferAttempt(db, boss, job, webhookId, webhook.endpoint_id, attempt, admission.until)) {
        log.debug('attempt deferred, no attempt used', { reason: admission.reason, until: admission.until.toISOString() });
        deps.onRetryScheduled?.(admission.until);
      }
      return { id: job.id, status: 'completed' };
    }
    if (keys.length === 0) throw new Error(`endpoint ${webhook.endpoint_id} has no active signing key`);
    if (!deps.slots.take(webhook.endpoint_id, probe)) {
      const until = new Date(now() + ENDPOINT_BUSY_DEFER_MS);
      if (await deferAttempt(db, boss, job, webhookId, webhook.endpoint_id, attempt, until)) {
        log.debug('attempt deferred, no attempt used', { reason: 'endpoint at its concurrency limit', until: until.toISOString() });
        deps.onRetryScheduled?.(until);
      }
      return { id: job.id, status: 'completed' };
    }
    const body = webhook.body;
    const startedAt = new Date(now());
    let result: SendResult;
    try {
      observed = startAttempt(deps.metrics, { webhookId, endpointId: webhook.endpoint_id, attempt, requestId: webhook.request_id, traceparent: webhook.traceparent, dueAt: webhook.next_attempt_at, now: startedAt.getTime() });
      // Endpoint headers first, the webhook's own over them; ours over both.
      const headers = requestHeaders({ ...lowerKeys(webhook.endpoint_headers), ...lowerKeys(webhook.headers) }, signatureHeaders({
        webhookId,
        timestamp: Math.floor(startedAt.getTime() / 1000),
        body,
        keys,
        algorithm: webhook.signature_algorithm,
      }));
      // The submission's trace continued: same trace id, a new span id for this attempt.
      Object.assign(headers, observed.headers);
      result = await sender.send({ url: webhook.url, headers, body, timeoutMs, maxResponseBytes: config.maxResponseBytes });
    } finally {
      deps.slots.release(webhook.endpoint_id);
    }

    if (deps.handedBack?.(job.id)) {
      log.info('attempt abandoned at shutdown; the queue hands it to another worker', { errorClass: result.errorClass });
      observed.abandon('abandoned at shutdown');
      return { id: job.id, status: 'failed', output: { message: 'abandoned at shutdown' } };
    }

    let outcome: Outcome;
    if (result.ok) {
      outcome = { kind: 'delivered' };
    } else {
      // The policy counts attempts within the current budget (a replay starts a fresh one).
      const decision = nextRetry(webhook.retry_policy, attempt - webhook.attempts_base, random(), {
        statusCode: result.statusCode,
        retryAfter: result.responseHeaders['retry-after'],
      }, now());
      outcome = decision.kind === 'retry'
        ? { kind: 'retry', nextAttempt: attempt + 1, at: new Date(now() + decision.delayMs) }
        : { kind: 'dead', reason: decision.reason, detail: decision.detail };
    }

    const recorded = await deps.recorder.record({
      job, webhookId, endpointId: webhook.endpoint_id, attempt, startedAt, result, outcome, healthSettings: deps.health ?? DEFAULT_HEALTH_SETTINGS, probe,
    });
    observed.end({ result, outcome, recorded, now: now() });
    const facts = { statusCode: result.statusCode, durationMs: result.durationMs, errorClass: result.errorClass, probe };
    if (recorded.transition) log.warn(`circuit ${recorded.transition}`, { ...facts, transition: recorded.transition });
    if (recorded.disabled) log.warn('endpoint disabled', { reason: recorded.disabled });
    if (recorded.status === 'stale') {
      log.warn('attempt made but another worker recorded it first', facts);
    } else if (outcome.kind === 'delivered') {
      log.info('delivered', facts);
    } else if (outcome.kind === 'retry') {
      log.info('attempt failed; retry scheduled', { ...facts, error: result.error, nextAttemptAt: outcome.at.toISOString(), delayMs: outcome.at.getTime() - startedAt.getTime() - result.durationMs });
      deps.onRetryScheduled?.(outcome.at);
    } else {
      log.warn('attempt failed; webhook is dead', { ...facts, error: result.error, reason: outcome.reason });
    }
    return { id: job.id, status: 'completed' };
  } catch (err) {
    // Our own fault (the database went away, most likely): the job is failed and retried by the
    // queue, so the webhook is attempted again rather than lost.
    log.error('delivery job failed; the queue will retry it', { err });
    observed?.abandon(err);
    return { id: job.id, status: 'failed', output: { message: err instanceof Error ? err.message : String(err) } };
  }
}

function lowerKeys(headers: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
}

const OWN_HEADERS = new Set(['content-type', 'content-length', 'host', 'user-agent']);

/**
 * User headers first, then ours: a user header can never replace a signature header,
 * Content-Type, Host, Content-Length or a hop-by-hop header (the API refuses such names too;
 * this is the second line).
 */
export function requestHeaders(user: Record<string, string>, signature: Record<string, string>): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(user)) {
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || OWN_HEADERS.has(lower) || lower.startsWith('webhook-') || lower.startsWith('x-webhook-')) continue;
    headers[lower] = value;
  }
  return {
    ...headers,
    ...signature,
    'content-type': 'application/json',
    'user-agent': USER_AGENT,
    'accept-encoding': 'identity',
  };
}
