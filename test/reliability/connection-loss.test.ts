import test from 'ava';
import { sql } from 'kysely';
import { createDb, isDatabaseUnavailable } from '../../src/db/database.ts';
import { freshDatabase, query } from '../helpers/db.ts';

/**
 * Found by the chaos soak: pg_terminate_backend of a connection that was checked out of the
 * pool (inside a transaction) ended the API process with an unhandled 'error' event. The
 * process must survive it: the transaction fails, the pool goes on with a new connection.
 */
test('a checked-out connection killed by the server fails its transaction, not the process', async (t) => {
  const url = await freshDatabase(t, { migrate: false });
  const handle = createDb(url, { max: 2 });
  t.teardown(() => handle.close());

  const outcome = await handle.db.transaction().execute(async (trx) => {
    const { rows } = await sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`.execute(trx);
    const pid = rows[0]!.pid;
    // Killed from outside while this transaction holds the connection and runs nothing.
    await query(url, 'SELECT pg_terminate_backend($1)', [pid]);
    // Long enough for the socket's end to arrive and the 'error' event to be emitted.
    await new Promise((resolve) => setTimeout(resolve, 300));
    return sql`SELECT 1`.execute(trx).then(() => 'committed', (err: unknown) => err);
  }).catch((err: unknown) => err);

  t.not(outcome, 'committed');
  t.true(isDatabaseUnavailable(outcome), String(outcome));
  // The pool replaces the dead connection.
  const { rows } = await sql<{ one: number }>`SELECT 1 AS one`.execute(handle.db);
  t.deepEqual(rows, [{ one: 1 }]);
});
