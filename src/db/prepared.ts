import pg from 'pg';
import type { Db as QueueDb } from 'pg-boss';

/**
 * Statements that run often with the same text (a lone submission's endpoint read and its
 * webhook-and-job insert, the recording transaction's statements) are sent as named prepared
 * statements on hookrelay's pool, so each connection plans each text once instead of at
 * every run. node-postgres prepares a name on a connection the first time it is used there
 * (Parse), and sends only Bind/Execute after.
 *
 * Which texts are named is decided by their callers (`prepare`): only texts that do not vary
 * with a batch's size, so that a connection holds a few dozen plans, not one per size. At
 * most `max` texts get a name; the rest run unnamed, as before. The pool names them only when
 * created with `prepared: true` (HOOKRELAY_DB_PREPARED_STATEMENTS); otherwise marking a text
 * changes nothing.
 */
export class PreparedTexts {
  readonly #names = new Map<string, string>();
  #generation = 0;
  readonly max: number;
  readonly #prefix: string;
  /** Names are `<prefix>_<generation>_<n>`. */
  constructor(max = 48, prefix = 'hookrelay') {
    this.max = max;
    this.#prefix = prefix;
  }
  /** `text`, to be run under a name from now on (while fewer than `max` texts have one). */
  prepare(text: string): string {
    if (!this.#names.has(text) && this.#names.size < this.max) this.#names.set(text, `${this.#prefix}_${this.#generation}_${this.#names.size}`);
    return text;
  }
  nameOf(text: string): string | undefined {
    return this.#names.get(text);
  }
  get size(): number {
    return this.#names.size;
  }
  /**
   * New names from now on: a column's type changed under a prepared plan (SQLSTATE 0A000,
   * "cached plan must not change result type"), which PostgreSQL reports on every later run
   * of that name on that connection. Fresh names are prepared anew.
   */
  forget(): void {
    this.#generation += 1;
    this.#names.clear();
  }
}

/** The texts hookrelay's callers mark; one list for the process, named per connection. */
export const PREPARED = new PreparedTexts();

/** `query`, its text marked to run under a name (PREPARED). */
export function prepared<Q extends { readonly sql: string }>(query: Q): Q {
  PREPARED.prepare(query.sql);
  return query;
}

/** A pg-boss db whose every text is marked (PREPARED): only for statements of one text whatever their size. */
export function preparing(db: QueueDb): QueueDb {
  return {
    executeSql(text, values) {
      return db.executeSql(PREPARED.prepare(text), values);
    },
  };
}

/**
 * A node-postgres client that runs the texts marked in `texts` as named statements. Kysely
 * calls `query(text, values)`, pg-pool's `pool.query` the same with a callback; every other
 * form (a config object, a cursor) passes through unchanged.
 */
export function namingClient(texts: PreparedTexts = PREPARED): typeof pg.Client {
  return class NamingClient extends pg.Client {
    // pg's overloads cannot be overridden one by one; the call is forwarded as it came.
    override query(...args: any[]): any {
      const [text, values, callback] = args;
      const name = typeof text === 'string' && (values === undefined || Array.isArray(values)) ? texts.nameOf(text) : undefined;
      if (name === undefined) return (super.query as (...a: any[]) => any)(...args);
      const failed = (err: unknown) => {
        if ((err as { code?: unknown } | null)?.code === '0A000') texts.forget();
      };
      if (typeof callback === 'function') {
        return super.query({ name, text, values }, (err: Error, result: pg.QueryResult) => {
          if (err) failed(err);
          callback(err, result);
        });
      }
      return (super.query({ name, text, values }) as Promise<pg.QueryResult>).catch((err: unknown) => {
        failed(err);
        throw err;
      });
    }
  } as typeof pg.Client;
}

/**
 * `derive` of a statement text, remembered by text: the texts a process sends are a handful,
 * and deriving one (the worker's wrapped fetch) anew at every run costs regular-expression
 * passes over a few kilobytes, and a fresh string for every lookup by text to hash again.
 * At most `max` texts are kept; past that the memory starts over.
 */
export function byText<T>(derive: (text: string) => T, max = 64): (text: string) => T {
  let memo = new Map<string, T>();
  return (text) => {
    let value = memo.get(text);
    if (value === undefined) {
      value = derive(text);
      if (memo.size >= max) memo = new Map();
      memo.set(text, value);
    }
    return value;
  };
}
