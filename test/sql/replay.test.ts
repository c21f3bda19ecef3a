import { fileURLToPath } from 'node:url';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { query } from '../helpers/db.ts';
import { startReceiver, type Receiver } from '../helpers/receiver.ts';
import { eventually, startTestService, type TestService } from '../helpers/service.ts';
import { run } from '../helpers/process.ts';

/**
 * The bulk replay scripts in sql/replay, run with the real psql client against a database the
 * running service populated, while it runs: what they re-queue must be delivered by the
 * service's worker (the jobs come from hookrelay.enqueue_attempt), each webhook once.
 */

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const PSQL = process.env.PSQL ?? 'psql';
/** No circuit opens in these tests: each one fails endpoints on purpose and then replays. */
const SERVICE_ENV = { HOOKRELAY_CIRCUIT_FAILURE_THRESHOLD: '10000', HOOKRELAY_CIRCUIT_MIN_REQUESTS: '1000000' };

interface Psql {
  code: number | null;
  stdout: string;
  stderr: string;
  /** The last line of `-At` output split on `|`: the script's summary row. */
  last: string[];
}

function psql(dbUrl: string, file: string, vars: Record<string, string> = {}): Promise<Psql> {
  const args = ['-X', '-At', '-v', 'ON_ERROR_STOP=1', '-d', dbUrl];
  for (const [k, v] of Object.entries(vars)) args.push('-v', `${k}=${v}`);
  args.push('-f', path.join(ROOT, file));
  return run(undefined, PSQL, args, { env: { ...process.env, PGTZ: 'UTC', PGAPPNAME: 'replay-test' } }).then(({ code, stdout, stderr }) => {
    const lines = stdout.split('\n').filter(Boolean);
    return { code, stdout, stderr, last: (lines[lines.length - 1] ?? '').split('|') };
  });
}

/** Runs a replay script that must succeed; returns its summary row as numbers. */
async function replay(t: ExecutionContext, dbUrl: string, file: string, vars: Record<string, string>): Promise<number[]> {
  const result = await psql(dbUrl, `sql/replay/${file}`, vars);
  t.is(result.code, 0, `${file}: ${result.stderr}`);
  t.is(result.stderr, '', file);
  t.is(result.stdout.split('\n').filter(Boolean).length, 1, `${file} prints only its summary row: ${result.stdout}`);
  return result.last.map(Number);
}

async function createEndpoint(svc: TestService, url: string, extra: object = {}): Promise<string> {
  const res = await svc.api('/api/v1/endpoints', { method: 'POST', json: { url, ...extra } });
  if (res.status !== 201) throw new Error(`endpoint create answered ${res.status}: ${await res.text()}`);
  return ((await res.json()) as { id: string }).id;
}

async function submit(svc: TestService, endpointId: string, payload: unknown, retryPolicy: object = { maxAttempts: 2, baseDelayMs: 100 }): Promise<{ id: string; status: string }> {
  const res = await svc.api('/api/v1/webhooks/deliver', { method: 'POST', json: { endpointId, payload, retryPolicy } });
  if (res.status !== 202) throw new Error(`deliver answered ${res.status}: ${await res.text()}`);
  return (await res.json()) as { id: string; status: string };
}

const patch = (svc: TestService, id: string, body: object) => svc.api(`/api/v1/endpoints/${id}`, { method: 'PATCH', json: body });

async function statuses(dbUrl: string, ids: string[]): Promise<Record<string, string>> {
  const rows = await query(dbUrl, 'SELECT id, status FROM hookrelay.webhooks WHERE id = ANY($1)', [ids]);
  return Object.fromEntries(rows.map((r) => [r.id, r.status]));
}

/** Waits until every webhook in `ids` has one of `wanted` statuses. */
function settle(dbUrl: string, ids: string[], wanted: string[], timeoutMs = 30_000) {
  return eventually(async () => {
    const s = await statuses(dbUrl, ids);
    return ids.every((id) => wanted.includes(s[id] ?? '')) ? s : undefined;
  }, timeoutMs, 100);
}

