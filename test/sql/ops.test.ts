import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import test from 'ava';
import { freshDatabase, query } from '../helpers/db.ts';
import { startReceiver } from '../helpers/receiver.ts';
import { eventually, startTestService, type TestService } from '../helpers/service.ts';
import { run } from '../helpers/process.ts';

/**
 * The operators' queries in sql/ops, run as an operator runs them: the real psql client, a
 * file, no variables (or the optional ones). The database is populated with direct inserts
 * where exact numbers are the point, and through the real service where the point is that the
 * queries read what the service writes.
 */

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const OPS = path.join(ROOT, 'sql/ops');
const PSQL = process.env.PSQL ?? 'psql';

interface Psql {
  code: number | null;
  stdout: string;
  stderr: string;
  header: string[];
  /** The result rows, by column name (psql --csv; NULL is the empty string). */
  rows: Record<string, string>[];
}

/** Parses psql's --csv output (RFC 4180: quoted fields may hold commas, quotes and newlines). */
function parseCsv(text: string): string[][] {
  const records: string[][] = [];
  let field = '';
  let record: string[] = [];
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      record.push(field);
      field = '';
    } else if (c === '\n') {
      record.push(field);
      records.push(record);
      record = [];
      field = '';
    } else if (c !== '\r') field += c;
  }
  if (field !== '' || record.length > 0) {
    record.push(field);
    records.push(record);
  }
  return records;
}

function psql(dbUrl: string, file: string, vars: Record<string, string> = {}): Promise<Psql> {
  const args = ['-X', '--csv', '-v', 'ON_ERROR_STOP=1', '-d', dbUrl];
  for (const [k, v] of Object.entries(vars)) args.push('-v', `${k}=${v}`);
  args.push('-f', path.join(ROOT, file));
  return run(undefined, PSQL, args, { env: { ...process.env, PGTZ: 'UTC', PGAPPNAME: 'ops-test' } }).then(({ code, stdout, stderr }) => {
    const [header = [], ...records] = parseCsv(stdout);
    const rows = records.map((r) => Object.fromEntries(header.map((h, i) => [h, r[i] ?? ''])));
    return { code, stdout, stderr, header, rows };
  });
}

/** Runs an ops file and fails the test with psql's stderr if psql did. */
async function ops(t: import('ava').ExecutionContext, dbUrl: string, name: string, vars: Record<string, string> = {}): Promise<Record<string, string>[]> {
  const result = await psql(dbUrl, `sql/ops/${name}`, vars);
  t.is(result.code, 0, `${name}: ${result.stderr}`);
  t.is(result.stderr, '', name);
  return result.rows;
}

// ---------------------------------------------------------------------------------------
// Direct inserts: exact numbers.

const POLICY = JSON.stringify({ maxAttempts: 3, baseDelayMs: 100, maxDelayMs: 1000, backoffFactor: 2 });

async function endpoint(dbUrl: string, id: string, extra: { enabled?: boolean; deleted?: boolean } = {}): Promise<void> {
  await query(dbUrl, `INSERT INTO hookrelay.endpoints (id, url, enabled, deleted_at) VALUES ($1, $2, $3, CASE WHEN $4 THEN now() END)`,
    [id, `http://127.0.0.1:9/${id}`, extra.enabled ?? true, extra.deleted ?? false]);
}

let seq = 0;
/** A webhook row; `at` and `deliveredAt` are SQL expressions (e.g. "now() - interval '5 minutes'"). */
async function webhook(dbUrl: string, endpointId: string, status: string, o: { at?: string; deliveredAt?: string; attempts?: number; nextAttemptAt?: string } = {}): Promise<string> {
  const id = `msg_T${String(++seq).padStart(25, '0')}`;
  const deliveredAt = status === 'delivered' ? (o.deliveredAt ?? 'now()') : 'NULL';
  const next = status === 'pending' || status === 'retrying' ? (o.nextAttemptAt ?? 'now()') : 'NULL';
  await query(dbUrl, `
    INSERT INTO hookrelay.webhooks (id, endpoint_id, url, body, retry_policy, status, attempts, created_at, delivered_at, next_attempt_at)
    VALUES ($1, $2, 'http://127.0.0.1:9/x', '{}', $3, $4, $5, ${o.at ?? 'now()'}, ${deliveredAt}, ${next})`,
  [id, endpointId, POLICY, status, o.attempts ?? (status === 'pending' ? 0 : 1)]);
  return id;
}

