import test, { type ExecutionContext } from 'ava';
import { randomUUID } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { createLogger } from '../../src/log.ts';
import { createKeyring } from '../../src/endpoints/keyring.ts';
import { createDb } from '../../src/db/database.ts';
import { MIN_CHANGED, needsAnalysis, startStatisticsKeeper } from '../../src/db/statistics.ts';
import { DELIVERY_QUEUE, startQueue } from '../../src/delivery/queue.ts';
import { settleWebhooks, type SettledWebhook } from '../../src/delivery/record.ts';
import { fetchDeliveries } from '../../src/delivery/worker.ts';
import { freshDatabase, query, silentLog } from '../helpers/db.ts';
import { TEST_MASTER_KEY } from '../helpers/service.ts';

/**
 * The statistics keeper (src/db/statistics.ts). Planned without statistics (a new database,
 * autovacuum not round yet, or off), the worker's fetch and the recording UPDATE read every
 * queued job and every open webhook for each batch; with them, the batch's rows only.
 */

/** The nodes of an EXPLAIN (FORMAT JSON) plan, depth first. */
function planNodes(plan: Record<string, any>): Array<Record<string, any>> {
  return [plan, ...((plan.Plans ?? []) as Array<Record<string, any>>).flatMap(planNodes)];
}

async function explain(url: string, text: string, values: readonly unknown[] = []): Promise<Array<Record<string, any>>> {
  return planNodes((await query(url, `EXPLAIN (FORMAT JSON) ${text}`, [...values]))[0]!['QUERY PLAN'][0].Plan);
}

async function reltuples(url: string, table: string): Promise<number> {
  return Number((await query(url, `SELECT reltuples FROM pg_class WHERE oid = '${table}'::regclass`))[0]!.reltuples);
}

/** A migrated database with the queue's tables, analyzed by nothing but the keeper under test. */
async function setUp(t: ExecutionContext) {
  const url = await freshDatabase(t);
  const boss = await startQueue(url, { deliveryTimeoutMs: 5_000, queueHeartbeatSeconds: 10, queueSuperviseSeconds: 60, dbPoolMax: 2 }, silentLog, { supervise: false });
  t.teardown(() => boss.stop({ graceful: false, close: true }));
  for (const table of ['hookrelay.webhooks', 'hookrelay_queue.job_common']) await query(url, `ALTER TABLE ${table} SET (autovacuum_enabled = false)`);
  const handle = createDb(url, { max: 2 });
  t.teardown(() => handle.close());
  await query(url, `INSERT INTO hookrelay.endpoints (id, url) VALUES ('ep_stats', 'http://127.0.0.1:9/hook')`);
  return { url, boss, db: handle.db };
}

/** A keeper that looks only when told (its first look starts at once, as in the service). */
function keeper(t: ExecutionContext, db: Parameters<typeof startStatisticsKeeper>[0]) {
  const logs: Array<Record<string, unknown>> = [];
  const stream = new PassThrough();
  stream.on('data', (chunk: Buffer) => {
    for (const line of chunk.toString('utf8').split('\n')) if (line.trim()) logs.push(JSON.parse(line));
  });
  const log = createLogger({ level: 'info', stream });
  const k = startStatisticsKeeper(db, log, { queue: DELIVERY_QUEUE, intervalMs: 3_600_000 });
  t.teardown(() => k.stop());
  return { keeper: k, logs };
}

test('which tables need analyzing: never analyzed, or changed by more rows than they held (and at least MIN_CHANGED)', (t) => {
  t.true(needsAnalysis({ reltuples: -1, changed: 0 }));
  t.false(needsAnalysis({ reltuples: 0, changed: MIN_CHANGED }));
  t.true(needsAnalysis({ reltuples: 0, changed: MIN_CHANGED + 1 }));
  t.false(needsAnalysis({ reltuples: 50_000, changed: 50_000 }));
  t.true(needsAnalysis({ reltuples: 50_000, changed: 50_001 }));
});

test('the keeper analyzes tables that were never analyzed or outgrew their statistics, and leaves the others', async (t) => {
  t.timeout(90_000);
  const { url, db } = await setUp(t);
  t.is(await reltuples(url, 'hookrelay.webhooks'), -1, 'never analyzed');
  const { keeper: k, logs } = keeper(t, db);
  const first = await k.check();
  t.true(first.includes('hookrelay.webhooks'), first.join());
  t.true(first.includes('hookrelay_queue.job_common'), first.join());
  t.true(first.includes('hookrelay.attempts'));
  t.is(await reltuples(url, 'hookrelay.webhooks'), 0);
  t.deepEqual(await k.check(), [], 'nothing changed since');

  // A burst into the empty table: analyzed again once its changes are counted (the inserting
  // backend reports them when it ends).
  await query(url, `INSERT INTO hookrelay.webhooks (id, endpoint_id, url, body, retry_policy)
    SELECT 'wh_' || g, 'ep_stats', 'http://127.0.0.1:9/hook', '{}', '{}' FROM generate_series(1, 5000) g`);
  let again: string[] = [];
  for (let i = 0; i < 50 && !again.includes('hookrelay.webhooks'); i++) {
    again = await k.check();
    if (!again.includes('hookrelay.webhooks')) await new Promise((r) => setTimeout(r, 100));
  }
  t.true(again.includes('hookrelay.webhooks'));
  t.is(await reltuples(url, 'hookrelay.webhooks'), 5000);
  const lines = logs.filter((l) => l.message === 'statistics: analyzed tables that were never analyzed or had outgrown their statistics');
  t.is(lines.length, 2, 'one line per pass that analyzed');
  t.true((lines[0]!.tables as Array<Record<string, unknown>>).some((e) => e.table === 'hookrelay.webhooks' && e.rowsAtLastAnalysis === null));
  t.deepEqual((lines[1]!.tables as Array<Record<string, unknown>>).find((e) => e.table === 'hookrelay.webhooks'), { table: 'hookrelay.webhooks', rowsAtLastAnalysis: 0, rowsChangedSince: 5000 });

  // Steady state: fewer changes than the table holds are autovacuum's business.
  await query(url, `UPDATE hookrelay.webhooks SET attempts = 1 WHERE id IN (SELECT 'wh_' || g FROM generate_series(1, 2000) g)`);
  // Once the 2,000 changes are counted, so that the look below sees them.
  let counted = 0;
  for (let i = 0; i < 50 && counted < 2000; i++) {
    if (i > 0) await new Promise((r) => setTimeout(r, 100));
    counted = (await query(url, `SELECT n_mod_since_analyze::int AS n FROM pg_stat_all_tables WHERE relid = 'hookrelay.webhooks'::regclass`))[0]!.n;
  }
  t.is(counted, 2000);
  t.deepEqual(await k.check(), []);
});

