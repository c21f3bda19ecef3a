import test from 'ava';
import { query } from '../helpers/db.ts';
import { startReceiver } from '../helpers/receiver.ts';
import { eventually, startTestService, type TestService } from '../helpers/service.ts';

/**
 * Idempotency-Key: the same key with the same body answers the same 202 and creates nothing
 * new, also when the requests arrive at once; the same key with another body is 409.
 */

const DELIVER = '/api/v1/webhooks/deliver';
const NOWHERE = 'http://127.0.0.1:1/x';

interface Counts {
  webhooks: number;
  endpoints: number;
  jobs: number;
}

async function counts(svc: TestService): Promise<Counts> {
  const [row] = await query(svc.dbUrl, `SELECT
    (SELECT count(*) FROM hookrelay.webhooks)::int AS webhooks,
    (SELECT count(*) FROM hookrelay.endpoints)::int AS endpoints,
    (SELECT count(*) FROM hookrelay_queue.job WHERE name = 'deliveries')::int AS jobs`);
  return row as Counts;
}

async function jobsFor(svc: TestService, webhookId: string): Promise<Record<string, any>[]> {
  return query(svc.dbUrl, `SELECT id, state, data FROM hookrelay_queue.job WHERE data->>'webhookId' = $1`, [webhookId]);
}

async function deliverRaw(svc: TestService, body: string, key?: string): Promise<{ res: Response; json: Record<string, any> }> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (key !== undefined) headers['idempotency-key'] = key;
  const res = await svc.api(DELIVER, { method: 'POST', headers, body });
  return { res, json: (await res.json()) as Record<string, any> };
}

const deliver = (svc: TestService, body: unknown, key?: string) => deliverRaw(svc, JSON.stringify(body), key);

/** API only: no worker, so the rows and jobs stay exactly as the requests left them. */
const apiOnly = { HOOKRELAY_ROLES: 'api' };

test.serial('the same key and body gives the same 202, marked as replayed, and one webhook with one job', async (t) => {
  const svc = await startTestService(t, apiOnly);
  const body = { url: NOWHERE, payload: { order: 42, lines: [1, 2, 3] }, headers: { 'X-Tenant': 'acme' }, retryPolicy: { maxAttempts: 3 } };
  const first = await deliver(svc, body, 'order-42');
  t.is(first.res.status, 202);
  t.is(first.res.headers.get('idempotent-replayed'), null, 'the first answer is not a replay');

  const second = await deliver(svc, body, 'order-42');
  t.is(second.res.status, 202);
  t.deepEqual(second.json, first.json, 'the same answer');
  t.is(second.res.headers.get('idempotent-replayed'), 'true');
  t.is(second.res.headers.get('location'), first.res.headers.get('location'));

  const third = await deliver(svc, body, 'order-42');
  t.deepEqual(third.json, first.json);
  t.is(third.res.headers.get('idempotent-replayed'), 'true');

  t.deepEqual(await counts(svc), { webhooks: 1, endpoints: 1, jobs: 1 });
  const jobs = await jobsFor(svc, first.json.id);
  t.is(jobs.length, 1);
  t.is(jobs[0]!.state, 'created');
  const rows = await query(svc.dbUrl, 'SELECT id, idempotency_key FROM hookrelay.webhooks');
  t.deepEqual(rows, [{ id: first.json.id, idempotency_key: 'order-42' }]);
});