async function attempt(dbUrl: string, webhookId: string, n: number, o: { at?: string; durationMs?: number; statusCode?: number | null; outcome?: 'success' | 'failure'; errorClass?: string | null }): Promise<void> {
  await query(dbUrl, `
    INSERT INTO hookrelay.attempts (webhook_id, attempt, endpoint_id, started_at, duration_ms, status_code, outcome, error_class)
    SELECT $1, $2, endpoint_id, ${o.at ?? 'now()'}, $3, $4, $5, $6 FROM hookrelay.webhooks WHERE id = $1`,
  [webhookId, n, o.durationMs ?? 10, o.statusCode === undefined ? 200 : o.statusCode, o.outcome ?? 'success', o.errorClass ?? null]);
}

async function deadLetter(dbUrl: string, webhookId: string, reason: string, o: { at?: string; replayed?: boolean } = {}): Promise<void> {
  await query(dbUrl, `
    INSERT INTO hookrelay.dead_letters (id, webhook_id, endpoint_id, reason, attempts, dead_at, replayed_at, replayed_by)
    SELECT 'dl_T' || $1, id, endpoint_id, $2, attempts, ${o.at ?? 'now()'}, CASE WHEN $3 THEN now() END, CASE WHEN $3 THEN 'test' END
      FROM hookrelay.webhooks WHERE id = $1`,
  [webhookId, reason, o.replayed ?? false]);
}

const num = (v: string | undefined) => Number(v);

test('every ops query has a header comment and runs with psql and no variables', async (t) => {
  const dbUrl = await freshDatabase(t);
  const files = (await readdir(OPS)).filter((f) => f.endsWith('.sql')).sort();
  t.deepEqual(files, [
    'attempt-outcomes.sql',
    'backlog-by-endpoint.sql',
    'dead-letters-by-reason.sql',
    'failing-endpoints.sql',
    'latency-percentiles.sql',
    'oldest-pending.sql',
    'throughput-per-minute.sql',
  ]);
  for (const file of files) {
    const text = await readFile(path.join(OPS, file), 'utf8');
    t.regex(text.split('\n')[0]!, /^-- [A-Z].+: /, `${file} starts with a comment saying what it answers`);
    t.true(text.includes(`psql "$DATABASE_URL" -f sql/ops/${file}`), `${file} shows how to run it`);
    const result = await psql(dbUrl, `sql/ops/${file}`);
    t.is(result.code, 0, `${file}: ${result.stderr}`);
    t.is(result.stderr, '');
    t.true(result.header.length >= 3, file);
  }
  // An empty database: nothing waits, nothing failed; the throughput still lists 60 minutes.
  t.deepEqual(await ops(t, dbUrl, 'backlog-by-endpoint.sql'), []);
  t.deepEqual(await ops(t, dbUrl, 'dead-letters-by-reason.sql'), []);
  const minutes = await ops(t, dbUrl, 'throughput-per-minute.sql');
  t.is(minutes.length, 60);
  t.true(minutes.every((m) => m.delivered === '0' && m.attempts === '0'));
});

