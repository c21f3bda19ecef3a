import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { ExecutionContext } from 'ava';
import { createDb, QUEUE_SCHEMA, type DbHandle } from '../../src/db/database.ts';
import { migrate } from '../../src/db/migrate.ts';
import { createLogger } from '../../src/log.ts';

/**
 * Every test file works in a database of its own, created here and dropped when the file's
 * tests end. The server is DATABASE_URL's (scripts/test.ts sets it to an embedded server
 * when the environment has none).
 */

export const silentLog = createLogger({ level: 'error', silent: true });

export function serverUrl(): string {
  const url = process.env.DATABASE_URL;
  if (!url) throw new Error('DATABASE_URL is not set: run the suite with `npm test`, which provides one');
  return url;
}

function withDatabase(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

async function admin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: withDatabase(serverUrl(), 'postgres') });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** Creates an empty database and returns its connection string; it is dropped at teardown. */
export async function freshDatabase(t: ExecutionContext, options: { migrate?: boolean } = {}): Promise<string> {
  const name = `hookrelay_test_${randomBytes(6).toString('hex')}`;
  await admin((c) => c.query(`CREATE DATABASE ${name}`));
  t.teardown(() => admin((c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).then(() => undefined));
  const url = withDatabase(serverUrl(), name);
  if (options.migrate ?? true) await migrate(url, silentLog);
  return url;
}

/** A Kysely handle on a fresh, migrated database, closed at teardown. */
export async function freshDb(t: ExecutionContext): Promise<{ url: string; handle: DbHandle }> {
  const url = await freshDatabase(t);
  const handle = createDb(url, { max: 4 });
  t.teardown(() => handle.close());
  return { url, handle };
}

/**
 * Every statement `handle`'s pool sends from now on, in order, as PostgreSQL receives them:
 * for tests that fix how many round trips a write takes.
 */
export function recordStatements(handle: DbHandle): string[] {
  const statements: string[] = [];
  const connect = handle.pool.connect.bind(handle.pool) as () => Promise<any>;
  (handle.pool as any).connect = async () => {
    const client = await connect();
    if (!client.recorded) {
      const send = client.query.bind(client);
      client.query = (text: unknown, ...rest: unknown[]) => {
        statements.push(typeof text === 'string' ? text : (text as { text: string }).text);
        return send(text, ...rest);
      };
      client.recorded = true;
    }
    return client;
  };
  return statements;
}

/**
 * Listens to the queue's NOTIFY channel (pg-boss's, for the hookrelay_queue schema) and
 * returns a function that answers, once every notification committed before it was called
 * has arrived, the payloads heard so far (a marker sent on the channel closes the wait:
 * notifications arrive in commit order).
 */
export async function listenToQueue(t: ExecutionContext, url: string): Promise<() => Promise<string[]>> {
  const listener = new pg.Client({ connectionString: url });
  await listener.connect();
  t.teardown(() => listener.end());
  const [{ channel }] = (await listener.query(`SELECT 'pgboss_' || left(encode(sha224($1::bytea), 'hex'), 24) AS channel`, [QUEUE_SCHEMA])).rows;
  const heard: string[] = [];
  let marked: () => void = () => {};
  listener.on('notification', (n) => {
    if (n.payload === 'end-of-test') marked();
    else heard.push(n.payload ?? '');
  });
  await listener.query(`LISTEN "${channel}"`);
  return async () => {
    const marker = new Promise<void>((resolve) => { marked = resolve; });
    await query(url, `SELECT pg_notify($1, 'end-of-test')`, [channel]);
    await marker;
    return [...heard];
  };
}

/** Runs one query on its own connection: what an operator would see with psql. */
export async function query<R extends pg.QueryResultRow = Record<string, any>>(url: string, text: string, values: unknown[] = []): Promise<R[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<R>(text, values)).rows;
  } finally {
    await client.end();
  }
}