test.serial('key order in the JSON body does not make it a different body', async (t) => {
  const svc = await startTestService(t, apiOnly);
  const a = '{"url":"http://127.0.0.1:1/x","payload":{"a":1,"b":{"c":2,"d":[{"e":3,"f":4}]}},"headers":{"X-A":"1","X-B":"2"},"retryPolicy":{"maxAttempts":3,"baseDelayMs":1000}}';
  const b = '{"retryPolicy":{"baseDelayMs":1000,"maxAttempts":3},"headers":{"X-B":"2","X-A":"1"},"payload":{"b":{"d":[{"f":4,"e":3}],"c":2},"a":1},"url":"http://127.0.0.1:1/x"}';
  // Whitespace is not part of the body's meaning either.
  const c = JSON.stringify(JSON.parse(a), null, 2);
  const first = await deliverRaw(svc, a, 'reordered');
  const second = await deliverRaw(svc, b, 'reordered');
  const third = await deliverRaw(svc, c, 'reordered');
  t.is(first.res.status, 202);
  t.is(second.res.status, 202);
  t.is(third.res.status, 202);
  t.is(second.json.id, first.json.id);
  t.is(third.json.id, first.json.id);
  t.is(second.res.headers.get('idempotent-replayed'), 'true');
  t.deepEqual(await counts(svc), { webhooks: 1, endpoints: 1, jobs: 1 });
});

test.serial('the same key with a different body is 409 and creates nothing', async (t) => {
  const svc = await startTestService(t, apiOnly);
  const body = { url: NOWHERE, payload: { order: 42 } };
  const first = await deliver(svc, body, 'order-42');
  t.is(first.res.status, 202);
  const variants: [string, unknown][] = [
    ['another payload', { ...body, payload: { order: 43 } }],
    ['another url', { ...body, url: 'http://127.0.0.1:2/x' }],
    ['extra headers', { ...body, headers: { 'X-A': '1' } }],
    ['a retry policy', { ...body, retryPolicy: { maxAttempts: 2 } }],
    ['array order changed', { ...body, payload: { order: 42, extra: [2, 1] } }],
  ];
  for (const [label, variant] of variants) {
    const res = await deliver(svc, variant, 'order-42');
    t.is(res.res.status, 409, label);
    t.regex(res.res.headers.get('content-type') ?? '', /^application\/problem\+json/, label);
    t.is(res.json.status, 409, label);
    t.is(res.json.code, 'idempotency_conflict', label);
    t.is(typeof res.json.type, 'string', label);
    t.is(typeof res.json.title, 'string', label);
    t.is(typeof res.json.detail, 'string', label);
    t.is(res.res.headers.get('idempotent-replayed'), null, label);
  }
  t.deepEqual(await counts(svc), { webhooks: 1, endpoints: 1, jobs: 1 });
  // The original is still answered as before.
  const again = await deliver(svc, body, 'order-42');
  t.is(again.res.status, 202);
  t.is(again.json.id, first.json.id);
});

test.serial('without a key the same body makes a new webhook each time; keys are independent', async (t) => {
  const svc = await startTestService(t, apiOnly);
  const body = { url: NOWHERE, payload: 1 };
  const a = await deliver(svc, body);
  const b = await deliver(svc, body);
  const c = await deliver(svc, body, 'key-c');
  const d = await deliver(svc, body, 'key-d');
  t.is(new Set([a.json.id, b.json.id, c.json.id, d.json.id]).size, 4);
  t.deepEqual(await counts(svc), { webhooks: 4, endpoints: 1, jobs: 4 });
});

test.serial('a refused request does not use up its key', async (t) => {
  const svc = await startTestService(t, apiOnly);
  const bad = await deliver(svc, { url: 'ftp://127.0.0.1/x', payload: 1 }, 'first-try');
  t.is(bad.res.status, 400);
  const good = await deliver(svc, { url: NOWHERE, payload: 1 }, 'first-try');
  t.is(good.res.status, 202);
  t.is(good.res.headers.get('idempotent-replayed'), null);
  t.deepEqual(await counts(svc), { webhooks: 1, endpoints: 1, jobs: 1 });
});

