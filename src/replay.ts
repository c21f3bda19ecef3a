import { userInfo } from 'node:os';
import { parseArgs } from 'node:util';
import { sql, type RawBuilder } from 'kysely';
import type { Db } from './db/database.ts';
import { parseDuration } from './duration.ts';
import type { DeadLetterReason } from './db/schema.ts';

/**
 * `hookrelay replay`: re-queues the open dead letters of one endpoint, in batches of a
 * transaction each, through hookrelay.replay_webhook (the path the API and the psql scripts in
 * sql/replay take), so a huge replay never holds one giant transaction and a run that stops
 * half-way leaves every finished batch replayed and the rest open: running it again picks up
 * where it stopped.
 */

export const DEAD_LETTER_REASONS: readonly DeadLetterReason[] = ['attempts_exhausted', 'gone', 'endpoint_deleted'];
export const DEFAULT_BATCH_SIZE = 500;
export const MAX_BATCH_SIZE = 10_000;

export interface ReplayFilter {
  endpointId: string;
  /** Dead letters that died at or after this time… */
  since: Date;
  /** …and before this one (exclusive), if given. */
  until?: Date | undefined;
  reason?: DeadLetterReason | undefined;
}

export interface ReplayProgress {
  /** Dead letters looked at so far (may end above `total` if more died meanwhile within the filter). */
  processed: number;
  /** Of those, how many were replayed. */
  replayed: number;
  /** Open dead letters matching the filter when the replay started. */
  total: number;
}

export interface ReplayOptions {
  batchSize?: number;
  /** Recorded in dead_letters.replayed_by. */
  by?: string;
  /** Count what would be replayed; change nothing. */
  dryRun?: boolean;
  /** Called once before the first batch and after every batch. */
  onProgress?: (progress: ReplayProgress) => void;
}

export interface ReplayResult {
  /** Open dead letters matching the filter when the replay started. */
  total: number;
  /** Webhooks replayed (with dryRun: how many would be). */
  replayed: number;
  /** Of the replayed, how many went to `held` because the endpoint is disabled. */
  held: number;
  endpointEnabled: boolean;
  dryRun: boolean;
}

interface Keyset {
  deadAt: string;
  id: string;
}

interface BatchRow {
  id: string;
  dead_at: string;
  replayed: boolean;
}

/** A replay that cannot start: unknown or deleted endpoint. */
export class ReplayError extends Error {
  override name = 'ReplayError';
}

/**
 * Replays the open dead letters matching `filter`, `batchSize` per transaction, oldest first
 * (by dead_at, then id: the order of dead_letters_endpoint_idx).
 *
 * Only dead letters that died before the replay started are considered: a webhook replayed in
 * an early batch that dies again during the run is not replayed a second time.
 */
export async function replayDeadLetters(db: Db, filter: ReplayFilter, options: ReplayOptions = {}): Promise<ReplayResult> {
  const batchSize = options.batchSize ?? DEFAULT_BATCH_SIZE;
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > MAX_BATCH_SIZE) throw new RangeError(`batch size must be an integer from 1 to ${MAX_BATCH_SIZE}`);
  const by = options.by ?? 'cli';
  const dryRun = options.dryRun ?? false;

  const endpoint = await db.selectFrom('endpoints').select(['enabled', 'deleted_at']).where('id', '=', filter.endpointId).executeTakeFirst();
  if (!endpoint) throw new ReplayError(`no endpoint with id ${JSON.stringify(filter.endpointId)}`);
  if (endpoint.deleted_at) throw new ReplayError(`endpoint ${filter.endpointId} is deleted; its dead letters cannot be replayed`);

  // The cutoff is the database's clock, as dead_at is; as text, it keeps its microseconds.
  const { rows: [snapshot] } = await sql<{ cutoff: string; total: number; eligible: number }>`
    SELECT now()::text AS cutoff,
           count(*)::int AS total,
           count(*) FILTER (WHERE EXISTS (SELECT 1 FROM hookrelay.webhooks w WHERE w.id = d.webhook_id AND w.status = 'dead'))::int AS eligible
      FROM hookrelay.dead_letters d
     WHERE ${matches(filter, sql`now()`)}`.execute(db);
  const cutoff = snapshot!.cutoff;
  const total = snapshot!.total;
  if (dryRun) {
    return { total, replayed: snapshot!.eligible, held: endpoint.enabled ? 0 : snapshot!.eligible, endpointEnabled: endpoint.enabled, dryRun };
  }

  let processed = 0;
  let replayed = 0;
  let held = 0;
  let enabled = endpoint.enabled;
  // Keyset: the last dead letter looked at, as (dead_at, id); dead_at as text keeps its microseconds.
  let after: Keyset | null = null;
  options.onProgress?.({ processed, replayed, total });
  for (;;) {
    const from: Keyset | null = after;
    const batch: { rows: BatchRow[]; enabled: boolean } = await db.transaction().execute(async (trx) => {
      // Share-locked for the batch: an enable of the endpoint (which releases what it holds)
      // waits for this batch instead of missing the webhooks it puts in `held`.
      const current = await trx.selectFrom('endpoints').select(['enabled']).where('id', '=', filter.endpointId).forShare().executeTakeFirstOrThrow();
      const { rows } = await sql<BatchRow>`
        SELECT d.id, d.dead_at::text AS dead_at, hookrelay.replay_webhook(d.webhook_id, ${by}) AS replayed
          FROM (SELECT id, webhook_id, dead_at
                  FROM hookrelay.dead_letters
                 WHERE ${matches(filter, sql`${cutoff}::timestamptz`)}
                   AND (${from?.deadAt ?? null}::timestamptz IS NULL
                        OR (dead_at >= ${from?.deadAt ?? null}::timestamptz AND (dead_at, id) > (${from?.deadAt ?? null}::timestamptz, ${from?.id ?? null}::text)))
                 ORDER BY dead_at, id
                 LIMIT ${batchSize}) d
         ORDER BY d.dead_at, d.id`.execute(trx);
      return { rows, enabled: current.enabled };
    });
    const n = batch.rows.filter((r) => r.replayed).length;
    processed += batch.rows.length;
    replayed += n;
    if (!batch.enabled) held += n;
    enabled = batch.enabled;
    const lastRow: BatchRow | undefined = batch.rows[batch.rows.length - 1];
    if (lastRow) after = { deadAt: lastRow.dead_at, id: lastRow.id };
    options.onProgress?.({ processed, replayed, total });
    if (batch.rows.length < batchSize) break;
  }
  return { total, replayed, held, endpointEnabled: enabled, dryRun };
}

