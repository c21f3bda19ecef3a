import { createHash } from 'node:crypto';
import { cp, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import test, { type ExecutionContext } from 'ava';
import { createDb } from '../../src/db/database.ts';
import { MIGRATIONS_DIR, migrate, readMigrations } from '../../src/db/migrate.ts';
import type { ApiTokensTable, AttemptsTable, Database, DeadLettersTable, EndpointHealthTable, EndpointsTable, SigningKeysTable, WebhooksTable } from '../../src/db/schema.ts';
import { freshDatabase, query, silentLog } from '../helpers/db.ts';

/** Migrations: applied once, in one transaction, under an advisory lock, and frozen in time. */

const MIGRATE_TS = fileURLToPath(new URL('../../src/db/migrate.ts', import.meta.url));
const SCHEMA_TS = fileURLToPath(new URL('../../src/db/schema.ts', import.meta.url));

async function migrationsSql(): Promise<string> {
  const files = (await readdir(MIGRATIONS_DIR)).filter((f) => f.endsWith('.sql')).sort();
  return (await Promise.all(files.map((f) => readFile(path.join(MIGRATIONS_DIR, f), 'utf8')))).join('\n');
}

/** A copy of sql/migrations in a temporary directory, removed at teardown. */
async function migrationsCopy(t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'hookrelay-migrations-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await cp(MIGRATIONS_DIR, dir, { recursive: true });
  return dir;
}

async function hookrelayTables(url: string): Promise<string[]> {
  // Base tables only: operators' views (sql/migrations may add them) are not schema.ts tables.
  const rows = await query<{ table_name: string }>(url, `SELECT table_name FROM information_schema.tables WHERE table_schema = 'hookrelay' AND table_type = 'BASE TABLE' ORDER BY table_name`);
  return rows.map((r) => r.table_name);
}

test('migrations apply on an empty database', async (t) => {
  const url = await freshDatabase(t, { migrate: false });
  t.deepEqual(await hookrelayTables(url), []);
  const migrations = await readMigrations();
  t.true(migrations.length >= 1);
  const applied = await migrate(url, silentLog);
  t.deepEqual(applied, migrations.map((m) => m.version));
  t.deepEqual(await hookrelayTables(url), [...Object.keys(TABLES), 'schema_migrations'].sort());
  for (const table of ['api_tokens', 'attempts', 'dead_letters', 'endpoint_health', 'endpoints', 'signing_keys', 'webhooks']) t.true(table in TABLES, table);

  const recorded = await query<{ version: number; name: string; checksum: string }>(url, 'SELECT version, name, checksum FROM hookrelay.schema_migrations ORDER BY version');
  t.deepEqual(recorded, migrations.map((m) => ({ version: m.version, name: m.name, checksum: m.checksum })));
  const first = await readFile(path.join(MIGRATIONS_DIR, '0001_init.sql'));
  t.is(recorded[0]!.checksum, createHash('sha256').update(first).digest('hex'));
  t.is(recorded[0]!.name, 'init');
});

test('running migrate twice applies nothing the second time', async (t) => {
  const url = await freshDatabase(t, { migrate: false });
  const first = await migrate(url, silentLog);
  t.true(first.length >= 1);
  const before = await query(url, 'SELECT version, applied_at FROM hookrelay.schema_migrations ORDER BY version');
  t.deepEqual(await migrate(url, silentLog), []);
  t.deepEqual(await migrate(url, silentLog), []);
  const after = await query(url, 'SELECT version, applied_at FROM hookrelay.schema_migrations ORDER BY version');
  t.deepEqual(after, before);
});

test('4 concurrent migrate() calls on a fresh database all succeed and apply the schema once', async (t) => {
  const url = await freshDatabase(t, { migrate: false });
  const results = await Promise.allSettled([1, 2, 3, 4].map(() => migrate(url, silentLog)));
  const failures = results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason));
  t.deepEqual(failures, []);
  const applied = results.flatMap((r) => (r.status === 'fulfilled' ? r.value : []));
  const versions = (await readMigrations()).map((m) => m.version);
  // Every version applied by exactly one of the four.
  t.deepEqual([...applied].sort((a, b) => a - b), versions);
  t.is(results.filter((r) => r.status === 'fulfilled' && r.value.length > 0).length, 1);
  const rows = await query<{ n: number }>(url, 'SELECT count(*)::int AS n FROM hookrelay.schema_migrations');
  t.is(rows[0]!.n, versions.length);
});

test('concurrent migrate() calls on an already migrated database apply nothing', async (t) => {
  const url = await freshDatabase(t);
  const results = await Promise.all([1, 2, 3, 4].map(() => migrate(url, silentLog)));
  t.deepEqual(results, [[], [], [], []]);
});

