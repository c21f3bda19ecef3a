import type { Kysely, Transaction } from 'kysely';
import type { Db } from '../db/database.ts';
import type { Database, Endpoint } from '../db/schema.ts';
import { endpointForUrl } from '../endpoints/store.ts';
import { AppError, badField } from '../errors.ts';
import { DELIVERY_QUEUE } from './queue.ts';
import { writeWithJobs } from './with-jobs.ts';
import { firstJob, liveEndpoint, resolvePolicy, submitWebhook, webhookRow, type Accepted, type SubmitDeps, type WebhookInput } from './submit.ts';

/**
 * Group commit for submissions. One transaction per request caps ingest at what PostgreSQL
 * can commit one by one (about 1.7k/s here); most of a commit is the WAL flush, which costs
 * the same for one row as for a hundred. So submissions that arrive while earlier commits
 * are in flight wait in a queue, and the next free slot writes all of them in ONE
 * transaction: after the endpoints' read, one statement of every webhook and, through
 * `boss.insert()`, every job (and so one NOTIFY), which as a statement of its own commits
 * when it ends. Each caller is answered only after the commit of its own batch, so a 202
 * still means "committed".
 *
 * There is no timer: a submission that finds a free slot is written at once, so a quiet
 * service adds no latency, and batches grow only as far as load makes them.
 *
 * Semantics are those of submitWebhook, item by item: a bad item (unknown or deleted
 * endpoint, a retry policy that does not add up) is refused alone while the rest of its
 * batch commits. When the batch itself cannot commit (an Idempotency-Key given twice in the
 * batch, a key that a concurrent commit took, a deadlock, any error PostgreSQL reports) the
 * batch is rolled back and every item is submitted on its own, where submitWebhook answers a taken
 * key from the committed row: one caller's conflict never fails another caller.
 */

export interface GroupCommitOptions {
  /** Most submissions written in one transaction. (Default: 100) */
  maxBatch?: number;
  /**
   * Commits in flight at once; a batch is flushed whenever fewer are. Two to four keep
   * PostgreSQL busy while the next batch gathers. (Default: 3)
   */
  maxInFlight?: number;
}

export interface GroupCommit {
  /** Resolves after the COMMIT that made the webhook; rejects as submitWebhook would. */
  submit(input: WebhookInput): Promise<Accepted>;
  /** Counters for benchmarks and tests: batches committed, submissions in them, fallbacks. */
  stats(): { batches: number; items: number; fallbacks: number; largestBatch: number; peakInFlight: number };
}

interface Waiting {
  input: WebhookInput;
  resolve(accepted: Accepted): void;
  reject(err: unknown): void;
}

export function createGroupCommit(db: Db, deps: SubmitDeps, options: GroupCommitOptions = {}): GroupCommit {
  const maxBatch = options.maxBatch ?? 100;
  const maxInFlight = options.maxInFlight ?? 3;
  const queue: Waiting[] = [];
  let inFlight = 0;
  let scheduled = false;
  const counters = { batches: 0, items: 0, fallbacks: 0, largestBatch: 0, peakInFlight: 0 };

  // Deferred to the end of the current tick, so submissions parsed in the same turn of the
  // event loop share a batch even when a slot is free.
  const schedule = () => {
    if (scheduled) return;
    scheduled = true;
    process.nextTick(flush);
  };

  function flush() {
    scheduled = false;
    while (inFlight < maxInFlight && queue.length > 0) {
      const batch = queue.splice(0, maxBatch);
      inFlight += 1;
      counters.peakInFlight = Math.max(counters.peakInFlight, inFlight);
      counters.batches += 1;
      counters.items += batch.length;
      counters.largestBatch = Math.max(counters.largestBatch, batch.length);
      // run() settles every caller itself; this catch is for a fault of our own in it, so no
      // caller is left waiting and no rejection goes unhandled.
      void run(batch).catch((err: unknown) => {
        for (const w of batch) w.reject(err);
      }).finally(() => {
        inFlight -= 1;
        if (queue.length > 0) schedule();
      });
    }
  }

  async function run(batch: Waiting[]): Promise<void> {
    if (batch.length === 1 || hasDuplicateKey(batch)) {
      if (batch.length > 1) counters.fallbacks += 1;
      await oneByOne(batch);
      return;
    }
    let outcomes: Outcome[];
    try {
      outcomes = await writeBatch(db, deps, batch.map((w) => w.input));
    } catch (err) {
      // Without an answer from PostgreSQL (a connection lost, at COMMIT say) the batch may or
      // may not have committed: every caller gets the error, as one lone submission would,
      // rather than a second try that could store its webhook twice.
      if (!isServerError(err)) {
        for (const w of batch) w.reject(err);
        return;
      }
      // PostgreSQL refused the batch, so it rolled back as a whole and nothing of it is
      // stored. Each item gets its own transaction and its own answer (a taken key is
      // answered from the committed row).
      counters.fallbacks += 1;
      await oneByOne(batch);
      return;
    }
    batch.forEach((w, i) => {
      const outcome = outcomes[i]!;
      if ('error' in outcome) w.reject(outcome.error);
      else w.resolve(outcome.accepted);
    });
  }

  async function oneByOne(batch: Waiting[]): Promise<void> {
    await Promise.all(batch.map((w) => submitWebhook(db, deps, w.input).then(w.resolve, w.reject)));
  }

  return {
    submit(input) {
      return new Promise<Accepted>((resolve, reject) => {
        queue.push({ input, resolve, reject });
        schedule();
      });
    },
    stats: () => ({ ...counters }),
  };
}