test('backlog-by-endpoint counts waiting webhooks by endpoint and state, largest backlog first', async (t) => {
  const dbUrl = await freshDatabase(t);
  await endpoint(dbUrl, 'ep_A');
  await endpoint(dbUrl, 'ep_B', { enabled: false });
  await endpoint(dbUrl, 'ep_C');
  for (let i = 0; i < 3; i++) await webhook(dbUrl, 'ep_A', 'pending', { at: `now() - interval '${10 + i} minutes'` });
  for (let i = 0; i < 2; i++) await webhook(dbUrl, 'ep_A', 'retrying', { at: `now() - interval '${30 + i} minutes'`, nextAttemptAt: `now() + interval '${5 + i} minutes'` });
  await webhook(dbUrl, 'ep_A', 'delivered');
  await webhook(dbUrl, 'ep_A', 'dead');
  for (let i = 0; i < 4; i++) await webhook(dbUrl, 'ep_B', 'held', { at: `now() - interval '2 hours'` });
  await webhook(dbUrl, 'ep_C', 'delivered');

  const rows = await ops(t, dbUrl, 'backlog-by-endpoint.sql');
  t.deepEqual(rows.map((r) => [r.endpoint_id, r.status, num(r.webhooks), r.enabled]), [
    ['ep_A', 'pending', 3, 't'],
    ['ep_A', 'retrying', 2, 't'],
    ['ep_B', 'held', 4, 'f'],
  ]);
  // The oldest of each group, and its age.
  const ages = await query(dbUrl, `SELECT status, min(created_at) AS oldest, min(next_attempt_at) AS next FROM hookrelay.webhooks WHERE endpoint_id = 'ep_A' GROUP BY status`);
  const retrying = ages.find((a) => a.status === 'retrying')!;
  t.is(new Date(rows[1]!.oldest_created_at!).getTime(), retrying.oldest.getTime());
  t.is(new Date(rows[1]!.next_attempt_at!).getTime(), retrying.next.getTime());
  t.regex(rows[1]!.oldest_age!, /^00:3[0-9]:\d\d$/);
  t.regex(rows[2]!.oldest_age!, /^0?2:00:\d\d$/);

  const one = await ops(t, dbUrl, 'backlog-by-endpoint.sql', { endpoint_id: 'ep_B' });
  t.deepEqual(one.map((r) => [r.endpoint_id, r.status, num(r.webhooks)]), [['ep_B', 'held', 4]]);
});

test('oldest-pending names the webhook waiting longest for delivery, leaving out held and finished ones', async (t) => {
  const dbUrl = await freshDatabase(t);
  await endpoint(dbUrl, 'ep_A');
  await endpoint(dbUrl, 'ep_B', { enabled: false });
  await webhook(dbUrl, 'ep_B', 'held', { at: `now() - interval '5 days'` });
  await webhook(dbUrl, 'ep_A', 'delivered', { at: `now() - interval '4 days'` });
  await webhook(dbUrl, 'ep_A', 'dead', { at: `now() - interval '4 days'` });
  const oldest = await webhook(dbUrl, 'ep_A', 'retrying', { at: `now() - interval '3 hours'`, attempts: 4 });
  const second = await webhook(dbUrl, 'ep_A', 'pending', { at: `now() - interval '2 hours'` });
  const third = await webhook(dbUrl, 'ep_A', 'pending', { at: `now() - interval '1 hour'` });
  await webhook(dbUrl, 'ep_A', 'pending');

  const rows = await ops(t, dbUrl, 'oldest-pending.sql');
  t.is(rows.length, 1);
  t.like(rows[0], { webhook_id: oldest, endpoint_id: 'ep_A', status: 'retrying', attempts: '4', circuit_state: 'closed', enabled: 't' });
  t.regex(rows[0]!.age!, /^0?3:00:\d\d$/);

  const three = await ops(t, dbUrl, 'oldest-pending.sql', { limit: '3' });
  t.deepEqual(three.map((r) => r.webhook_id), [oldest, second, third]);
});