test('an edited migration is refused with a message naming the file, and nothing changes', async (t) => {
  const url = await freshDatabase(t, { migrate: false });
  const dir = await migrationsCopy(t);
  t.deepEqual(await migrate(url, silentLog, dir), (await readMigrations(dir)).map((m) => m.version));
  const file = path.join(dir, '0001_init.sql');
  const text = await readFile(file);
  // Change one byte: the comment's first letter.
  const at = text.indexOf('hookrelay');
  t.true(at >= 0);
  text[at] = 'H'.charCodeAt(0);
  await writeFile(file, text);
  const before = await query(url, 'SELECT * FROM hookrelay.schema_migrations');
  const err = await t.throwsAsync(migrate(url, silentLog, dir));
  t.true(err?.message.includes('0001_init.sql'), err?.message);
  t.regex(err?.message ?? '', /changed after it was applied/);
  t.deepEqual(await query(url, 'SELECT * FROM hookrelay.schema_migrations'), before);
  // The original text is accepted again.
  t.deepEqual(await migrate(url, silentLog), []);
});

test('a whitespace-only edit is refused too (the checksum covers every byte)', async (t) => {
  const url = await freshDatabase(t, { migrate: false });
  const dir = await migrationsCopy(t);
  await migrate(url, silentLog, dir);
  await writeFile(path.join(dir, '0001_init.sql'), (await readFile(path.join(dir, '0001_init.sql'), 'utf8')) + '\n');
  await t.throwsAsync(migrate(url, silentLog, dir), { message: /0001_init\.sql/ });
});

test('a new migration applies alone, after the ones already applied', async (t) => {
  const url = await freshDatabase(t, { migrate: false });
  const dir = await migrationsCopy(t);
  const count = (await readMigrations(dir)).length;
  await migrate(url, silentLog, dir);
  const next = String(count + 1).padStart(4, '0');
  await writeFile(path.join(dir, `${next}_extra_table.sql`), 'CREATE TABLE hookrelay.extra (id integer NOT NULL, CONSTRAINT extra_pkey PRIMARY KEY (id));\n');
  t.deepEqual(await migrate(url, silentLog, dir), [count + 1]);
  t.true((await hookrelayTables(url)).includes('extra'));
  t.deepEqual(await migrate(url, silentLog, dir), []);
  // The build without the new migration is older than the database: it refuses to start.
  const err = await t.throwsAsync(migrate(url, silentLog));
  t.regex(err?.message ?? '', /newer than this build/);
});

test('a failing migration leaves nothing applied: every pending migration runs in one transaction', async (t) => {
  const url = await freshDatabase(t, { migrate: false });
  const dir = await migrationsCopy(t);
  const count = (await readMigrations(dir)).length;
  const next = String(count + 1).padStart(4, '0');
  await writeFile(path.join(dir, `${next}_broken.sql`), 'CREATE TABLE hookrelay.half (id integer);\nTHIS IS NOT SQL;\n');
  await t.throwsAsync(migrate(url, silentLog, dir));
  t.deepEqual(await hookrelayTables(url), []);
  // Without the broken file, everything applies.
  await rm(path.join(dir, `${next}_broken.sql`));
  t.is((await migrate(url, silentLog, dir)).length, count);
});

test('misnamed and gapped migration files are refused before the database is touched', async (t) => {
  const dir = await migrationsCopy(t);
  await writeFile(path.join(dir, '0009_gap.sql'), 'SELECT 1;');
  await t.throwsAsync(readMigrations(dir), { message: /0009_gap\.sql/ });
  await rm(path.join(dir, '0009_gap.sql'));
  await writeFile(path.join(dir, '2-Bad Name.sql'), 'SELECT 1;');
  await t.throwsAsync(readMigrations(dir), { message: /2-Bad Name\.sql/ });
  await rm(path.join(dir, '2-Bad Name.sql'));
  // Files that are not .sql are ignored.
  await writeFile(path.join(dir, 'README.md'), 'notes');
  t.is((await readMigrations(dir)).length, (await readMigrations()).length);
});

