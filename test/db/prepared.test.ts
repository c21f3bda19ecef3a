import test from 'ava';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { byText, namingClient, PreparedTexts } from '../../src/db/prepared.ts';
import { createDb } from '../../src/db/database.ts';
import type { Database } from '../../src/db/schema.ts';
import { createKeyring } from '../../src/endpoints/keyring.ts';
import { createEndpoint, getEndpoint, liveEndpointForUrl } from '../../src/endpoints/store.ts';
import { freshDatabase } from '../helpers/db.ts';
import { TEST_MASTER_KEY } from '../helpers/service.ts';

/**
 * Named statements on hookrelay's pool (src/db/prepared.ts): the texts callers mark run under
 * a name, parsed and planned once per connection; everything else runs as before.
 */

/** One connection, so that pg_prepared_statements shows the one the statements ran on. */
function namingPool(url: string, texts: PreparedTexts): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max: 1, Client: namingClient(texts) });
  // As createDb's pool: a connection ended from outside (the database dropped at teardown) is
  // the pool's to replace, not an uncaught error.
  pool.on('error', () => {});
  // And one ended while the pool lets it go (pool.end() does not wait for the socket to close).
  pool.on('connect', (client) => client.on('error', () => {}));
  return pool;
}

test('marked texts get stable names, at most `max` of them; forget starts new names', (t) => {
  const texts = new PreparedTexts(2);
  t.is(texts.prepare('SELECT 1'), 'SELECT 1', 'prepare answers the text itself');
  texts.prepare('SELECT 1');
  texts.prepare('SELECT 2');
  texts.prepare('SELECT 3');
  t.is(texts.size, 2);
  const one = texts.nameOf('SELECT 1');
  t.regex(one ?? '', /^hookrelay_0_\d+$/);
  t.not(texts.nameOf('SELECT 2'), one);
  t.is(texts.nameOf('SELECT 3'), undefined, 'past the limit a text runs unnamed');
  texts.forget();
  t.is(texts.size, 0);
  t.is(texts.nameOf('SELECT 1'), undefined);
  texts.prepare('SELECT 1');
  t.regex(texts.nameOf('SELECT 1') ?? '', /^hookrelay_1_/, 'a new generation, so no connection holds the name yet');
});

test('byText derives once per text and starts over past its limit', (t) => {
  let calls = 0;
  const upper = byText((text) => {
    calls += 1;
    return { text: text.toUpperCase() };
  }, 2);
  const a = upper('a');
  t.is(upper('a'), a, 'the same value, not a new one');
  t.is(calls, 1);
  upper('b');
  upper('c');
  t.is(calls, 3);
  t.deepEqual(upper('a'), { text: 'A' });
  t.is(calls, 4, 'forgotten past the limit, derived again');
});

test('a pool of naming clients prepares marked texts once per connection and leaves the rest unnamed', async (t) => {
  const url = await freshDatabase(t, { migrate: false });
  const texts = new PreparedTexts();
  const pool = namingPool(url, texts);
  t.teardown(() => pool.end());
  const marked = texts.prepare('SELECT $1::int + 1 AS n');
  for (const n of [1, 2, 3]) t.deepEqual((await pool.query(marked, [n])).rows, [{ n: n + 1 }]);
  t.deepEqual((await pool.query('SELECT $1::int * 2 AS n', [4])).rows, [{ n: 8 }]);
  const { rows } = await pool.query<{ name: string; statement: string }>('SELECT name, statement FROM pg_prepared_statements ORDER BY name');
  t.deepEqual(rows, [{ name: texts.nameOf(marked)!, statement: marked }], 'one prepared statement, the marked one');
  // A config object, as pg-boss and node-postgres' own callers send, passes through as it is.
  t.deepEqual((await pool.query({ text: marked, values: [9] })).rows, [{ n: 10 }]);
});

test('a prepared statement whose result type changed is prepared again under a new name', async (t) => {
  const url = await freshDatabase(t, { migrate: false });
  const texts = new PreparedTexts();
  const pool = namingPool(url, texts);
  t.teardown(() => pool.end());
  await pool.query('CREATE TABLE t (a int)');
  await pool.query('INSERT INTO t VALUES (1)');
  const text = 'SELECT * FROM t';
  texts.prepare(text);
  t.deepEqual((await pool.query(text, [])).rows, [{ a: 1 }]);
  await pool.query('ALTER TABLE t ADD COLUMN b text');
  // PostgreSQL refuses the old plan's name on that connection from now on (0A000)...
  const err = await t.throwsAsync(pool.query(text, []));
  t.is((err as { code?: string }).code, '0A000');
  t.is(texts.size, 0, 'the names were forgotten');
  // ...so the next run, marked again by its caller, is parsed under a new name.
  texts.prepare(text);
  t.deepEqual((await pool.query(text, [])).rows, [{ a: 1, b: null }]);
});

test('the endpoint reads a submission makes keep working, prepared, when a migration adds a column to endpoints', async (t) => {
  const url = await freshDatabase(t);
  const handle = createDb(url, { max: 1, prepared: true });
  t.teardown(() => handle.close());
  const keyring = createKeyring(Buffer.from(TEST_MASTER_KEY, 'base64'));
  const endpoint = await createEndpoint(handle.db, keyring, { url: 'https://receiver.example.com/hook' });
  t.is((await getEndpoint(handle.db, endpoint.id))?.url, endpoint.url);
  t.is((await liveEndpointForUrl(handle.db, endpoint.url))?.id, endpoint.id);
  const { rows } = await handle.pool.query<{ statement: string }>('SELECT statement FROM pg_prepared_statements');
  t.is(rows.filter((r) => /from "hookrelay"\."endpoints" where/i.test(r.statement)).length, 2, 'both reads are prepared on the connection');
  // Another instance, newer, migrates while this one runs: a SELECT * prepared before would now fail (0A000).
  await handle.pool.query('ALTER TABLE hookrelay.endpoints ADD COLUMN added_later text');
  const again = await getEndpoint(handle.db, endpoint.id);
  t.deepEqual(again, await getEndpoint(handle.db, endpoint.id));
  t.deepEqual(Object.keys(again!).sort(), Object.keys(endpoint).sort(), 'the columns this version knows');
  t.is((await liveEndpointForUrl(handle.db, endpoint.url))?.id, endpoint.id);
});

test('the endpoint reads name hookrelay\'s schema whatever handle runs them first, an application\'s own included', async (t) => {
  const url = await freshDatabase(t);
  // An application's Kysely handle on the same database, without hookrelay's schema plugin.
  const pool = new pg.Pool({ connectionString: url, max: 1 });
  pool.on('error', () => {});
  const plain = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  t.teardown(() => plain.destroy());
  const handle = createDb(url, { max: 1 });
  t.teardown(() => handle.close());
  const endpoint = await createEndpoint(handle.db, createKeyring(Buffer.from(TEST_MASTER_KEY, 'base64')), { url: 'https://receiver.example.com/app' });
  // The application's handle first (its search_path does not hold hookrelay), then hookrelay's.
  t.is((await getEndpoint(plain, endpoint.id))?.id, endpoint.id);
  t.is((await liveEndpointForUrl(plain, endpoint.url))?.id, endpoint.id);
  t.is((await getEndpoint(handle.db, endpoint.id))?.id, endpoint.id);
  t.is((await liveEndpointForUrl(handle.db, endpoint.url))?.id, endpoint.id);
});