/** The filter as a condition on hookrelay.dead_letters (unaliased columns), open letters only. */
function matches(filter: ReplayFilter, cutoff: RawBuilder<unknown>): RawBuilder<unknown> {
  return sql`replayed_at IS NULL
    AND endpoint_id = ${filter.endpointId}
    AND dead_at >= ${filter.since}
    AND dead_at <= ${cutoff}
    AND (${filter.until ?? null}::timestamptz IS NULL OR dead_at < ${filter.until ?? null}::timestamptz)
    AND (${filter.reason ?? null}::text IS NULL OR reason = ${filter.reason ?? null})`;
}

// ---------------------------------------------------------------------------------------
// The command line: arguments, progress display.

export const REPLAY_USAGE = `usage: hookrelay replay --endpoint ID --since TIME [--until TIME] [--reason REASON] [--dry-run] [--batch-size N]

Replays the endpoint's open dead letters that died at or after --since (and before --until),
${DEFAULT_BATCH_SIZE} per transaction (--batch-size), through hookrelay.replay_webhook.
TIME is an ISO 8601 date or date-time (UTC unless it has an offset: 2025-01-01,
2025-01-01T12:00:00Z, 2025-01-01T12:00:00+02:00) or a time ago: 30m, 12h, 7d.
REASON is one of ${DEAD_LETTER_REASONS.join(', ')}. --dry-run prints how many would be replayed.`;

export interface ReplayCommand {
  filter: ReplayFilter;
  dryRun: boolean;
  batchSize: number;
}

const ISO = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?(Z|[+-]\d{2}(?::?\d{2})?)?)?$/i;

/** Parses a --since/--until value; undefined when it is not a time. */
export function parseTime(value: string, now = Date.now()): Date | undefined {
  const text = value.trim();
  const ago = parseDuration(text);
  if (ago !== undefined) return new Date(now - ago);
  const m = ISO.exec(text);
  if (!m) return undefined;
  const [, y, mo, d, h = '00', mi = '00', s = '00', frac = '', zone = 'Z'] = m;
  const year = Number(y), month = Number(mo), day = Number(d);
  // Date.parse rolls 2025-02-30 over into March; a calendar check refuses it.
  const probe = new Date(Date.UTC(year, month - 1, day));
  if (probe.getUTCFullYear() !== year || probe.getUTCMonth() !== month - 1 || probe.getUTCDate() !== day) return undefined;
  if (Number(h) > 23 || Number(mi) > 59 || Number(s) > 59) return undefined;
  let offset = zone.toUpperCase();
  if (offset !== 'Z') offset = offset.length === 3 ? `${offset}:00` : offset.includes(':') ? offset : `${offset.slice(0, 3)}:${offset.slice(3)}`;
  const ms = Date.parse(`${y}-${mo}-${d}T${h}:${mi}:${s}${frac.slice(0, 4)}${offset}`);
  return Number.isNaN(ms) ? undefined : new Date(ms);
}

