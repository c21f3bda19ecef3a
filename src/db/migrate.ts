import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import pg from 'pg';
import { listAssets, readAsset } from '../assets.ts';
import type { Logger } from '../log.ts';

/** Any constant 64-bit key will do; this one is "hookrelay" read as ASCII digits, shortened. */
const MIGRATION_LOCK_KEY = 7_356_113_820_450_961;

export const MIGRATIONS_DIR = fileURLToPath(new URL('../../sql/migrations/', import.meta.url));

export interface Migration {
  version: number;
  name: string;
  sql: string;
  checksum: string;
}

/** The shipped migrations (through src/assets.ts, so the single binary has them), or `dir`'s. */
export async function readMigrations(dir?: string): Promise<Migration[]> {
  const files = (dir === undefined ? listAssets('sql/migrations') : await readdir(dir)).filter((f) => f.endsWith('.sql')).sort();
  const migrations: Migration[] = [];
  for (const file of files) {
    const match = /^(\d{4})_([a-z0-9_]+)\.sql$/.exec(file);
    if (!match) throw new Error(`migration file ${file} is not named NNNN_name.sql`);
    const sql = dir === undefined ? readAsset(`sql/migrations/${file}`).toString('utf8') : await readFile(path.join(dir, file), 'utf8');
    migrations.push({
      version: Number(match[1]),
      name: match[2]!,
      sql,
      checksum: createHash('sha256').update(sql).digest('hex'),
    });
  }
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) throw new Error(`migrations must be numbered 0001, 0002, … without gaps; found ${file(m)} at position ${i + 1}`);
  });
  return migrations;
}

const file = (m: Migration) => `${String(m.version).padStart(4, '0')}_${m.name}.sql`;

/**
 * Applies pending migrations in order, each in the one transaction that also holds an
 * advisory lock, so instances starting together take turns and the second finds nothing to
 * do. A migration that was edited after it was applied stops the start: migrations are
 * frozen in time.
 */
export async function migrate(connectionString: string, log: Logger, dir?: string): Promise<number[]> {
  const migrations = await readMigrations(dir);
  const client = new pg.Client({ connectionString, application_name: 'hookrelay-migrate' });
  await client.connect();
  const applied: number[] = [];
  try {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY]);
    await client.query(`CREATE SCHEMA IF NOT EXISTS hookrelay`);
    await client.query(`CREATE TABLE IF NOT EXISTS hookrelay.schema_migrations (
      version integer NOT NULL, name text NOT NULL, checksum text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now(),
      CONSTRAINT schema_migrations_pkey PRIMARY KEY (version))`);
    const { rows } = await client.query<{ version: number; checksum: string }>('SELECT version, checksum FROM hookrelay.schema_migrations');
    const done = new Map(rows.map((r) => [r.version, r.checksum]));
    for (const m of migrations) {
      const checksum = done.get(m.version);
      if (checksum !== undefined) {
        if (checksum !== m.checksum) throw new Error(`migration ${file(m)} changed after it was applied; add a new migration instead`);
        continue;
      }
      await client.query(m.sql);
      await client.query('INSERT INTO hookrelay.schema_migrations (version, name, checksum) VALUES ($1, $2, $3)', [m.version, m.name, m.checksum]);
      applied.push(m.version);
      log.info('migration applied', { migration: file(m) });
    }
    const newest = Math.max(0, ...done.keys());
    if (newest > migrations.length) throw new Error(`the database is at schema version ${newest}, newer than this build knows (${migrations.length})`);
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    await client.end();
  }
  return applied;
}