test('every constraint and index in the hookrelay schema is named explicitly in the migrations', async (t) => {
  const url = await freshDatabase(t);
  const sql = await migrationsSql();
  const migrateTs = await readFile(MIGRATE_TS, 'utf8');
  const constraints = await query<{ conname: string; table: string; contype: string }>(url, `
    SELECT c.conname, r.relname AS table, c.contype
    FROM pg_constraint c
    JOIN pg_namespace n ON n.oid = c.connamespace
    LEFT JOIN pg_class r ON r.oid = c.conrelid
    WHERE n.nspname = 'hookrelay' AND c.contype <> 'n'
    ORDER BY c.conname`);
  t.true(constraints.length >= 20, `only ${constraints.length} constraints`);
  const word = (name: string) => new RegExp(`\\bCONSTRAINT\\s+${name}\\b`);
  for (const c of constraints) {
    // schema_migrations is made by migrate.ts itself, before any migration runs.
    const source = c.table === 'schema_migrations' ? migrateTs : sql;
    t.regex(source, word(c.conname), `constraint ${c.conname} on ${c.table} is not named in the migrations`);
  }
  const indexes = await query<{ indexname: string }>(url, `SELECT indexname FROM pg_indexes WHERE schemaname = 'hookrelay' ORDER BY indexname`);
  const constraintNames = new Set(constraints.map((c) => c.conname));
  for (const { indexname } of indexes) {
    if (constraintNames.has(indexname)) continue; // the index behind a primary key or unique constraint
    t.regex(sql, new RegExp(`\\bCREATE\\s+(UNIQUE\\s+)?INDEX\\s+(CONCURRENTLY\\s+)?${indexname}\\b`), `index ${indexname} is not named in the migrations`);
  }
  // The other way round: every CONSTRAINT named in the migrations exists.
  for (const [, name] of sql.matchAll(/\bCONSTRAINT\s+([a-z0-9_]+)/g)) {
    t.true(constraintNames.has(name!), `${name} is in the migrations but not in the database`);
  }
});

test('the constraints src/db/constraints.ts maps to API problems exist', async (t) => {
  const url = await freshDatabase(t);
  const source = await readFile(fileURLToPath(new URL('../../src/db/constraints.ts', import.meta.url)), 'utf8');
  const names = [...source.matchAll(/^\s+([a-z0-9_]+): \(\) => new AppError/gm)].map((m) => m[1]!);
  t.true(names.length >= 1);
  const rows = await query<{ conname: string }>(url, `SELECT conname FROM pg_constraint WHERE connamespace = 'hookrelay'::regnamespace AND conname = ANY($1)`, [names]);
  t.deepEqual(rows.map((r) => r.conname).sort(), [...names].sort());
});

// ---------------------------------------------------------------------------------------------
// src/db/schema.ts against information_schema. Each Record below must list exactly the keys of
// its table interface (the compiler checks that), with the column's type and nullability.

type Col = readonly [dataType: string, nullable: boolean];

const API_TOKENS: Record<keyof ApiTokensTable, Col> = {
  id: ['text', false],
  name: ['text', false],
  token_hash: ['bytea', false],
  created_at: ['timestamp with time zone', false],
  last_used_at: ['timestamp with time zone', true],
  revoked_at: ['timestamp with time zone', true],
  scopes: ['ARRAY', false],
  expires_at: ['timestamp with time zone', true],
  rate_limit_per_second: ['integer', true],
  rate_limit_burst: ['integer', true],
};

const ENDPOINTS: Record<keyof EndpointsTable, Col> = {
  id: ['text', false],
  url: ['text', false],
  description: ['text', false],
  enabled: ['boolean', false],
  disabled_reason: ['text', true],
  headers: ['jsonb', false],
  retry_policy: ['jsonb', true],
  timeout_ms: ['integer', true],
  signature_algorithm: ['text', false],
  metadata: ['jsonb', false],
  created_at: ['timestamp with time zone', false],
  updated_at: ['timestamp with time zone', false],
  deleted_at: ['timestamp with time zone', true],
};

const SIGNING_KEYS: Record<keyof SigningKeysTable, Col> = {
  id: ['text', false],
  endpoint_id: ['text', false],
  kind: ['text', false],
  sealed_secret: ['bytea', false],
  public_key: ['text', true],
  created_at: ['timestamp with time zone', false],
  expires_at: ['timestamp with time zone', true],
};

const WEBHOOKS: Record<keyof WebhooksTable, Col> = {
  id: ['text', false],
  endpoint_id: ['text', false],
  url: ['text', false],
  body: ['text', false],
  headers: ['jsonb', false],
  retry_policy: ['jsonb', false],
  status: ['text', false],
  attempts: ['integer', false],
  attempts_base: ['integer', false],
  next_attempt_at: ['timestamp with time zone', true],
  last_attempt_at: ['timestamp with time zone', true],
  delivered_at: ['timestamp with time zone', true],
  last_status_code: ['integer', true],
  last_error: ['text', true],
  idempotency_key: ['text', true],
  request_hash: ['bytea', true],
  request_id: ['text', true],
  traceparent: ['text', true],
  created_at: ['timestamp with time zone', false],
  updated_at: ['timestamp with time zone', false],
};

const ATTEMPTS: Record<keyof AttemptsTable, Col> = {
  webhook_id: ['text', false],
  attempt: ['integer', false],
  endpoint_id: ['text', false],
  started_at: ['timestamp with time zone', false],
  duration_ms: ['integer', false],
  status_code: ['integer', true],
  outcome: ['text', false],
  error_class: ['text', true],
  error: ['text', true],
  response_body: ['text', true],
};

