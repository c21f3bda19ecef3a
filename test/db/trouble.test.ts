import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { isDatabaseUnavailable } from '../../src/db/database.ts';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../../src/db/embedded.ts';
import { query, silentLog } from '../helpers/db.ts';
import { startReceiver } from '../helpers/receiver.ts';
import { eventually, startTestService, type TestService } from '../helpers/service.ts';

/**
 * Database trouble: PostgreSQL going away and coming back, and a pool with no connection to
 * spare. The API must answer 503 database_unavailable with Retry-After instead of hanging or
 * answering 500, /readyz must say so, and everything must work again by itself once
 * PostgreSQL is back. The outage test stops and starts a throw-away embedded server of its
 * own, never the shared one.
 */

/** Far above any honest answer time; only a request that hangs on the database exceeds it. */
const HANG_BOUND_MS = 5_000;

interface Timed {
  res: Response;
  body: any;
  ms: number;
}

async function timed(svc: TestService, pathname: string, init: RequestInit & { json?: unknown; auth?: boolean } = {}): Promise<Timed> {
  const started = performance.now();
  const res = await svc.api(pathname, { ...init, signal: AbortSignal.timeout(30_000) });
  const body = await res.json();
  return { res, body, ms: performance.now() - started };
}

function assertUnavailable(t: import('ava').ExecutionContext, what: string, got: Timed): void {
  t.is(got.res.status, 503, `${what}: ${JSON.stringify(got.body)}`);
  t.is(got.res.headers.get('content-type')?.split(';')[0], 'application/problem+json', what);
  t.is(got.body.code, 'database_unavailable', what);
  t.regex(got.res.headers.get('retry-after') ?? '', /^[1-9]\d*$/, `${what}: Retry-After`);
  t.true(got.ms < HANG_BOUND_MS, `${what}: answered after ${Math.round(got.ms)} ms`);
  t.log(`${what}: 503 in ${Math.round(got.ms)} ms`);
}

async function webhookCount(url: string): Promise<number> {
  const [row] = await query<{ n: number }>(url, 'SELECT count(*)::int AS n FROM hookrelay.webhooks');
  return row!.n;
}

test('PostgreSQL stopped: 503 with Retry-After at once and /readyz red; restarted on the same port: everything recovers without a restart', async (t) => {
  const dataDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'hookrelay-trouble-'));
  let server: EmbeddedPostgres | undefined = await startEmbeddedPostgres({ dataDir, log: silentLog });
  const port = Number(new URL(server.connectionString).port);
  const rx = await startReceiver(t);
  const svc = await startTestService(t, { HOOKRELAY_DB_ACQUIRE_TIMEOUT_MS: '1000', HOOKRELAY_QUEUE_SUPERVISE_SECONDS: '1' }, { dbUrl: server.connectionString });
  // One teardown, in order: the service, then its PostgreSQL, then the files.
  t.teardown(async () => {
    await svc.service.stop();
    await server?.stop();
    await fsp.rm(dataDir, { recursive: true, force: true });
  });

  const before = await timed(svc, '/api/v1/webhooks/deliver', { method: 'POST', json: { url: `${rx.url}/before`, payload: { n: 1 } } });
  t.is(before.res.status, 202);
  await rx.waitFor(1);
  t.is((await timed(svc, '/readyz', { auth: false })).res.status, 200);

  await server.stop();
  server = undefined;

  // Every kind of request: a submission (group commit), reads, a list, a token-free readiness check.
  assertUnavailable(t, 'deliver', await timed(svc, '/api/v1/webhooks/deliver', { method: 'POST', json: { url: `${rx.url}/during`, payload: { n: 2 } }, headers: { 'Idempotency-Key': 'during-outage' } }));
  assertUnavailable(t, 'status', await timed(svc, `/api/v1/webhooks/${before.body.id}/status`));
  assertUnavailable(t, 'list', await timed(svc, '/api/v1/webhooks?limit=5'));
  assertUnavailable(t, 'endpoint', await timed(svc, `/api/v1/endpoints/${before.body.endpointId}`));
  const ready = await timed(svc, '/readyz', { auth: false });
  t.is(ready.res.status, 503);
  t.regex(ready.body.checks.database, /^unreachable/);
  t.true(ready.ms < HANG_BOUND_MS, `/readyz answered after ${Math.round(ready.ms)} ms`);

  // The workers' fetch loops and the supervisor fail every second or so while the server is
  // away: that is one state change in the log, not an error per failed poll.
  await eventually(async () => (svc.logs.some((l) => l.message?.startsWith('queue: database unavailable')) ? true : undefined), 15_000);
  // An idle worker's loops try again when they poll (every 5 s), not at once.
  await eventually(async () => (svc.logs.some((l) => l.message?.startsWith('fetching delivery jobs failed')) ? true : undefined), 15_000);
  await new Promise((r) => setTimeout(r, 3_000));
  const outageLines = svc.logs.filter((l) => l.message?.startsWith('queue: database unavailable'));
  t.is(outageLines.length, 1);
  const queueErrors = svc.logs.filter((l) => l.message === 'queue error');
  t.deepEqual(queueErrors.map((l) => l.err?.message ?? l.err), [], 'no per-poll queue errors during the outage');
  // The worker's fetch loops back off too, and say so once.
  t.is(svc.logs.filter((l) => l.message?.startsWith('fetching delivery jobs failed')).length, 1);

  server = await startEmbeddedPostgres({ dataDir, log: silentLog, port });
  t.is(Number(new URL(server.connectionString).port), port);
  const restartedAt = performance.now();

  // Nobody restarts hookrelay: the pools reconnect, readiness turns green, the queue says so once.
  await eventually(async () => ((await svc.api('/readyz', { auth: false })).status === 200 ? true : undefined), 30_000, 200);
  t.log(`ready again ${Math.round(performance.now() - restartedAt)} ms after PostgreSQL was back`);
  await eventually(async () => (svc.logs.some((l) => l.message === 'queue: database available again') ? true : undefined), 15_000);
  const recovered = svc.logs.filter((l) => l.message === 'queue: database available again');
  t.is(recovered.length, 1);
  // No hot loop: the queue's fetch loops, supervisor and monitor failed a few times a second at
  // most while the server was away (thousands would mean a loop without back-off).
  const { downMs, failedOperations } = recovered[0]!;
  t.log(`queue: ${failedOperations} failed operations in ${downMs} ms of outage`);
  t.true(failedOperations <= 10 + (downMs / 1000) * 10, `${failedOperations} failed queue operations in ${downMs} ms`);
  const fetching = await eventually(async () => svc.logs.find((l) => l.message === 'fetching delivery jobs works again'), 15_000);
  t.log(`worker: ${fetching.failedFetches} failed fetches in ${fetching.downMs} ms of outage`);
  t.true(fetching.failedFetches <= 10 + (fetching.downMs / 1000) * 4, `${fetching.failedFetches} failed fetches in ${fetching.downMs} ms`);

  const after = await timed(svc, '/api/v1/webhooks/deliver', { method: 'POST', json: { url: `${rx.url}/after`, payload: { n: 3 } }, headers: { 'Idempotency-Key': 'during-outage' } });
  t.is(after.res.status, 202, JSON.stringify(after.body));
  const got = await rx.waitFor(2, 30_000);
  t.is(got[1]!.path, '/after');
  t.is(got[1]!.headers['webhook-id'], after.body.id);
  await eventually(async () => {
    const s = await timed(svc, `/api/v1/webhooks/${after.body.id}/status`);
    return s.body.status === 'delivered' ? s : undefined;
  });
  // The submission refused during the outage was not stored (its key is free for the retry).
  t.is(await webhookCount(server.connectionString), 2);
});