/** How many requests a receiver got for each webhook id. */
function perWebhook(rx: Receiver): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const r of rx.received) counts[r.headers['webhook-id']!] = (counts[r.headers['webhook-id']!] ?? 0) + 1;
  return counts;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test.serial('dead-letters.sql re-queues an endpoint\'s open dead letters; the worker delivers them; a second run re-queues none', async (t) => {
  const svc = await startTestService(t, SERVICE_ENV);
  const rx = await startReceiver(t);
  rx.fallback = { status: 500, body: 'down' };
  const other = await startReceiver(t);
  other.fallback = { status: 500, body: 'down' };
  const endpointId = await createEndpoint(svc, `${rx.url}/hooks`);
  const otherId = await createEndpoint(svc, `${other.url}/hooks`);
  const before = new Date(Date.now() - 60_000).toISOString();

  const ids: string[] = [];
  for (let i = 0; i < 3; i++) ids.push((await submit(svc, endpointId, { i })).id);
  const otherWebhook = (await submit(svc, otherId, { other: true })).id;
  await settle(svc.dbUrl, [...ids, otherWebhook], ['dead']);
  t.is(rx.received.length, 6, 'two attempts each');

  // Filters that match nothing re-queue nothing.
  t.deepEqual(await replay(t, svc.dbUrl, 'dead-letters.sql', { endpoint_id: endpointId, since: new Date(Date.now() + 3_600_000).toISOString() }), [0, 0]);
  t.deepEqual(await replay(t, svc.dbUrl, 'dead-letters.sql', { endpoint_id: endpointId, since: before, reason: 'gone' }), [0, 0]);
  t.deepEqual(await replay(t, svc.dbUrl, 'dead-letters.sql', { endpoint_id: endpointId, since: '2000-01-01', until: before }), [0, 0]);
  t.deepEqual(await statuses(svc.dbUrl, ids), Object.fromEntries(ids.map((id) => [id, 'dead'])));

  rx.fallback = { status: 200, body: 'ok' };
  const [requeued, held] = await replay(t, svc.dbUrl, 'dead-letters.sql', { endpoint_id: endpointId, since: before, reason: 'attempts_exhausted' });
  t.is(requeued, 3);
  t.is(held, 0);
  // Committed: every webhook is pending (or already delivered by the running worker), with a
  // fresh attempt budget, and its dead letter is closed by psql's user.
  const [{ user }] = (await query(svc.dbUrl, 'SELECT current_user AS user')) as [{ user: string }];
  const rows = await query(svc.dbUrl, `
    SELECT w.id, w.status, w.attempts_base, d.replayed_by, d.replayed_at
      FROM hookrelay.webhooks w JOIN hookrelay.dead_letters d ON d.webhook_id = w.id WHERE w.id = ANY($1)`, [ids]);
  t.is(rows.length, 3);
  for (const r of rows) {
    t.true(r.status === 'pending' || r.status === 'delivered', `${r.id} is ${r.status}`);
    t.is(r.attempts_base, 2);
    t.is(r.replayed_by, `psql:${user}`);
    t.truthy(r.replayed_at);
  }

  // The running worker delivers them: the jobs came from hookrelay.enqueue_attempt.
  await rx.waitFor(9);
  const delivered = await settle(svc.dbUrl, ids, ['delivered']);
  t.deepEqual(Object.values(delivered), ['delivered', 'delivered', 'delivered']);
  const attempts = await query(svc.dbUrl, 'SELECT webhook_id, max(attempt)::int AS last, count(*)::int AS n FROM hookrelay.attempts WHERE webhook_id = ANY($1) GROUP BY webhook_id', [ids]);
  t.true(attempts.every((a) => a.last === 3 && a.n === 3), 'attempt 3 after the replay');

  // Idempotent: the second run finds no open dead letter.
  t.deepEqual(await replay(t, svc.dbUrl, 'dead-letters.sql', { endpoint_id: endpointId, since: before }), [0, 0]);
  await sleep(500);
  t.deepEqual(perWebhook(rx), Object.fromEntries(ids.map((id) => [id, 3])), 'each webhook delivered once after the replay');
  // The other endpoint's dead letter was not touched.
  const [open] = await query(svc.dbUrl, 'SELECT count(*)::int AS n FROM hookrelay.dead_letters WHERE webhook_id = $1 AND replayed_at IS NULL', [otherWebhook]);
  t.is(open!.n, 1);
  t.is((await statuses(svc.dbUrl, [otherWebhook]))[otherWebhook], 'dead');
});

