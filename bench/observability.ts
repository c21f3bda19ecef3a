/**
 * What a scrape costs: the database-backed figures of GET /metrics (backlog, oldest pending
 * age, worst endpoints, endpoints by state) and of GET /api/v1/stats, timed against a
 * database holding `--history` finished webhooks (one attempt each, spread over the last two
 * hours), `--backlog` pending ones and `--endpoints` endpoints.
 *
 *   DATABASE_URL=postgres://… node bench/observability.ts [--history 200000] [--backlog 50000] [--endpoints 500] [--runs 30]
 */
import { createDb } from '../src/db/database.ts';
import { migrate } from '../src/db/migrate.ts';
import { createLogger } from '../src/log.ts';
import { createMetrics } from '../src/observability/metrics.ts';
import { readStats } from '../src/observability/stats.ts';
import { freshDatabase, machine, numArg, parseArgs, report, round, summarize } from './lib.ts';

const args = parseArgs();
const history = numArg(args, 'history', 200_000);
const backlog = numArg(args, 'backlog', 50_000);
const endpoints = numArg(args, 'endpoints', 500);
const runs = numArg(args, 'runs', 30);

const database = await freshDatabase();
try {
  const log = createLogger({ level: 'error', silent: true });
  await migrate(database.url, log);
  const handle = createDb(database.url, { max: 4 });
  try {
    const { sql } = await import('kysely');
    await sql`INSERT INTO hookrelay.endpoints (id, url) SELECT 'ep_' || i, 'https://e' || i || '.example.com/' FROM generate_series(1, ${endpoints}) i`.execute(handle.db);
    await sql`UPDATE hookrelay.endpoint_health SET health_score = (random() * 100)::int, consecutive_failures = (random() * 10)::int`.execute(handle.db);
    await sql`INSERT INTO hookrelay.webhooks (id, endpoint_id, url, body, retry_policy, status, attempts, delivered_at, created_at, updated_at)
      SELECT 'msg_h' || i, 'ep_' || (1 + i % ${endpoints}), 'https://x/', '{}', '{}', 'delivered', 1, t, t, t
      FROM generate_series(1, ${history}) i, LATERAL (SELECT now() - (i % 7200) * interval '1 second' AS t) x`.execute(handle.db);
    await sql`INSERT INTO hookrelay.attempts (webhook_id, attempt, endpoint_id, started_at, duration_ms, status_code, outcome)
      SELECT id, 1, endpoint_id, created_at, 20, 200, 'success' FROM hookrelay.webhooks`.execute(handle.db);
    await sql`INSERT INTO hookrelay.webhooks (id, endpoint_id, url, body, retry_policy, status, next_attempt_at, created_at, updated_at)
      SELECT 'msg_p' || i, 'ep_' || (1 + i % ${endpoints}), 'https://x/', '{}', '{}', 'pending', now(), now() - i * interval '1 millisecond', now()
      FROM generate_series(1, ${backlog}) i`.execute(handle.db);
    await sql`VACUUM ANALYZE hookrelay.webhooks`.execute(handle.db);
    await sql`VACUUM ANALYZE hookrelay.attempts`.execute(handle.db);

    const time = async (fn: () => Promise<unknown>) => {
      const ms: number[] = [];
      await fn();
      for (let i = 0; i < runs; i++) {
        const start = performance.now();
        await fn();
        ms.push(performance.now() - start);
      }
      const s = summarize(ms.sort((a, b) => a - b));
      return { p50: round(s.p50), p95: round(s.p95), max: round(s.max) };
    };
    // A new registry per render: one reading of the database, as the first scrape of each 5 s does.
    const cached = createMetrics({ db: handle.db, pool: handle.pool, processMetrics: false });
    report({
      benchmark: 'observability scrape cost (ms)',
      rows: { history, backlog, endpoints },
      metricsRenderUncached: await time(() => createMetrics({ db: handle.db, pool: handle.pool, processMetrics: false }).render()),
      metricsRenderCached: await time(() => cached.render()),
      stats: await time(() => readStats(handle.db)),
      machine: machine(database.postgresVersion),
    });
  } finally {
    await handle.close();
  }
} finally {
  await database.drop();
}
