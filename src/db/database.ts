import pg from 'pg';
import { Kysely, PostgresDialect } from 'kysely';
import type { Database } from './schema.ts';

/** The schema hookrelay's own tables live in; pg-boss keeps its tables in QUEUE_SCHEMA. */
export const SCHEMA = 'hookrelay';
export const QUEUE_SCHEMA = 'hookrelay_queue';

export type Db = Kysely<Database>;

export interface DbHandle {
  db: Db;
  pool: pg.Pool;
  close(): Promise<void>;
}

/**
 * One pool for hookrelay's own queries. Every query is qualified with the `hookrelay` schema
 * through `withSchema`, so the tables can share a database (and a transaction) with the
 * application that submits webhooks.
 */
export function createDb(connectionString: string, options: { max?: number; applicationName?: string } = {}): DbHandle {
  const pool = new pg.Pool({
    connectionString,
    max: options.max ?? 10,
    application_name: options.applicationName ?? 'hookrelay',
    // A connection that cannot be had within this time is a fault worth reporting, not waiting on.
    connectionTimeoutMillis: 10_000,
  });
  // An idle client that loses its server emits 'error' on the pool; without a listener the
  // process would crash. The next query on the pool reconnects.
  pool.on('error', () => {});
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) }).withSchema(SCHEMA);
  let closed = false;
  return {
    db,
    pool,
    async close() {
      if (closed) return;
      closed = true;
      await db.destroy();
    },
  };
}