test('failing-endpoints lists endpoints with an open circuit or recent failures, open circuits first', async (t) => {
  const dbUrl = await freshDatabase(t);
  for (const id of ['ep_OPEN', 'ep_HALF', 'ep_FAILING', 'ep_HEALTHY', 'ep_GONE']) await endpoint(dbUrl, id);
  await endpoint(dbUrl, 'ep_DELETED', { deleted: true });
  await query(dbUrl, `UPDATE hookrelay.endpoint_health SET circuit_state = 'open', consecutive_failures = 7, failing_since = now() - interval '1 hour',
    opened_at = now() - interval '10 minutes', open_count = 2, next_probe_at = now() + interval '1 minute', health_score = 3 WHERE endpoint_id = 'ep_OPEN'`);
  await query(dbUrl, `UPDATE hookrelay.endpoint_health SET circuit_state = 'half_open', consecutive_failures = 5, failing_since = now() - interval '20 minutes',
    next_probe_at = now(), probe_started_at = now(), open_count = 1 WHERE endpoint_id = 'ep_HALF'`);
  await query(dbUrl, `UPDATE hookrelay.endpoint_health SET consecutive_failures = 2, failing_since = now() - interval '2 minutes', health_score = 60 WHERE endpoint_id = 'ep_FAILING'`);
  await query(dbUrl, `UPDATE hookrelay.endpoint_health SET consecutive_failures = 1, failing_since = now() - interval '3 days' WHERE endpoint_id = 'ep_GONE'`);
  await query(dbUrl, `UPDATE hookrelay.endpoints SET enabled = false, disabled_reason = 'the receiver answered 410 Gone' WHERE id = 'ep_GONE'`);
  await query(dbUrl, `UPDATE hookrelay.endpoint_health SET consecutive_failures = 9, failing_since = now() WHERE endpoint_id = 'ep_DELETED'`);
  await webhook(dbUrl, 'ep_OPEN', 'retrying');
  await webhook(dbUrl, 'ep_OPEN', 'pending');
  await deadLetter(dbUrl, await webhook(dbUrl, 'ep_OPEN', 'dead'), 'attempts_exhausted');
  await webhook(dbUrl, 'ep_GONE', 'held');

  const rows = await ops(t, dbUrl, 'failing-endpoints.sql');
  t.deepEqual(rows.map((r) => [r.endpoint_id, r.circuit_state, num(r.consecutive_failures)]), [
    ['ep_OPEN', 'open', 7],
    ['ep_HALF', 'half_open', 5],
    ['ep_GONE', 'closed', 1],
    ['ep_FAILING', 'closed', 2],
  ]);
  t.like(rows[0], { health_score: '3', open_count: '2', enabled: 't', queued: '2', held: '0', open_dead_letters: '1' });
  t.regex(rows[0]!.failing_for!, /^0?1:00:\d\d$/);
  t.truthy(rows[0]!.next_probe_at);
  t.like(rows[2], { enabled: 'f', disabled_reason: 'the receiver answered 410 Gone', held: '1' });
});

test('attempt-outcomes counts the last hour\'s attempts by outcome, error class and status', async (t) => {
  const dbUrl = await freshDatabase(t);
  await endpoint(dbUrl, 'ep_A');
  await endpoint(dbUrl, 'ep_B');
  const a = await webhook(dbUrl, 'ep_A', 'retrying');
  const b = await webhook(dbUrl, 'ep_B', 'retrying');
  const c = await webhook(dbUrl, 'ep_B', 'retrying');
  let n = 0;
  // Last hour: 5 successes, 3 HTTP 500s, 2 timeouts. Earlier: 4 more, outside the window.
  for (let i = 0; i < 3; i++) await attempt(dbUrl, a, ++n, { at: `now() - interval '${i} minutes'` });
  for (let i = 0; i < 2; i++) await attempt(dbUrl, b, ++n, { at: `now() - interval '${10 + i} minutes'` });
  for (let i = 0; i < 3; i++) await attempt(dbUrl, i === 0 ? a : b, ++n, { outcome: 'failure', statusCode: 500, errorClass: 'http_status', at: `now() - interval '20 minutes'` });
  for (let i = 0; i < 2; i++) await attempt(dbUrl, c, ++n, { outcome: 'failure', statusCode: null, errorClass: 'timeout', at: `now() - interval '59 minutes'` });
  for (let i = 0; i < 4; i++) await attempt(dbUrl, c, ++n, { outcome: 'failure', statusCode: 503, errorClass: 'http_status', at: `now() - interval '2 hours'` });

  const rows = await ops(t, dbUrl, 'attempt-outcomes.sql');
  t.deepEqual(rows.map((r) => [r.outcome, r.error_class, r.status_code, num(r.attempts), num(r.webhooks), num(r.endpoints), r.share_pct]), [
    ['success', '', '200', 5, 2, 2, '50.0'],
    ['failure', 'http_status', '500', 3, 2, 2, '30.0'],
    ['failure', 'timeout', '', 2, 1, 1, '20.0'],
  ]);
  const day = await ops(t, dbUrl, 'attempt-outcomes.sql', { window: '3 hours' });
  t.deepEqual(day.map((r) => [r.outcome, r.status_code, num(r.attempts), r.share_pct]), [
    ['success', '200', 5, '35.7'],
    ['failure', '503', 4, '28.6'],
    ['failure', '500', 3, '21.4'],
    ['failure', '', 2, '14.3'],
  ]);
});

