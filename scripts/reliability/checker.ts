/**
 * The ledger invariant checker. After any run it compares four records of the same events:
 *
 *   submissions  every submission the client attempted, and what it saw (202 + id, or not)
 *   ledger       hookrelay.webhooks, attempts and dead_letters as PostgreSQL holds them
 *   receipts     every request the receivers got (webhook-id, when, what they answered)
 *   faults       when faults were injected, and when each was over
 *
 * and reports, as JSON, what a skeptic asks: was any acknowledged webhook lost; does every
 * webhook have one consistent state; is every `delivered` backed by a 2xx attempt (and a
 * receiver that got it); and for every webhook-id a receiver accepted more than once, is
 * there a crash or a timeout that explains it.
 *
 * It depends on nothing in src/: it judges the service from the outside. `readLedger` reads
 * the tables named in sql/migrations; everything else is a pure function of its input, so
 * tests feed it synthetic ledgers that break one invariant each.
 */
import pg from 'pg';

/** One submission as the client saw it. `key` is the Idempotency-Key it sent. */
export interface Submission {
  key: string;
  /** ms since the epoch, when the request was sent. */
  sentAt: number;
  /** 'acked': a 202 with an id. 'failed': an error answer, a timeout or a broken connection. */
  outcome: 'acked' | 'failed';
  id?: string;
  /** HTTP status, when there was an answer. */
  status?: number;
  /** When the answer (or the failure) came. */
  doneAt: number;
  /** Counted in the latency figures (e.g. webhooks whose receiver accepts the first attempt). */
  measureLatency?: boolean;
}

export interface LedgerWebhook {
  id: string;
  idempotencyKey: string | null;
  status: string;
  attempts: number;
  deliveredAt: number | null;
}

export interface LedgerAttempt {
  webhookId: string;
  attempt: number;
  statusCode: number | null;
  outcome: string;
  errorClass: string | null;
  startedAt: number;
  durationMs: number;
}

export interface LedgerDeadLetter {
  webhookId: string;
  replayedAt: number | null;
}

export interface Ledger {
  webhooks: LedgerWebhook[];
  attempts: LedgerAttempt[];
  deadLetters: LedgerDeadLetter[];
}

/** One request a receiver got. `status` is what it answered (or meant to, if the client had gone). */
export interface Receipt {
  webhookId: string;
  at: number;
  status: number;
}

/** A fault from its injection (`at`) until the service had it behind it (`until`). */
export interface Fault {
  kind: string;
  at: number;
  until: number;
}

export interface CheckOptions {
  /**
   * A receipt this long before a fault may be one whose attempt the fault kept from being
   * recorded: the attempt's deadline plus the time to record it. Default 20 s.
   */
  explainBeforeMs?: number;
  /** How long after a fault's `until` its effects may still cause a redelivery. Default 30 s. */
  explainAfterMs?: number;
  /** Clock slack between receivers and PostgreSQL (same host). Default 250 ms. */
  slackMs?: number;
  /** Split latency figures at this time (usually the first fault); default: the first fault's `at`. */
  splitAt?: number;
  /** Ids listed per finding, at most. Default 20. */
  listLimit?: number;
}

export interface CheckInput {
  submissions: Submission[];
  ledger: Ledger;
  receipts: Receipt[];
  faults: Fault[];
  options?: CheckOptions;
}

export type Problem =
  | 'ack-mismatch'
  | 'not-submitted'
  | 'unknown-status'
  | 'delivered-without-2xx-attempt'
  | 'delivered-not-received'
  | 'more-than-one-success'
  | 'attempt-after-success'
  | 'delivered-and-dead-letter'
  | 'dead-without-dead-letter'
  | 'open-dead-letter-not-dead'
  | 'more-than-one-open-dead-letter'
  | 'attempts-count-mismatch'
  | 'received-unknown-id';

export interface LatencyFigures {
  count: number;
  p50Ms: number | null;
  p99Ms: number | null;
  maxMs: number | null;
}

