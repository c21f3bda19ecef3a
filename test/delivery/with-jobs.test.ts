import test from 'ava';
import { joinStatements, ShapeUnknown } from '../../src/delivery/with-jobs.ts';

/** How the webhooks insert is put in front of pg-boss's job insert (src/delivery/with-jobs.ts). */

const ROWS = 'insert into "hookrelay"."webhooks" ("id", "body") values ($1, $2), ($3, $4), ($5, $6), ($7, $8), ($9, $10)';

test('in front of a job insert that is a WITH, the rows join its list, their parameters after the job\'s', (t) => {
  const joined = joinStatements(ROWS, 10, '\n    WITH ins AS (INSERT INTO q.job SELECT * FROM json_to_recordset($1::text::json)) SELECT id FROM ins', 1);
  t.is(joined, 'WITH hookrelay_rows AS (insert into "hookrelay"."webhooks" ("id", "body") values ($2, $3), ($4, $5), ($6, $7), ($8, $9), ($10, $11)), ins AS (INSERT INTO q.job SELECT * FROM json_to_recordset($1::text::json)) SELECT id FROM ins');
});

test('in front of a bare INSERT, the rows are its WITH', (t) => {
  t.is(joinStatements('insert into w (a) values ($1)', 1, 'INSERT INTO q.job VALUES ($1, $2)', 2), 'WITH hookrelay_rows AS (insert into w (a) values ($3)) INSERT INTO q.job VALUES ($1, $2)');
});

test('any other shape is refused before anything runs', (t) => {
  for (const other of ['WITH RECURSIVE r AS (SELECT 1) INSERT INTO q.job SELECT * FROM r', 'SELECT 1', '/* note */ INSERT INTO q.job VALUES ($1)', 'UPDATE q.job SET state = $1', 'INSERTED']) {
    t.throws(() => joinStatements('insert into w (a) values ($1)', 1, other, 1), { instanceOf: ShapeUnknown }, other);
  }
});

test('a placeholder outside the rows\' own parameters is an error, not a silent misnumbering', (t) => {
  t.throws(() => joinStatements('insert into w (a, b) values ($1, $3)', 2, 'INSERT INTO q.job VALUES ($1)', 1), { message: /\$3 is outside/ });
  t.throws(() => joinStatements('insert into w (a) values ($0)', 1, 'INSERT INTO q.job VALUES ($1)', 1), { message: /\$0 is outside/ });
});
