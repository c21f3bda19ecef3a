import pg from 'pg';
import { Kysely, PostgresDialect } from 'kysely';
import { namingClient } from './prepared.ts';
import type { Database } from './schema.ts';

/** The schema hookrelay's own tables live in; pg-boss keeps its tables in QUEUE_SCHEMA. */
export const SCHEMA = 'hookrelay';
export const QUEUE_SCHEMA = 'hookrelay_queue';

export type Db = Kysely<Database>;

/** HOOKRELAY_DB_ACQUIRE_TIMEOUT_MS's default. */
export const DEFAULT_ACQUIRE_TIMEOUT_MS = 5_000;

/** What a 503 for an unavailable database tells clients to wait before retrying. */
export const DB_RETRY_AFTER_SECONDS = 2;

/** Node socket errors that mean the server cannot be reached (or went away mid-query). */
const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);
/**
 * SQLSTATEs that mean the server is not there for us: class 08 (connection exception),
 * admin_shutdown, crash_shutdown, cannot_connect_now (starting up or shutting down),
 * too_many_connections.
 */
const UNAVAILABLE_SQLSTATES = new Set(['57P01', '57P02', '57P03', '53300']);
/** pg and pg-pool report these without a code. */
const UNAVAILABLE_MESSAGES = /timeout exceeded when trying to connect|Connection terminated|connection timeout|Client has encountered a connection error and is not queryable|server closed the connection unexpectedly/i;

/**
 * True when an error says PostgreSQL is unreachable, shutting down, starting up or out of
 * connections, or that no pooled connection came free in time: a state that passes, as
 * opposed to a fault in the query or in our code.
 */
export function isDatabaseUnavailable(err: unknown, depth = 0): boolean {
  if (typeof err !== 'object' || err === null || depth > 3) return false;
  const e = err as { code?: unknown; message?: unknown; errors?: unknown; cause?: unknown };
  if (typeof e.code === 'string' && (UNREACHABLE_CODES.has(e.code) || UNAVAILABLE_SQLSTATES.has(e.code) || e.code.startsWith('08'))) return true;
  if (typeof e.message === 'string' && UNAVAILABLE_MESSAGES.test(e.message)) return true;
  // Dual-stack connects fail with an AggregateError of the attempts; wrappers keep a cause.
  if (Array.isArray(e.errors) && e.errors.some((inner) => isDatabaseUnavailable(inner, depth + 1))) return true;
  return isDatabaseUnavailable(e.cause, depth + 1);
}

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
export function createDb(connectionString: string, options: { max?: number; applicationName?: string; acquireTimeoutMs?: number; prepared?: boolean } = {}): DbHandle {
  const pool = new pg.Pool({
    connectionString,
    // The texts callers mark (src/db/prepared.ts) run as named statements, planned once per connection.
    ...(options.prepared ? { Client: namingClient() } : {}),
    max: options.max ?? 10,
    application_name: options.applicationName ?? 'hookrelay',
    // pg-pool applies this to both waits: for a pooled connection to come free, and for a new
    // one to be established. Past it the caller gets an error (a 503 from the API) instead of
    // a request that hangs while PostgreSQL is away or the pool is exhausted.
    connectionTimeoutMillis: options.acquireTimeoutMs ?? DEFAULT_ACQUIRE_TIMEOUT_MS,
  });
  // An idle client that loses its server emits 'error' on the pool; without a listener the
  // process would crash. The next query on the pool reconnects.
  pool.on('error', () => {});
  // pg-pool takes that listener off a client while it is checked out (a transaction, a query
  // under way), and a connection that dies then (pg_terminate_backend, a PostgreSQL restart)
  // emits 'error' on the client with nobody listening: an uncaught exception that ends the
  // process. The statement under way rejects with the same error, which callers handle, and
  // the pool discards the client, so this listener only has to exist.
  pool.on('connect', (client) => {
    client.on('error', () => {});
  });
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
