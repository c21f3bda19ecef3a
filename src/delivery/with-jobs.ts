import { CompiledQuery, type Kysely } from 'kysely';
import { fromKysely, type Db as QueueDb } from 'pg-boss';
import { PREPARED } from '../db/prepared.ts';
import type { Database } from '../db/schema.ts';

/**
 * Webhook rows and their jobs in ONE statement. pg-boss writes a job through the `db` it is
 * given (`send`/`insert` with `{ db }`), so it can be handed one that runs its job insert
 * together with our own insert of the webhooks:
 *
 *   WITH hookrelay_rows AS (INSERT INTO webhooks ...) <pg-boss's job insert, its notify>
 *
 * PostgreSQL runs a data-modifying statement in WITH exactly once and to completion, whether
 * or not the rest of the statement reads it, and all of it sees one snapshot: the webhooks
 * and their jobs are written together or not at all. Outside a transaction the statement is
 * its own (no BEGIN, no COMMIT); inside the caller's, it is one statement fewer. pg-boss
 * remains the author of its job SQL (its columns, defaults and NOTIFY); only the front of
 * the statement is ours.
 *
 * The job insert pg-boss 12 writes is one statement beginning `WITH ins AS (` (a queue with
 * notify) or `INSERT INTO`. Any other shape is refused with ShapeUnknown before anything
 * runs, and the caller writes the two in a transaction instead.
 */

/** pg-boss's job insert did not have a shape this module can join to; nothing was run. */
export class ShapeUnknown extends Error {
  constructor(sqlText: string) {
    super(`the queue's job insert cannot be joined to the webhooks insert: ${sqlText.trim().slice(0, 60)}`);
    this.name = 'ShapeUnknown';
  }
}

/**
 * Runs `rows` (a compiled INSERT) and the job insert `writeJobs` makes through the pg-boss db
 * it is given, as one statement through `db` (a transaction, or the pool). When the job
 * insert's shape is unknown, the two run apart, in a transaction of their own if `db` is not one.
 */
export async function writeWithJobs(db: Kysely<Database>, rows: CompiledQuery, writeJobs: (jobDb: QueueDb) => Promise<unknown>, options: { prepare?: boolean } = {}): Promise<void> {
  try {
    await writeJobs(withRows(db, rows, options));
  } catch (err) {
    if (!(err instanceof ShapeUnknown)) throw err;
    const apart = async (trx: Kysely<Database>) => {
      await trx.executeQuery(rows);
      await writeJobs(fromKysely(trx));
    };
    if (db.isTransaction) await apart(db);
    else await db.transaction().execute(apart);
  }
}

/**
 * A pg-boss db that runs each job insert given to it as one statement with `rows`, a
 * compiled single-statement INSERT (its parameters numbered from $1, as Kysely compiles them).
 * With `prepare`, the joined text is marked to run as a named statement (src/db/prepared.ts):
 * for a caller whose text does not vary, a lone submission's.
 */
export function withRows(db: Kysely<Database>, rows: CompiledQuery, options: { prepare?: boolean } = {}): QueueDb {
  return {
    async executeSql(text, values = []) {
      const joined = joinStatements(rows.sql, rows.parameters.length, text, values.length);
      if (options.prepare) PREPARED.prepare(joined);
      const result = await db.executeQuery(CompiledQuery.raw(joined, [...values, ...rows.parameters]));
      return { rows: [...result.rows] };
    },
  };
}

/**
 * `first` (with `firstParams` parameters, $1..) placed in a WITH in front of `second` (with
 * `secondParams`, $1..): `first`'s parameters are renumbered to follow `second`'s.
 */
export function joinStatements(first: string, firstParams: number, second: string, secondParams: number): string {
  const renumbered = first.replace(/\$(\d+)\b/g, (whole, n: string) => {
    const index = Number(n);
    if (index < 1 || index > firstParams) throw new Error(`parameter ${whole} is outside the statement's ${firstParams}`);
    return `$${index + secondParams}`;
  });
  const head = `WITH hookrelay_rows AS (${renumbered})`;
  const body = second.trimStart();
  const withClause = /^WITH\s+/i.exec(body);
  if (withClause) {
    if (/^RECURSIVE\b/i.test(body.slice(withClause[0].length))) throw new ShapeUnknown(second);
    return `${head}, ${body.slice(withClause[0].length)}`;
  }
  if (/^INSERT\s/i.test(body)) return `${head} ${body}`;
  throw new ShapeUnknown(second);
}