test('pool exhausted: 503 within HOOKRELAY_DB_ACQUIRE_TIMEOUT_MS instead of waiting, then normal again', async (t) => {
  const svc = await startTestService(t, { HOOKRELAY_ROLES: 'api', HOOKRELAY_DB_POOL_MAX: '2', HOOKRELAY_DB_ACQUIRE_TIMEOUT_MS: '300' });
  t.is((await timed(svc, '/api/v1/webhooks')).res.status, 200);

  // Every connection of the service's own pool busy in a long query, as under a stuck statement.
  const pool = svc.service.db.pool;
  const held = [await pool.connect(), await pool.connect()];
  const sleeping = held.map((c) => c.query('SELECT pg_sleep(60)').catch(() => undefined));
  try {
    assertUnavailable(t, 'list', await timed(svc, '/api/v1/webhooks'));
    assertUnavailable(t, 'deliver', await timed(svc, '/api/v1/webhooks/deliver', { method: 'POST', json: { url: 'https://example.com/x', payload: 1 } }));
    const ready = await timed(svc, '/readyz', { auth: false });
    t.is(ready.res.status, 503);
    t.regex(ready.body.checks.database, /^unreachable/);
  } finally {
    const pids = await Promise.all(held.map(async (c) => (c as unknown as { processID: number }).processID));
    await query(svc.dbUrl, 'SELECT pg_cancel_backend(pid) FROM unnest($1::int[]) AS pid', [pids]);
    await Promise.all(sleeping);
    for (const c of held) c.release();
  }
  t.is((await timed(svc, '/api/v1/webhooks')).res.status, 200);
  t.is((await timed(svc, '/readyz', { auth: false })).res.status, 200);
  t.is(await webhookCount(svc.dbUrl), 0);
});

test('what counts as the database being unavailable (a passing state) and what does not', (t) => {
  const coded = (code: string, message = 'x') => Object.assign(new Error(message), { code });
  for (const err of [
    coded('ECONNREFUSED'),
    coded('ECONNRESET'),
    coded('57P01', 'terminating connection due to administrator command'),
    coded('57P03', 'the database system is starting up'),
    coded('53300', 'too many clients already'),
    coded('08006'),
    new Error('timeout exceeded when trying to connect'),
    new Error('Connection terminated unexpectedly'),
    new AggregateError([coded('ECONNREFUSED')], ''),
    new Error('wrapped', { cause: coded('ECONNREFUSED') }),
  ]) {
    t.true(isDatabaseUnavailable(err), String((err as Error).message || (err as { code?: string }).code));
  }
  for (const err of [
    coded('23505', 'duplicate key value violates unique constraint'),
    coded('42P01', 'relation does not exist'),
    coded('22P02', 'invalid input syntax'),
    new Error('something else'),
    null,
    'ECONNREFUSED',
  ]) {
    t.false(isDatabaseUnavailable(err), String(err));
  }
});
