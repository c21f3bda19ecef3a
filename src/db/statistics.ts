import { sql } from 'kysely';
import { QUEUE_SCHEMA, SCHEMA, type Db } from './database.ts';
import type { Logger } from '../log.ts';

/**
 * Keeps the planner's statistics of hookrelay's tables and of the queue's job table from
 * falling far behind their contents.
 *
 * PostgreSQL plans every statement from statistics that only ANALYZE (or autovacuum's analyze)
 * writes. A new database has none, autovacuum takes a minute or more to come round (and none
 * when it is off), and planned from default selectivities the delivery path's statements read
 * the backlog instead of the batch: the worker's fetch scanned every queued job and sorted
 * them to take 100 (44 ms for that scan with 30,000 queued, against 0.3 ms once analyzed), and
 * the recording UPDATE read every open webhook for each batch (23.6 ms per batch of 100 with
 * 30,000 open, against 3.3 ms). A new install's first burst, or a backlog that built up before
 * the service started, was delivered at a fraction of the usual rate, and the slower the more
 * was waiting.
 *
 * So each process looks every CHECK_MS at how much each table changed since its last analysis
 * (pg_stat_all_tables.n_mod_since_analyze, one query) and analyzes the tables that were never
 * analyzed, or that changed by more rows than they held then (and at least MIN_CHANGED): a
 * table that grew from nothing, not one in steady state, which autovacuum keeps. ANALYZE reads
 * a sample (30,000 rows at the default statistics target), and `SKIP_LOCKED` leaves a table
 * that another process is analyzing at that moment to it.
 */

/** How often the tables are looked at. */
export const CHECK_MS = 5_000;
/** Changes below this never call for an analysis: small tables plan well on any estimate. */
export const MIN_CHANGED = 1_000;

export interface StatisticsKeeper {
  /** One look now: analyzes the tables that need it, and says which it analyzed. */
  check(): Promise<string[]>;
  stop(): Promise<void>;
}

interface TableState {
  name: string;
  reltuples: number;
  changed: number;
  /** The role may analyze it: it owns the table or the database (or is a superuser). */
  mayAnalyze: boolean;
}

/** The tables looked after: hookrelay's own and the delivery queue's job table. */
async function tableStates(db: Db, queue: string): Promise<TableState[]> {
  const { rows } = await sql<{ name: string; reltuples: number; changed: string | null; may_analyze: boolean }>`
    SELECT c.oid::regclass::text AS name, c.reltuples::float8 AS reltuples, s.n_mod_since_analyze AS changed,
           pg_has_role(c.relowner, 'USAGE')
             OR pg_has_role((SELECT datdba FROM pg_database WHERE datname = current_database()), 'USAGE') AS may_analyze
      FROM pg_class c
      JOIN pg_namespace n ON n.oid = c.relnamespace
      LEFT JOIN pg_stat_all_tables s ON s.relid = c.oid
     WHERE c.relkind = 'r'
       AND (n.nspname = ${SCHEMA}
            OR (n.nspname = ${QUEUE_SCHEMA} AND c.relname = (SELECT table_name FROM ${sql.id(QUEUE_SCHEMA, 'queue')} WHERE name = ${queue})))
     ORDER BY 1`.execute(db);
  return rows.map((r) => ({ name: r.name, reltuples: Number(r.reltuples), changed: Number(r.changed ?? 0), mayAnalyze: r.may_analyze }));
}

/** True when a table's statistics are missing or describe a table a fraction of its size. */
export function needsAnalysis(state: { reltuples: number; changed: number }): boolean {
  return state.reltuples < 0 || state.changed > Math.max(MIN_CHANGED, state.reltuples);
}

export function startStatisticsKeeper(db: Db, log: Logger, options: { queue: string; intervalMs?: number }): StatisticsKeeper {
  // Tables the role may not analyze, each reported once: their plans are autovacuum's business.
  const reported = new Set<string>();
  let running: Promise<string[]> | undefined;
  let stopped = false;

  const pass = async (): Promise<string[]> => {
    const analyzed: TableState[] = [];
    for (const table of await tableStates(db, options.queue)) {
      if (stopped || !needsAnalysis(table)) continue;
      if (!table.mayAnalyze) {
        if (!reported.has(table.name)) log.warn('statistics: a table needs analyzing and the service\'s role does not own it; its plans wait for autovacuum', { table: table.name });
        reported.add(table.name);
        continue;
      }
      // The name is PostgreSQL's own rendering of the table's oid, quoted where it must be.
      await sql`ANALYZE (SKIP_LOCKED) ${sql.raw(table.name)}`.execute(db);
      analyzed.push(table);
    }
    // One line per pass: a new install analyzes every table at its first start.
    if (analyzed.length > 0) {
      log.info('statistics: analyzed tables that were never analyzed or had outgrown their statistics', {
        tables: analyzed.map((t) => ({ table: t.name, rowsAtLastAnalysis: t.reltuples < 0 ? null : t.reltuples, rowsChangedSince: t.changed })),
      });
    }
    return analyzed.map((t) => t.name);
  };

  const check = () => {
    // One pass at a time: a timer firing during a long ANALYZE waits for it.
    running ??= pass().finally(() => {
      running = undefined;
    });
    return running;
  };

  sql<{ autovacuum: string }>`SELECT current_setting('autovacuum') AS autovacuum`.execute(db).then(({ rows }) => {
    if (rows[0]?.autovacuum === 'off') {
      log.warn('statistics: autovacuum is off; the service analyzes its tables as they grow, but nothing reclaims the row versions that updates and deletes leave (the queue\'s jobs most of all): turn it on, or VACUUM the tables regularly');
    }
  }, () => undefined);
  // While the database is away every look fails: logged when that begins and when it ends.
  let failing = false;
  const look = () => {
    check().then(() => {
      if (failing) log.info('statistics: looking at the tables works again');
      failing = false;
    }, (err: unknown) => {
      if (!failing) log.warn('statistics: looking at the tables failed; trying again every few seconds', { error: (err as Error)?.message });
      failing = true;
    });
  };
  const timer = setInterval(look, options.intervalMs ?? CHECK_MS);
  timer.unref();
  look();

  return {
    check,
    async stop() {
      stopped = true;
      clearInterval(timer);
      await running?.catch(() => undefined);
    },
  };
}