/** An error PostgreSQL reported (it carries a SQLSTATE), as opposed to a lost connection. */
function isServerError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code);
}

function hasDuplicateKey(batch: Waiting[]): boolean {
  const keys = new Set<string>();
  for (const { input } of batch) {
    if (input.idempotencyKey === undefined) continue;
    if (keys.has(input.idempotencyKey)) return true;
    keys.add(input.idempotencyKey);
  }
  return false;
}

type Outcome = { accepted: Accepted } | { error: unknown };

/**
 * Writes a batch through `db`: endpoints looked up in one query per kind (id, url), then one
 * statement of every webhook and every job (src/delivery/with-jobs.ts). Through the pool
 * that statement is the batch's transaction; a batch with a first-seen URL registers its
 * endpoint and writes in one transaction instead, so a batch that fails leaves no endpoint.
 * Items with bad input get their error as an outcome and write nothing; any thrown error is
 * the batch's, and nothing of it is stored.
 */
export async function writeBatch(db: Kysely<Database>, deps: SubmitDeps, inputs: WebhookInput[]): Promise<Outcome[]> {
  const ids = [...new Set(inputs.flatMap((i) => (i.endpointId !== undefined ? [i.endpointId] : [])))];
  const urls = [...new Set(inputs.flatMap((i) => (i.endpointId === undefined && i.url !== undefined ? [i.url] : [])))];
  const byId = new Map<string, Endpoint>();
  const byUrl = new Map<string, Endpoint>();
  if (ids.length > 0) {
    for (const e of await db.selectFrom('endpoints').selectAll().where('id', 'in', ids).execute()) byId.set(e.id, e);
  }
  if (urls.length > 0) {
    for (const e of await db.selectFrom('endpoints').selectAll().where('url', 'in', urls).where('deleted_at', 'is', null).execute()) byUrl.set(e.url, e);
  }

  const refuse = (error: unknown): Outcome => ({ error });
  const check = (input: WebhookInput, endpoint: Endpoint | null) => {
    // A URL seen for the first time gets an endpoint with no policy of its own; its
    // submission is checked against that before the endpoint is made, so a refused
    // submission leaves no endpoint behind (as in enqueueWebhook, where it rolls back).
    resolvePolicy(deps.retryDefaults, endpoint?.retry_policy ?? null, input.retryPolicy);
  };
  const outcomes: (Outcome | undefined)[] = inputs.map((input) => {
    try {
      if (input.endpointId !== undefined) check(input, liveEndpoint(input.endpointId, byId.get(input.endpointId)));
      else if (input.url !== undefined) check(input, byUrl.get(input.url) ?? null);
      else throw badField('url', 'is required (or endpointId)');
      return undefined;
    } catch (err) {
      if (err instanceof AppError) return refuse(err);
      throw err;
    }
  });

  // First-seen URLs, in sorted order as the keys below, so two batches wait for each other's
  // locks in one order and never deadlock. Registered one by one: rare, and endpointForUrl
  // already handles two first submissions racing from different batches.
  const firstSeen = [...urls].sort().filter((url) => !byUrl.has(url) && inputs.some((input, i) => outcomes[i] === undefined && input.endpointId === undefined && input.url === url));
  const write = async (trx: Kysely<Database>) => {
    for (const url of firstSeen) byUrl.set(url, await endpointForUrl(trx as Transaction<Database>, deps.keyring, url));
    return insertBatch(trx, deps, inputs, outcomes, (input) => (input.endpointId !== undefined ? byId.get(input.endpointId)! : byUrl.get(input.url!)!));
  };
  if (firstSeen.length === 0 || db.isTransaction) return write(db);
  return db.transaction().execute(write);
}

/** The webhooks and jobs of the items not yet refused, in one statement through `db`. */
async function insertBatch(db: Kysely<Database>, deps: SubmitDeps, inputs: WebhookInput[], outcomes: (Outcome | undefined)[], endpointOf: (input: WebhookInput) => Endpoint): Promise<Outcome[]> {
  const now = new Date();
  const rows: ReturnType<typeof webhookRow>[] = [];
  inputs.forEach((input, i) => {
    if (outcomes[i] !== undefined) return;
    const endpoint = endpointOf(input);
    try {
      // Again with the endpoint as found: one registered meanwhile by someone else may carry a policy.
      const policy = resolvePolicy(deps.retryDefaults, endpoint.retry_policy, input.retryPolicy);
      const row = webhookRow(endpoint, input, policy, now);
      rows.push(row);
      outcomes[i] = { accepted: { id: row.id, endpointId: endpoint.id, status: row.status, replayed: false } };
    } catch (err) {
      if (err instanceof AppError) outcomes[i] = { error: err };
      else throw err;
    }
  });

  rows.sort((a, b) => ((a.idempotency_key ?? '') < (b.idempotency_key ?? '') ? -1 : (a.idempotency_key ?? '') > (b.idempotency_key ?? '') ? 1 : 0));
  const insert = db.insertInto('webhooks').values(rows);
  const jobs = rows.filter((r) => r.status === 'pending').map((r) => firstJob(r.id, r.endpoint_id));
  if (jobs.length > 0) await writeWithJobs(db, insert.compile(), (jobDb) => deps.boss.insert(DELIVERY_QUEUE, jobs, { db: jobDb }));
  else if (rows.length > 0) await insert.execute();
  return outcomes as Outcome[];
}