/** The arguments after `replay`, or what is wrong with them. */
export function parseReplayArgs(args: string[], now = Date.now()): ReplayCommand | { error: string } | { help: true } {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        endpoint: { type: 'string' },
        since: { type: 'string' },
        until: { type: 'string' },
        reason: { type: 'string' },
        'dry-run': { type: 'boolean' },
        'batch-size': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    return { error: err instanceof Error ? err.message : String(err) };
  }
  if (values.help) return { help: true };
  const endpointId = values.endpoint?.trim();
  if (!endpointId) return { error: 'replay needs --endpoint ID' };
  if (values.since === undefined) return { error: 'replay needs --since TIME' };
  const since = parseTime(values.since, now);
  if (!since) return { error: `--since ${JSON.stringify(values.since)} is not a time (an ISO 8601 date or date-time, or a time ago like 12h)` };
  let until: Date | undefined;
  if (values.until !== undefined) {
    until = parseTime(values.until, now);
    if (!until) return { error: `--until ${JSON.stringify(values.until)} is not a time (an ISO 8601 date or date-time, or a time ago like 12h)` };
    if (until <= since) return { error: '--until must be after --since' };
  }
  let reason: DeadLetterReason | undefined;
  if (values.reason !== undefined) {
    if (!(DEAD_LETTER_REASONS as readonly string[]).includes(values.reason)) {
      return { error: `--reason must be one of ${DEAD_LETTER_REASONS.join(', ')}, not ${JSON.stringify(values.reason)}` };
    }
    reason = values.reason as DeadLetterReason;
  }
  let batchSize = DEFAULT_BATCH_SIZE;
  if (values['batch-size'] !== undefined) {
    batchSize = /^\d{1,6}$/.test(values['batch-size']) ? Number(values['batch-size']) : Number.NaN;
    if (!(batchSize >= 1 && batchSize <= MAX_BATCH_SIZE)) return { error: `--batch-size must be an integer from 1 to ${MAX_BATCH_SIZE}` };
  }
  return { filter: { endpointId, since, until, reason }, dryRun: values['dry-run'] ?? false, batchSize };
}

/** Who replayed, as recorded in dead_letters.replayed_by: `cli:` and the operating system user. */
export function replayedBy(): string {
  try {
    return `cli:${userInfo().username}`;
  } catch {
    return 'cli:unknown';
  }
}

export interface ProgressDisplay {
  update(progress: ReplayProgress): void;
  /** Ends the display (the bar's line on a terminal). */
  end(): void;
}

/**
 * Progress on `stream`: a redrawn bar on a terminal, otherwise a plain line at most every
 * `intervalMs` (and always for the first and the last batch), so logs stay readable.
 */
export function progressDisplay(stream: NodeJS.WritableStream & { isTTY?: boolean; columns?: number }, intervalMs = 1_000, clock = Date.now): ProgressDisplay {
  const tty = Boolean(stream.isTTY);
  let last = Number.NEGATIVE_INFINITY;
  let drawn = false;
  /** A state throttling skipped, shown by end(). */
  let skipped: ReplayProgress | undefined;
  let shown = '';
  const draw = ({ processed, replayed, total }: ReplayProgress) => {
    skipped = undefined;
    if (shown === `${processed}/${replayed}/${total}`) return;
    shown = `${processed}/${replayed}/${total}`;
    last = clock();
    if (tty) {
      const width = Math.max(10, Math.min(40, (stream.columns ?? 80) - 50));
      const ratio = total === 0 ? 1 : Math.min(1, processed / total);
      const filled = Math.round(ratio * width);
      const bar = `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}]`;
      stream.write(`\r${bar} ${String(Math.round(ratio * 100)).padStart(3)}% ${Math.min(processed, total)}/${total} dead letters, ${replayed} replayed\x1b[K`);
      drawn = true;
    } else {
      stream.write(`replay: ${processed} of ${total} dead letters processed, ${replayed} replayed\n`);
    }
  };
  return {
    update(progress) {
      const first = last === Number.NEGATIVE_INFINITY;
      const finished = progress.processed >= progress.total;
      if (first || finished || clock() - last >= (tty ? 100 : intervalMs)) draw(progress);
      else skipped = progress;
    },
    end() {
      if (skipped) draw(skipped);
      if (tty && drawn) stream.write('\n');
    },
  };
}

/** The last line on stdout. */
export function summaryLine(result: ReplayResult): string {
  return result.dryRun
    ? `would replay ${result.replayed} of ${result.total} dead letters (dry run)`
    : `replayed ${result.replayed} of ${result.total} dead letters`;
}