test('once analyzed, the fetch reads the queue in index order and the recording UPDATE reads its batch by primary key', async (t) => {
  t.timeout(90_000);
  const { url, boss, db } = await setUp(t);
  await boss.insert(DELIVERY_QUEUE, Array.from({ length: 20_000 }, (_, i) => ({
    id: randomUUID(), data: { webhookId: `wh_${i + 1}`, attempt: 1 }, group: { id: 'ep_stats' },
  })));
  await query(url, `INSERT INTO hookrelay.webhooks (id, endpoint_id, url, body, retry_policy)
    SELECT 'wh_' || g, 'ep_stats', 'http://127.0.0.1:9/hook', '{}', '{}' FROM generate_series(1, 20000) g`);

  // The worker's fetch statement, planned and not run (EXPLAIN without ANALYZE claims nothing).
  const keyring = createKeyring(Buffer.from(TEST_MASTER_KEY, 'base64'));
  const fetchPlan = async () => {
    let nodes: Array<Record<string, any>> = [];
    const own = boss.getDb();
    const executeSql = own.executeSql;
    own.executeSql = (async (text: string, values?: unknown[]) => {
      nodes = await explain(url, text, values ?? []);
      return { rows: [] };
    }) as typeof own.executeSql;
    try {
      await fetchDeliveries(boss, keyring, 100, 64);
    } finally {
      own.executeSql = executeSql;
    }
    return nodes;
  };
  const onQueueIndex = (nodes: Array<Record<string, any>>) => nodes.filter((n) => String(n['Index Name'] ?? '').endsWith('_i11'));
  const startedAt = new Date();
  const batch: SettledWebhook[] = Array.from({ length: 100 }, (_, i) => ({
    rec: { webhookId: `wh_${i + 1}`, attempt: 1, startedAt, outcome: { kind: 'delivered' }, result: { ok: true, statusCode: 200, responseHeaders: {}, responseBody: Buffer.from('ok'), durationMs: 3, error: null, errorClass: null } },
    status: 'delivered',
    lastError: null,
  }));
  const update = settleWebhooks(batch, new Date()).compile(db);
  const webhookIndexes = async () => new Set((await explain(url, update.sql, update.parameters)).filter((n) => n['Index Name']).map((n) => n['Index Name'] as string));

  // Before: every queued job in a bitmap and sorted; every open webhook read and hashed.
  t.true(onQueueIndex(await fetchPlan()).some((n) => n['Node Type'] === 'Bitmap Index Scan'), 'the fetch without statistics');
  t.false((await webhookIndexes()).has('webhooks_pkey'), 'the recording UPDATE without statistics');

  const { keeper: k } = keeper(t, db);
  await k.check();
  const fetched = onQueueIndex(await fetchPlan());
  t.true(fetched.length > 0 && fetched.every((n) => n['Node Type'] === 'Index Scan'), JSON.stringify(fetched.map((n) => n['Node Type'])));
  t.deepEqual([...await webhookIndexes()], ['webhooks_pkey']);
});

test('a table the service\'s role does not own is reported once and left to autovacuum', async (t) => {
  t.timeout(60_000);
  const { url } = await setUp(t);
  const role = `hookrelay_test_reader_${randomUUID().slice(0, 8)}`;
  await query(url, `CREATE ROLE ${role} LOGIN`);
  await query(url, `GRANT USAGE ON SCHEMA hookrelay, hookrelay_queue TO ${role}; GRANT SELECT ON ALL TABLES IN SCHEMA hookrelay, hookrelay_queue TO ${role}`);
  t.teardown(async () => {
    await query(url, `DROP OWNED BY ${role}`);
    await query(url, `DROP ROLE ${role}`);
  });
  const asReader = new URL(url);
  asReader.username = role;
  const handle = createDb(asReader.toString(), { max: 1 });
  t.teardown(() => handle.close());

  const { keeper: k, logs } = keeper(t, handle.db);
  t.deepEqual(await k.check(), []);
  t.deepEqual(await k.check(), []);
  t.is(await reltuples(url, 'hookrelay.webhooks'), -1, 'not analyzed');
  const warned = logs.filter((l) => String(l.message).startsWith('statistics: a table needs analyzing and the service\'s role does not own it') && l.table === 'hookrelay.webhooks');
  t.is(warned.length, 1, 'once, not every pass');
});