export interface CheckReport {
  /** No loss, no inconsistency, no unexplained duplicate. */
  ok: boolean;
  counts: {
    submitted: number;
    acknowledged: number;
    /** The client saw an error or a timeout: the webhook may or may not exist. Not losses. */
    unacknowledged: number;
    /** Unacknowledged submissions that the ledger has all the same (committed, answer lost). */
    unacknowledgedInLedger: number;
    webhooks: number;
    byStatus: Record<string, number>;
    attempts: number;
    receipts: number;
    /** Receipts the receivers accepted (2xx). */
    accepted: number;
    faults: number;
  };
  /** Acknowledged webhooks the ledger does not have: the one thing that must never happen. */
  lost: { count: number; ids: string[] };
  /** Acknowledged webhooks still pending, retrying or held (not lost; not finished either). */
  open: { count: number; ids: string[] };
  inconsistent: { count: number; byProblem: Partial<Record<Problem, number>>; examples: { id: string; problem: Problem; detail?: string }[] };
  duplicates: {
    /** Receipts accepted beyond the first, over all webhook-ids. */
    count: number;
    webhookIds: number;
    explainedByFault: number;
    explainedByTimeout: number;
    unexplained: number;
    unexplainedIds: string[];
  };
  latency: { beforeFaults: LatencyFigures; afterFaults: LatencyFigures };
}

const OPEN = new Set(['pending', 'retrying', 'held']);
const KNOWN = new Set([...OPEN, 'delivered', 'dead']);
const is2xx = (status: number | null | undefined) => status !== null && status !== undefined && status >= 200 && status < 300;

function groupBy<T>(items: T[], key: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    const list = groups.get(k);
    if (list) list.push(item);
    else groups.set(k, [item]);
  }
  return groups;
}