test('latency-percentiles gives p50, p95 and p99 of duration_ms per endpoint over the last hour', async (t) => {
  const dbUrl = await freshDatabase(t);
  await endpoint(dbUrl, 'ep_A');
  await endpoint(dbUrl, 'ep_B');
  const a = await webhook(dbUrl, 'ep_A', 'retrying');
  const b = await webhook(dbUrl, 'ep_B', 'delivered');
  // ep_A: 0, 10, …, 1000 ms (101 attempts), so the percentiles are exact; plus a huge one
  // two hours ago, outside the window.
  await query(dbUrl, `
    INSERT INTO hookrelay.attempts (webhook_id, attempt, endpoint_id, started_at, duration_ms, status_code, outcome)
    SELECT $1, g + 1, 'ep_A', now() - interval '1 minute', g * 10, 500, 'failure' FROM generate_series(0, 100) g`, [a]);
  await attempt(dbUrl, a, 200, { durationMs: 99_999, at: `now() - interval '2 hours'` });
  await attempt(dbUrl, b, 1, { durationMs: 42 });

  const rows = await ops(t, dbUrl, 'latency-percentiles.sql');
  t.deepEqual(rows.map((r) => [r.endpoint_id, num(r.attempts), r.p50_ms, r.p95_ms, r.p99_ms, r.mean_ms, r.max_ms]), [
    ['ep_A', 101, '500.0', '950.0', '990.0', '500.0', '1000'],
    ['ep_B', 1, '42.0', '42.0', '42.0', '42.0', '42'],
  ]);
  const wide = await ops(t, dbUrl, 'latency-percentiles.sql', { window: '1 day' });
  t.like(wide[0], { endpoint_id: 'ep_A', attempts: '102', max_ms: '99999' });
});

test('dead-letters-by-reason counts open and replayed dead letters per reason', async (t) => {
  const dbUrl = await freshDatabase(t);
  await endpoint(dbUrl, 'ep_A');
  await endpoint(dbUrl, 'ep_B');
  await endpoint(dbUrl, 'ep_DEL', { deleted: true });
  for (let i = 0; i < 3; i++) await deadLetter(dbUrl, await webhook(dbUrl, i < 2 ? 'ep_A' : 'ep_B', 'dead'), 'attempts_exhausted', { at: `now() - interval '${i + 1} hours'` });
  await deadLetter(dbUrl, await webhook(dbUrl, 'ep_A', 'pending'), 'attempts_exhausted', { replayed: true, at: `now() - interval '3 days'` });
  for (let i = 0; i < 2; i++) await deadLetter(dbUrl, await webhook(dbUrl, 'ep_B', 'dead'), 'gone');
  await deadLetter(dbUrl, await webhook(dbUrl, 'ep_DEL', 'dead'), 'endpoint_deleted', { at: `now() - interval '10 days'` });

  const rows = await ops(t, dbUrl, 'dead-letters-by-reason.sql');
  t.deepEqual(rows.map((r) => [r.reason, num(r.open), num(r.replayed), num(r.total), num(r.open_endpoints)]), [
    ['attempts_exhausted', 3, 1, 4, 2],
    ['gone', 2, 0, 2, 1],
    ['endpoint_deleted', 1, 0, 1, 1],
  ]);
  const [oldest] = await query(dbUrl, `SELECT min(dead_at) AS at FROM hookrelay.dead_letters WHERE reason = 'attempts_exhausted' AND replayed_at IS NULL`);
  t.is(new Date(rows[0]!.oldest_open_dead_at!).getTime(), oldest!.at.getTime());

  const recent = await ops(t, dbUrl, 'dead-letters-by-reason.sql', { since: new Date(Date.now() - 2.5 * 3_600_000).toISOString() });
  t.deepEqual(recent.map((r) => [r.reason, num(r.open), num(r.replayed)]), [['attempts_exhausted', 2, 0], ['gone', 2, 0]]);
  const b = await ops(t, dbUrl, 'dead-letters-by-reason.sql', { endpoint_id: 'ep_B' });
  t.deepEqual(b.map((r) => [r.reason, num(r.open)]), [['gone', 2], ['attempts_exhausted', 1]]);
});