test.serial('two dead-letters.sql runs at once re-queue each webhook once', async (t) => {
  const svc = await startTestService(t, SERVICE_ENV);
  const rx = await startReceiver(t);
  rx.fallback = { status: 500 };
  const endpointId = await createEndpoint(svc, `${rx.url}/hooks`);
  const ids: string[] = [];
  for (let i = 0; i < 5; i++) ids.push((await submit(svc, endpointId, { i }, { maxAttempts: 1 })).id);
  await settle(svc.dbUrl, ids, ['dead']);
  rx.fallback = { status: 200 };

  const vars = { endpoint_id: endpointId, since: '2000-01-01' };
  const runs = await Promise.all([replay(t, svc.dbUrl, 'dead-letters.sql', vars), replay(t, svc.dbUrl, 'dead-letters.sql', vars)]);
  t.is(runs[0]![0]! + runs[1]![0]!, 5, `requeued ${runs[0]![0]} and ${runs[1]![0]}`);
  await settle(svc.dbUrl, ids, ['delivered']);
  await sleep(500);
  t.deepEqual(perWebhook(rx), Object.fromEntries(ids.map((id) => [id, 2])));
  const [letters] = await query(svc.dbUrl, 'SELECT count(*)::int AS n FROM hookrelay.dead_letters WHERE webhook_id = ANY($1)', [ids]);
  t.is(letters!.n, 5, 'one dead letter each, replayed once');
});

test.serial('dead-letters.sql on a disabled endpoint replays into held; held.sql with enable=1 releases them', async (t) => {
  const svc = await startTestService(t, SERVICE_ENV);
  const rx = await startReceiver(t);
  rx.fallback = { status: 500 };
  const endpointId = await createEndpoint(svc, `${rx.url}/hooks`);
  const ids: string[] = [];
  for (let i = 0; i < 2; i++) ids.push((await submit(svc, endpointId, { i }, { maxAttempts: 1 })).id);
  await settle(svc.dbUrl, ids, ['dead']);
  t.is((await patch(svc, endpointId, { enabled: false })).status, 200);
  rx.fallback = { status: 200 };

  t.deepEqual(await replay(t, svc.dbUrl, 'dead-letters.sql', { endpoint_id: endpointId, since: '2000-01-01' }), [2, 2]);
  t.deepEqual(await statuses(svc.dbUrl, ids), Object.fromEntries(ids.map((id) => [id, 'held'])));
  await sleep(500);
  t.is(rx.received.length, 2, 'nothing goes out while the endpoint is disabled');

  t.deepEqual(await replay(t, svc.dbUrl, 'held.sql', { endpoint_id: endpointId, enable: '1' }), [2]);
  await settle(svc.dbUrl, ids, ['delivered']);
  const [ep] = await query(svc.dbUrl, 'SELECT e.enabled, e.disabled_reason, h.circuit_state FROM hookrelay.endpoints e JOIN hookrelay.endpoint_health h ON h.endpoint_id = e.id WHERE e.id = $1', [endpointId]);
  t.like(ep, { enabled: true, disabled_reason: null, circuit_state: 'closed' });
});

test.serial('held.sql releases what a disabled endpoint holds, refusing without enable=1; idempotent', async (t) => {
  const svc = await startTestService(t, SERVICE_ENV);
  const rx = await startReceiver(t);
  const endpointId = await createEndpoint(svc, `${rx.url}/paused`);
  t.is((await patch(svc, endpointId, { enabled: false })).status, 200);
  const ids: string[] = [];
  for (let i = 0; i < 3; i++) {
    const accepted = await submit(svc, endpointId, { i });
    t.is(accepted.status, 'held');
    ids.push(accepted.id);
  }

  // Still disabled: the worker would hold them again, so the script refuses and changes nothing.
  const refused = await psql(svc.dbUrl, 'sql/replay/held.sql', { endpoint_id: endpointId });
  t.is(refused.code, 3);
  t.regex(refused.stderr, /is disabled/);
  t.regex(refused.stderr, /enable=1/);
  t.deepEqual(await statuses(svc.dbUrl, ids), Object.fromEntries(ids.map((id) => [id, 'held'])));

  t.deepEqual(await replay(t, svc.dbUrl, 'held.sql', { endpoint_id: endpointId, enable: 'on' }), [3]);
  await rx.waitFor(3);
  await settle(svc.dbUrl, ids, ['delivered']);
  t.deepEqual(await replay(t, svc.dbUrl, 'held.sql', { endpoint_id: endpointId }), [0]);
  await sleep(500);
  t.deepEqual(perWebhook(rx), Object.fromEntries(ids.map((id) => [id, 1])));
  const [ep] = await query(svc.dbUrl, 'SELECT enabled FROM hookrelay.endpoints WHERE id = $1', [endpointId]);
  t.true(ep!.enabled);
});