const ENDPOINT_HEALTH: Record<keyof EndpointHealthTable, Col> = {
  endpoint_id: ['text', false],
  circuit_state: ['text', false],
  consecutive_failures: ['integer', false],
  window_started_at: ['timestamp with time zone', false],
  window_attempts: ['integer', false],
  window_failures: ['integer', false],
  opened_at: ['timestamp with time zone', true],
  open_count: ['integer', false],
  next_probe_at: ['timestamp with time zone', true],
  probe_started_at: ['timestamp with time zone', true],
  last_success_at: ['timestamp with time zone', true],
  last_failure_at: ['timestamp with time zone', true],
  failing_since: ['timestamp with time zone', true],
  health_score: ['integer', false],
  updated_at: ['timestamp with time zone', false],
};

const DEAD_LETTERS: Record<keyof DeadLettersTable, Col> = {
  id: ['text', false],
  webhook_id: ['text', false],
  endpoint_id: ['text', false],
  reason: ['text', false],
  last_status_code: ['integer', true],
  last_error: ['text', true],
  attempts: ['integer', false],
  dead_at: ['timestamp with time zone', false],
  replayed_at: ['timestamp with time zone', true],
  replayed_by: ['text', true],
};

const TABLES: { [T in keyof Database]: Record<keyof Database[T], Col> } = {
  api_tokens: API_TOKENS,
  endpoints: ENDPOINTS,
  signing_keys: SIGNING_KEYS,
  webhooks: WEBHOOKS,
  attempts: ATTEMPTS,
  endpoint_health: ENDPOINT_HEALTH,
  dead_letters: DEAD_LETTERS,
};

test('the tables and columns of src/db/schema.ts match information_schema', async (t) => {
  const url = await freshDatabase(t);
  const rows = await query<{ table_name: string; column_name: string; data_type: string; is_nullable: string }>(url, `
    SELECT c.table_name, c.column_name, c.data_type, c.is_nullable
    FROM information_schema.columns c
    JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
    WHERE c.table_schema = 'hookrelay' AND c.table_name <> 'schema_migrations' AND t.table_type = 'BASE TABLE'
    ORDER BY c.table_name, c.ordinal_position`);
  const actual: Record<string, Record<string, Col>> = {};
  for (const r of rows) (actual[r.table_name] ??= {})[r.column_name] = [r.data_type, r.is_nullable === 'YES'];
  t.deepEqual(actual, JSON.parse(JSON.stringify(TABLES)));
});

test('schema.ts declares the same tables and columns as the lists in this test', async (t) => {
  // A light parse of schema.ts: the compiler already ties the lists above to the interfaces;
  // this guards against the interfaces and the Database map drifting apart silently.
  const source = await readFile(SCHEMA_TS, 'utf8');
  const database = /export interface Database \{([^}]*)\}/.exec(source)?.[1] ?? '';
  const tableToInterface = Object.fromEntries([...database.matchAll(/(\w+): (\w+);/g)].map((m) => [m[1]!, m[2]!]));
  t.deepEqual(Object.keys(tableToInterface).sort(), Object.keys(TABLES).sort());
  for (const [table, iface] of Object.entries(tableToInterface)) {
    const body = new RegExp(`export interface ${iface} \\{([^}]*)\\}`).exec(source)?.[1] ?? '';
    const fields = [...body.matchAll(/^\s+(\w+):/gm)].map((m) => m[1]!);
    t.deepEqual(fields.sort(), Object.keys(TABLES[table as keyof Database]).sort(), table);
  }
});

test('Kysely can select every column of every table through the Database interface', async (t) => {
  const url = await freshDatabase(t);
  const handle = createDb(url, { max: 2 });
  t.teardown(() => handle.close());
  const { db } = handle;
  // Each select names every column; a column missing from the database fails the query.
  await db.selectFrom('api_tokens').select(Object.keys(API_TOKENS) as (keyof ApiTokensTable)[]).execute();
  await db.selectFrom('endpoints').select(Object.keys(ENDPOINTS) as (keyof EndpointsTable)[]).execute();
  await db.selectFrom('signing_keys').select(Object.keys(SIGNING_KEYS) as (keyof SigningKeysTable)[]).execute();
  await db.selectFrom('webhooks').select(Object.keys(WEBHOOKS) as (keyof WebhooksTable)[]).execute();
  await db.selectFrom('attempts').select(Object.keys(ATTEMPTS) as (keyof AttemptsTable)[]).execute();
  await db.selectFrom('endpoint_health').select(Object.keys(ENDPOINT_HEALTH) as (keyof EndpointHealthTable)[]).execute();
  await db.selectFrom('dead_letters').select(Object.keys(DEAD_LETTERS) as (keyof DeadLettersTable)[]).execute();
  t.pass();
});