test('throughput-per-minute lists delivered webhooks in each of the last 60 minutes', async (t) => {
  const dbUrl = await freshDatabase(t);
  await endpoint(dbUrl, 'ep_A');
  // Every row is placed relative to one minute read once, so that a minute boundary passing
  // while the rows are written cannot split a planned minute in two.
  const [{ base }] = (await query(dbUrl, `SELECT date_trunc('minute', now()) AS base`)) as [{ base: Date }];
  const minute = (ago: number) => `'${base.toISOString()}'::timestamptz - interval '${ago} minutes' + interval '7 seconds'`;
  const plan: [number, number][] = [[1, 3], [10, 2], [30, 1]];
  for (const [ago, count] of plan) {
    for (let i = 0; i < count; i++) {
      const id = await webhook(dbUrl, 'ep_A', 'delivered', { deliveredAt: minute(ago), at: minute(ago) });
      await attempt(dbUrl, id, 1, { at: minute(ago) });
    }
  }
  const failed = await webhook(dbUrl, 'ep_A', 'retrying');
  await attempt(dbUrl, failed, 1, { at: minute(10), outcome: 'failure', statusCode: 500, errorClass: 'http_status' });
  for (let i = 0; i < 5; i++) await webhook(dbUrl, 'ep_A', 'delivered', { deliveredAt: `now() - interval '2 hours'` });

  const rows = await ops(t, dbUrl, 'throughput-per-minute.sql');
  t.is(rows.length, 60);
  const at = rows.map((r) => new Date(r.minute!).getTime());
  t.deepEqual(at, [...at].sort((x, y) => x - y), 'oldest minute first');
  t.true(at.every((m, i) => i === 0 || m - at[i - 1]! === 60_000), 'one row per minute, none missing');
  const byMinute = new Map(rows.map((r) => [new Date(r.minute!).getTime(), r]));
  for (const [ago, count] of plan) {
    const row = byMinute.get(base.getTime() - ago * 60_000);
    t.truthy(row, `${ago} minutes ago is listed`);
    t.is(num(row?.delivered), count, `${ago} minutes ago`);
  }
  t.like(byMinute.get(base.getTime() - 10 * 60_000), { attempts: '3', failed_attempts: '1' });
  t.is(rows.reduce((sum, r) => sum + num(r.delivered), 0), 6, 'the two-hour-old deliveries are outside the hour');
});

// ---------------------------------------------------------------------------------------
// Through the real service.

async function createEndpoint(svc: TestService, url: string, extra: object = {}): Promise<string> {
  const res = await svc.api('/api/v1/endpoints', { method: 'POST', json: { url, ...extra } });
  if (res.status !== 201) throw new Error(`endpoint create answered ${res.status}: ${await res.text()}`);
  return ((await res.json()) as { id: string }).id;
}

async function submit(svc: TestService, endpointId: string, payload: unknown, retryPolicy?: object): Promise<{ id: string; status: string }> {
  const res = await svc.api('/api/v1/webhooks/deliver', { method: 'POST', json: { endpointId, payload, ...(retryPolicy ? { retryPolicy } : {}) } });
  if (res.status !== 202) throw new Error(`deliver answered ${res.status}: ${await res.text()}`);
  return (await res.json()) as { id: string; status: string };
}