test.serial('held.sql releases webhooks left held on an enabled endpoint', async (t) => {
  const svc = await startTestService(t, SERVICE_ENV);
  const rx = await startReceiver(t);
  const endpointId = await createEndpoint(svc, `${rx.url}/stranded`);
  t.is((await patch(svc, endpointId, { enabled: false })).status, 200);
  const ids = [(await submit(svc, endpointId, { a: 1 })).id, (await submit(svc, endpointId, { a: 2 })).id];
  // Enabled behind the API's back (as a direct UPDATE or a race would leave it): still held.
  await query(svc.dbUrl, `UPDATE hookrelay.endpoints SET enabled = true, disabled_reason = NULL WHERE id = $1`, [endpointId]);
  await sleep(300);
  t.deepEqual(await statuses(svc.dbUrl, ids), Object.fromEntries(ids.map((id) => [id, 'held'])));

  t.deepEqual(await replay(t, svc.dbUrl, 'held.sql', { endpoint_id: endpointId }), [2]);
  await settle(svc.dbUrl, ids, ['delivered']);
  t.is(rx.received.length, 2);
});

test.serial('failed-webhooks.sql replays the dead webhooks created in [from, to), of one endpoint or all', async (t) => {
  const svc = await startTestService(t, SERVICE_ENV);
  const a = await startReceiver(t);
  const b = await startReceiver(t);
  const c = await startReceiver(t);
  for (const rx of [a, b, c]) rx.fallback = { status: 500 };
  const aId = await createEndpoint(svc, `${a.url}/a`);
  const bId = await createEndpoint(svc, `${b.url}/b`);
  const cId = await createEndpoint(svc, `${c.url}/c`);
  const once = { maxAttempts: 1 };

  // Creation times, set afterwards: day 1, day 2 (the range), exactly at `to` (excluded).
  const plan: [string, string][] = [
    [aId, '2025-01-01T10:00:00Z'], [aId, '2025-01-02T00:00:00Z'], [aId, '2025-01-02T23:59:59Z'], [aId, '2025-01-03T00:00:00Z'],
    [bId, '2025-01-02T12:00:00Z'], [bId, '2025-01-04T12:00:00Z'],
    [cId, '2025-01-02T12:00:00Z'],
  ];
  const ids: string[] = [];
  for (const [endpointId] of plan) ids.push((await submit(svc, endpointId, {}, once)).id);
  // A delivered webhook in the range is left alone.
  a.script({ status: 200 });
  const delivered = (await submit(svc, aId, { fine: true }, once)).id;
  await settle(svc.dbUrl, ids, ['dead']);
  await settle(svc.dbUrl, [delivered], ['delivered']);
  for (const [i, [, at]] of plan.entries()) await query(svc.dbUrl, 'UPDATE hookrelay.webhooks SET created_at = $2 WHERE id = $1', [ids[i], at]);
  await query(svc.dbUrl, `UPDATE hookrelay.webhooks SET created_at = '2025-01-02T06:00:00Z' WHERE id = $1`, [delivered]);
  // Endpoint c is deleted: its dead webhook in the range is skipped.
  t.is((await svc.api(`/api/v1/endpoints/${cId}`, { method: 'DELETE' })).status, 200);

  for (const rx of [a, b, c]) rx.fallback = { status: 200 };
  const range = { from: '2025-01-02T00:00:00Z', to: '2025-01-03T00:00:00Z' };

  // One endpoint first.
  t.deepEqual(await replay(t, svc.dbUrl, 'failed-webhooks.sql', { ...range, endpoint_id: bId }), [1, 0, 0]);
  await settle(svc.dbUrl, [ids[4]!], ['delivered']);
  // Then all: a's two in the range; b's is no longer dead; c's is skipped (endpoint deleted).
  t.deepEqual(await replay(t, svc.dbUrl, 'failed-webhooks.sql', range), [2, 0, 1]);
  await settle(svc.dbUrl, [ids[1]!, ids[2]!], ['delivered']);
  const s = await statuses(svc.dbUrl, [...ids, delivered]);
  t.deepEqual(ids.map((id) => s[id]), ['dead', 'delivered', 'delivered', 'dead', 'delivered', 'dead', 'dead']);
  t.is(s[delivered], 'delivered');

  // Idempotent.
  t.deepEqual(await replay(t, svc.dbUrl, 'failed-webhooks.sql', range), [0, 0, 1]);
  await sleep(500);
  t.deepEqual(perWebhook(a), { [ids[0]!]: 1, [ids[1]!]: 2, [ids[2]!]: 2, [ids[3]!]: 1, [delivered]: 1 });
  t.deepEqual(perWebhook(b), { [ids[4]!]: 2, [ids[5]!]: 1 });
  const [{ n }] = (await query(svc.dbUrl, `SELECT count(*)::int AS n FROM hookrelay.dead_letters WHERE webhook_id = ANY($1) AND replayed_by LIKE 'psql:%'`, [ids])) as [{ n: number }];
  t.is(n, 3);
});