test.serial('20 concurrent requests with the same key and body: one webhook, one job, one delivery', async (t) => {
  const svc = await startTestService(t);
  const rx = await startReceiver(t);
  // A URL never used before: the requests also race to register its endpoint.
  const body = JSON.stringify({ url: `${rx.url}/race`, payload: { order: 7, note: 'once' } });
  const answers = await Promise.all(Array.from({ length: 20 }, () => deliverRaw(svc, body, 'race-key')));

  t.deepEqual(answers.map((a) => a.res.status), Array(20).fill(202));
  const ids = new Set(answers.map((a) => a.json.id));
  t.is(ids.size, 1, `one id for all: ${[...ids].join(', ')}`);
  t.is(new Set(answers.map((a) => a.json.endpointId)).size, 1);
  const fresh = answers.filter((a) => a.res.headers.get('idempotent-replayed') !== 'true');
  t.is(fresh.length, 1, 'exactly one answer is the original; the others are replays');
  const [id] = ids;

  // Let the delivery finish, then count.
  await eventually(async () => {
    const s = (await (await svc.api(`/api/v1/webhooks/${id}/status`)).json()) as Record<string, any>;
    return s.status === 'delivered' ? s : undefined;
  });
  t.deepEqual(await counts(svc), { webhooks: 1, endpoints: 1, jobs: 1 });
  t.is(rx.received.length, 1, 'the receiver got exactly one delivery');
  t.is(rx.received[0]!.headers['webhook-id'], id);
  // The body is stored as serialized once at submission: the exact bytes arrive.
  t.is(rx.received[0]!.body, JSON.stringify({ order: 7, note: 'once' }));
});

test.serial('concurrent requests with the same key and different bodies: one 202, the rest 409', async (t) => {
  const svc = await startTestService(t, apiOnly);
  const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => deliver(svc, { url: NOWHERE, payload: { attempt: i } }, 'contested')));
  const statuses = answers.map((a) => a.res.status).sort();
  t.deepEqual(statuses, [202, ...Array(9).fill(409)]);
  for (const a of answers.filter((x) => x.res.status === 409)) t.is(a.json.code, 'idempotency_conflict');
  t.deepEqual(await counts(svc), { webhooks: 1, endpoints: 1, jobs: 1 });
  // The one that won is the one stored.
  const winner = answers.find((a) => a.res.status === 202)!;
  const rows = await query(svc.dbUrl, 'SELECT id, body FROM hookrelay.webhooks');
  t.is(rows.length, 1);
  t.is(rows[0]!.id, winner.json.id);
  // Its body is one of the ten submitted, intact.
  const sent = Array.from({ length: 10 }, (_, i) => JSON.stringify({ attempt: i }));
  t.true(sent.includes(rows[0]!.body), rows[0]!.body);
});

test.serial('by endpointId: the same key and body replays; the same key naming another endpoint is 409', async (t) => {
  const svc = await startTestService(t, apiOnly);
  const create = async (url: string) => ((await (await svc.api('/api/v1/endpoints', { method: 'POST', json: { url } })).json()) as { id: string }).id;
  const a = await create('http://127.0.0.1:1/a');
  const b = await create('http://127.0.0.1:1/b');
  const first = await deliver(svc, { endpointId: a, payload: { n: 1 } }, 'ep-key');
  t.is(first.res.status, 202);
  t.is(first.json.endpointId, a);
  const again = await deliver(svc, { endpointId: a, payload: { n: 1 } }, 'ep-key');
  t.is(again.res.status, 202);
  t.deepEqual(again.json, first.json);
  t.is(again.res.headers.get('idempotent-replayed'), 'true');
  const other = await deliver(svc, { endpointId: b, payload: { n: 1 } }, 'ep-key');
  t.is(other.res.status, 409);
  t.is(other.json.code, 'idempotency_conflict');
  // A url in place of the endpointId is another request too, even for the same endpoint.
  const byUrl = await deliver(svc, { url: 'http://127.0.0.1:1/a', payload: { n: 1 } }, 'ep-key');
  t.is(byUrl.res.status, 409);
  t.deepEqual(await counts(svc), { webhooks: 1, endpoints: 2, jobs: 1 });
});