test.serial('the ops queries read what the running service writes', async (t) => {
  const svc = await startTestService(t);
  const ok = await startReceiver(t);
  const failing = await startReceiver(t);
  failing.fallback = { status: 500, body: 'down' };
  const gone = await startReceiver(t);
  gone.fallback = { status: 410, body: 'gone' };
  const hanging = await startReceiver(t);
  hanging.fallback = { hang: true };
  const paused = await startReceiver(t);

  const okId = await createEndpoint(svc, `${ok.url}/ok`);
  const failingId = await createEndpoint(svc, `${failing.url}/failing`);
  const goneId = await createEndpoint(svc, `${gone.url}/gone`);
  const hangingId = await createEndpoint(svc, `${hanging.url}/hang`, { timeoutMs: 300 });
  const pausedId = await createEndpoint(svc, `${paused.url}/paused`);
  t.is((await svc.api(`/api/v1/endpoints/${pausedId}`, { method: 'PATCH', json: { enabled: false } })).status, 200);

  const policy = { maxAttempts: 2, baseDelayMs: 100 };
  const ids: string[] = [];
  for (let i = 0; i < 3; i++) ids.push((await submit(svc, okId, { i }, policy)).id);
  for (let i = 0; i < 2; i++) ids.push((await submit(svc, failingId, { i }, policy)).id);
  ids.push((await submit(svc, goneId, {}, policy)).id);
  ids.push((await submit(svc, hangingId, {}, { maxAttempts: 1 })).id);
  for (let i = 0; i < 2; i++) t.is((await submit(svc, pausedId, { i }, policy)).status, 'held');

  await eventually(async () => {
    const [row] = await query(svc.dbUrl, `SELECT count(*)::int AS n FROM hookrelay.webhooks WHERE id = ANY($1) AND status IN ('delivered', 'dead')`, [ids]);
    return row!.n === ids.length ? true : undefined;
  }, 30_000, 100);

  const backlog = await ops(t, svc.dbUrl, 'backlog-by-endpoint.sql');
  t.deepEqual(backlog.map((r) => [r.endpoint_id, r.status, num(r.webhooks), r.enabled]), [[pausedId, 'held', 2, 'f']]);
  t.deepEqual(await ops(t, svc.dbUrl, 'oldest-pending.sql'), []);

  const reasons = await ops(t, svc.dbUrl, 'dead-letters-by-reason.sql');
  t.deepEqual(reasons.map((r) => [r.reason, num(r.open), num(r.replayed), num(r.open_endpoints)]), [
    ['attempts_exhausted', 3, 0, 2],
    ['gone', 1, 0, 1],
  ]);

  const outcomes = await ops(t, svc.dbUrl, 'attempt-outcomes.sql');
  t.deepEqual(outcomes.map((r) => [r.outcome, r.error_class, r.status_code, num(r.attempts), num(r.webhooks)]), [
    ['failure', 'http_status', '500', 4, 2],
    ['success', '', '200', 3, 3],
    ['failure', 'http_status', '410', 1, 1],
    ['failure', 'timeout', '', 1, 1],
  ]);

  const latency = await ops(t, svc.dbUrl, 'latency-percentiles.sql');
  t.deepEqual(Object.fromEntries(latency.map((r) => [r.endpoint_id, num(r.attempts)])), { [okId]: 3, [failingId]: 4, [goneId]: 1, [hangingId]: 1 });
  for (const r of latency) {
    t.true(num(r.p50_ms) <= num(r.p95_ms) && num(r.p95_ms) <= num(r.p99_ms) && num(r.p99_ms) <= num(r.max_ms), `ordered percentiles for ${r.endpoint_id}`);
  }

  const throughput = await ops(t, svc.dbUrl, 'throughput-per-minute.sql');
  t.is(throughput.reduce((sum, r) => sum + num(r.delivered), 0), 3);
  t.is(throughput.reduce((sum, r) => sum + num(r.attempts), 0), 9);
  t.is(throughput.reduce((sum, r) => sum + num(r.failed_attempts), 0), 6);

  const failingRows = await ops(t, svc.dbUrl, 'failing-endpoints.sql');
  const byId = new Map(failingRows.map((r) => [r.endpoint_id, r]));
  t.deepEqual(new Set(byId.keys()), new Set([failingId, goneId, hangingId]), 'the healthy and the paused endpoints are not failing');
  t.like(byId.get(failingId), { circuit_state: 'closed', consecutive_failures: '4', enabled: 't', open_dead_letters: '2' });
  t.like(byId.get(goneId), { consecutive_failures: '1', enabled: 'f', open_dead_letters: '1' });
  t.like(byId.get(hangingId), { consecutive_failures: '1', open_dead_letters: '1' });
});