test.serial('the replay scripts refuse missing or bad variables with a message and change nothing', async (t) => {
  const svc = await startTestService(t, SERVICE_ENV);
  const rx = await startReceiver(t);
  rx.fallback = { status: 500 };
  const endpointId = await createEndpoint(svc, `${rx.url}/hooks`);
  const id = (await submit(svc, endpointId, {}, { maxAttempts: 1 })).id;
  await settle(svc.dbUrl, [id], ['dead']);

  const cases: [string, Record<string, string>, RegExp][] = [
    ['dead-letters.sql', {}, /usage: psql .*-v endpoint_id=ID -v since=TIME[\s\S]*missing -v endpoint_id/],
    ['dead-letters.sql', { endpoint_id: endpointId }, /usage:[\s\S]*missing -v since/],
    ['dead-letters.sql', { endpoint_id: endpointId, since: 'yesterday-ish' }, /invalid input syntax for type timestamp/],
    ['dead-letters.sql', { endpoint_id: 'ep_nope', since: '2000-01-01' }, /no endpoint with id 'ep_nope'/],
    ['dead-letters.sql', { endpoint_id: endpointId, since: '2000-01-01', reason: 'bored' }, /reason must be attempts_exhausted, gone or endpoint_deleted/],
    ['dead-letters.sql', { endpoint_id: endpointId, since: '2000-01-02', until: '2000-01-01' }, /since must be before until/],
    ['failed-webhooks.sql', {}, /usage: psql .*-v from=TIME -v to=TIME[\s\S]*missing -v from/],
    ['failed-webhooks.sql', { from: '2000-01-01' }, /missing -v to/],
    ['failed-webhooks.sql', { from: '2000-01-01', to: '2100-01-01', endpoint_id: 'ep_nope' }, /no endpoint with id 'ep_nope'/],
    ['failed-webhooks.sql', { from: '2100-01-01', to: '2000-01-01' }, /from must be before to/],
    ['held.sql', {}, /usage: psql .*-v endpoint_id=ID[\s\S]*missing -v endpoint_id/],
    ['held.sql', { endpoint_id: 'ep_nope' }, /no endpoint with id 'ep_nope'/],
  ];
  for (const [file, vars, message] of cases) {
    const result = await psql(svc.dbUrl, `sql/replay/${file}`, vars);
    t.is(result.code, 3, `${file} ${JSON.stringify(vars)} exits 3`);
    t.regex(result.stderr, message, `${file} ${JSON.stringify(vars)}`);
    t.is(result.stdout, '', `${file} ${JSON.stringify(vars)} prints no result`);
  }
  t.is((await statuses(svc.dbUrl, [id]))[id], 'dead');
  const [open] = await query(svc.dbUrl, 'SELECT count(*)::int AS n FROM hookrelay.dead_letters WHERE replayed_at IS NULL');
  t.is(open!.n, 1);
});