/** Nearest-rank percentile of an ascending list. */
export function percentile(sorted: number[], p: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

function latency(values: number[]): LatencyFigures {
  const sorted = values.slice().sort((a, b) => a - b);
  return { count: sorted.length, p50Ms: percentile(sorted, 50), p99Ms: percentile(sorted, 99), maxMs: sorted.at(-1) ?? null };
}

export function check(input: CheckInput): CheckReport {
  const options = input.options ?? {};
  const explainBeforeMs = options.explainBeforeMs ?? 20_000;
  const explainAfterMs = options.explainAfterMs ?? 30_000;
  const slackMs = options.slackMs ?? 250;
  const listLimit = options.listLimit ?? 20;
  const { submissions, ledger, receipts, faults } = input;

  const webhooks = new Map(ledger.webhooks.map((w) => [w.id, w]));
  const byKey = new Map(ledger.webhooks.filter((w) => w.idempotencyKey !== null).map((w) => [w.idempotencyKey!, w]));
  const attemptsOf = groupBy(ledger.attempts, (a) => a.webhookId);
  const lettersOf = groupBy(ledger.deadLetters, (d) => d.webhookId);
  const receiptsOf = groupBy(receipts, (r) => r.webhookId);

  const examples: CheckReport['inconsistent']['examples'] = [];
  const byProblem: Partial<Record<Problem, number>> = {};
  let inconsistentCount = 0;
  const flag = (id: string, problem: Problem, detail?: string) => {
    inconsistentCount += 1;
    byProblem[problem] = (byProblem[problem] ?? 0) + 1;
    if (examples.length < listLimit) examples.push(detail === undefined ? { id, problem } : { id, problem, detail });
  };

  // Submissions against the ledger.
  const lost: string[] = [];
  const open: string[] = [];
  const acked = submissions.filter((s) => s.outcome === 'acked');
  const submittedKeys = new Set(submissions.map((s) => s.key));
  const ackedIdByKey = new Map<string, string>();
  for (const s of acked) {
    const id = s.id ?? '';
    const earlier = ackedIdByKey.get(s.key);
    // The same Idempotency-Key must always name the same webhook.
    if (earlier !== undefined && earlier !== id) flag(id, 'ack-mismatch', `key ${s.key} acknowledged as ${earlier} and ${id}`);
    ackedIdByKey.set(s.key, id);
    const webhook = webhooks.get(id);
    if (!webhook) {
      lost.push(id);
      continue;
    }
    if (webhook.idempotencyKey !== s.key) flag(id, 'ack-mismatch', `acknowledged for key ${s.key}, stored with ${webhook.idempotencyKey}`);
    if (OPEN.has(webhook.status)) open.push(id);
  }
  const unacknowledged = submissions.filter((s) => s.outcome !== 'acked' && !ackedIdByKey.has(s.key));
  const unacknowledgedInLedger = unacknowledged.filter((s) => byKey.has(s.key)).length;

  // Each webhook's own consistency.
  const byStatus: Record<string, number> = {};
  for (const w of ledger.webhooks) {
    byStatus[w.status] = (byStatus[w.status] ?? 0) + 1;
    if (w.idempotencyKey === null || !submittedKeys.has(w.idempotencyKey)) flag(w.id, 'not-submitted');
    if (!KNOWN.has(w.status)) flag(w.id, 'unknown-status', w.status);
    const attempts = (attemptsOf.get(w.id) ?? []).slice().sort((a, b) => a.attempt - b.attempt);
    const numbers = attempts.map((a) => a.attempt);
    if (w.attempts !== attempts.length || numbers.some((n, i) => n !== i + 1)) {
      flag(w.id, 'attempts-count-mismatch', `attempts ${w.attempts}, rows [${numbers.join(',')}]`);
    }
    const successes = attempts.filter((a) => a.outcome === 'success');
    if (successes.length > 1) flag(w.id, 'more-than-one-success', `attempts ${successes.map((a) => a.attempt).join(',')}`);
    const firstSuccess = successes[0];
    if (firstSuccess && attempts.some((a) => a.attempt > firstSuccess.attempt)) flag(w.id, 'attempt-after-success');
    const openLetters = (lettersOf.get(w.id) ?? []).filter((d) => d.replayedAt === null);
    if (openLetters.length > 1) flag(w.id, 'more-than-one-open-dead-letter', String(openLetters.length));
    if (w.status === 'delivered') {
      if (!attempts.some((a) => a.outcome === 'success' && is2xx(a.statusCode))) flag(w.id, 'delivered-without-2xx-attempt');
      if (!(receiptsOf.get(w.id) ?? []).some((r) => is2xx(r.status))) flag(w.id, 'delivered-not-received');
      if (openLetters.length > 0) flag(w.id, 'delivered-and-dead-letter');
    } else if (w.status === 'dead') {
      if (openLetters.length === 0) flag(w.id, 'dead-without-dead-letter');
    } else if (openLetters.length > 0) {
      flag(w.id, 'open-dead-letter-not-dead', w.status);
    }
  }
  for (const id of receiptsOf.keys()) if (!webhooks.has(id)) flag(id, 'received-unknown-id');

  // Receiver-side duplicates. Every recorded attempt that could have reached a receiver and
  // been accepted there (the success, and failures that saw no answer: timeouts, resets)
  // accounts for at most one accepted receipt, made after the attempt began. Receipts are
  // paired with such attempts, earliest first (for "began before" constraints this pairs as
  // many as any assignment can); a receiver answering late, or a loaded receiver process, only
  // delays receipts, which this tolerates. One receipt is the delivery; a further one paired
  // with an unanswered attempt is explained by that timeout; an unpaired one (an attempt
  // nobody recorded) must lie in a fault's window, or it is unexplained.
  let duplicateCount = 0;
  let duplicateIds = 0;
  let explainedByFault = 0;
  let explainedByTimeout = 0;
  const unexplainedIds: string[] = [];
  let unexplained = 0;
  const inFaultWindow = (r: Receipt) => faults.some((f) => r.at >= f.at - explainBeforeMs && r.at <= f.until + explainAfterMs);
  for (const [id, list] of receiptsOf) {
    const accepted = list.filter((r) => is2xx(r.status)).sort((a, b) => a.at - b.at);
    if (accepted.length < 2) continue;
    duplicateIds += 1;
    duplicateCount += accepted.length - 1;
    const candidates = (attemptsOf.get(id) ?? [])
      .filter((a) => a.outcome === 'success' || a.statusCode === null)
      .sort((a, b) => a.startedAt - b.startedAt);
    const paired = new Set<LedgerAttempt>();
    let timeouts = 0;
    let successPaired = false;
    const unpaired: Receipt[] = [];
    for (const r of accepted) {
      const attempt = candidates.find((a) => !paired.has(a) && a.startedAt - slackMs <= r.at);
      if (!attempt) {
        unpaired.push(r);
        continue;
      }
      paired.add(attempt);
      if (attempt.outcome === 'success') successPaired = true;
      else timeouts += 1;
    }
    // The delivery itself needs no explanation.
    if (!successPaired) {
      if (unpaired.length > 0) unpaired.pop();
      else timeouts -= 1;
    }
    explainedByTimeout += timeouts;
    let idUnexplained = false;
    for (const r of unpaired) {
      if (inFaultWindow(r)) {
        explainedByFault += 1;
      } else {
        unexplained += 1;
        idUnexplained = true;
      }
    }
    if (idUnexplained && unexplainedIds.length < listLimit) unexplainedIds.push(id);
  }

  // End-to-end latency: submission sent → first accepted receipt.
  const firstAccepted = new Map<string, number>();
  for (const r of receipts) {
    if (!is2xx(r.status)) continue;
    const seen = firstAccepted.get(r.webhookId);
    if (seen === undefined || r.at < seen) firstAccepted.set(r.webhookId, r.at);
  }
  const splitAt = options.splitAt ?? (faults.length ? Math.min(...faults.map((f) => f.at)) : Number.POSITIVE_INFINITY);
  const before: number[] = [];
  const after: number[] = [];
  for (const s of acked) {
    if (s.measureLatency === false || s.id === undefined) continue;
    const at = firstAccepted.get(s.id);
    if (at === undefined) continue;
    (s.sentAt < splitAt ? before : after).push(at - s.sentAt);
  }

  return {
    ok: lost.length === 0 && inconsistentCount === 0 && unexplained === 0,
    counts: {
      submitted: new Set(submissions.map((s) => s.key)).size,
      acknowledged: ackedIdByKey.size,
      unacknowledged: new Set(unacknowledged.map((s) => s.key)).size,
      unacknowledgedInLedger,
      webhooks: ledger.webhooks.length,
      byStatus,
      attempts: ledger.attempts.length,
      receipts: receipts.length,
      accepted: receipts.filter((r) => is2xx(r.status)).length,
      faults: faults.length,
    },
    lost: { count: lost.length, ids: lost.slice(0, listLimit) },
    open: { count: open.length, ids: open.slice(0, listLimit) },
    inconsistent: { count: inconsistentCount, byProblem, examples },
    duplicates: { count: duplicateCount, webhookIds: duplicateIds, explainedByFault, explainedByTimeout, unexplained, unexplainedIds },
    latency: { beforeFaults: latency(before), afterFaults: latency(after) },
  };
}

/** Reads the ledger tables (schema `hookrelay`, see sql/migrations) over one connection. */
export async function readLedger(connectionString: string): Promise<Ledger> {
  const client = new pg.Client({ connectionString });
  client.on('error', () => {});
  await client.connect();
  try {
    const ms = (d: Date | null) => (d === null ? null : d.getTime());
    const webhooks = await client.query<{ id: string; idempotency_key: string | null; status: string; attempts: number; delivered_at: Date | null }>(
      'SELECT id, idempotency_key, status, attempts, delivered_at FROM hookrelay.webhooks',
    );
    const attempts = await client.query<{ webhook_id: string; attempt: number; status_code: number | null; outcome: string; error_class: string | null; started_at: Date; duration_ms: number }>(
      'SELECT webhook_id, attempt, status_code, outcome, error_class, started_at, duration_ms FROM hookrelay.attempts',
    );
    const letters = await client.query<{ webhook_id: string; replayed_at: Date | null }>('SELECT webhook_id, replayed_at FROM hookrelay.dead_letters');
    return {
      webhooks: webhooks.rows.map((w) => ({ id: w.id, idempotencyKey: w.idempotency_key, status: w.status, attempts: w.attempts, deliveredAt: ms(w.delivered_at) })),
      attempts: attempts.rows.map((a) => ({
        webhookId: a.webhook_id,
        attempt: a.attempt,
        statusCode: a.status_code,
        outcome: a.outcome,
        errorClass: a.error_class,
        startedAt: a.started_at.getTime(),
        durationMs: a.duration_ms,
      })),
      deadLetters: letters.rows.map((d) => ({ webhookId: d.webhook_id, replayedAt: ms(d.replayed_at) })),
    };
  } finally {
    await client.end().catch(() => undefined);
  }
}
