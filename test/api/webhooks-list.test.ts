import test, { type ExecutionContext } from 'ava';
import { startTestService, type TestService } from '../helpers/service.ts';

/**
 * GET /api/v1/webhooks: newest first, cursor pagination that stays stable while new webhooks
 * arrive, and the status, endpointId and creation-time filters.
 *
 * API-only services: no worker changes a webhook's status behind a test's back. Each test has a
 * service of its own, since each looks at whole lists; they run serially, as each starts one.
 */

const LIST = '/api/v1/webhooks';
const NOWHERE = 'http://127.0.0.1:1';

type Json = Record<string, any>;

async function call(svc: TestService, path: string, init: RequestInit & { json?: unknown } = {}): Promise<{ res: Response; json: Json }> {
  const res = await svc.api(path, init);
  return { res, json: (await res.json()) as Json };
}

async function submit(t: ExecutionContext, svc: TestService, body: Json): Promise<Json> {
  const { res, json } = await call(svc, '/api/v1/webhooks/deliver', { method: 'POST', json: body });
  t.is(res.status, 202, JSON.stringify(json));
  return json;
}

async function submitMany(t: ExecutionContext, svc: TestService, n: number, label: string): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) ids.push((await submit(t, svc, { url: `${NOWHERE}/${label}`, payload: { label, i } })).id);
  return ids;
}

async function page(t: ExecutionContext, svc: TestService, qs: string): Promise<{ data: Json[]; nextCursor: string | null }> {
  const { res, json } = await call(svc, `${LIST}?${qs}`);
  t.is(res.status, 200, `${qs}: ${JSON.stringify(json)}`);
  return json as { data: Json[]; nextCursor: string | null };
}

/** Every page from the first (or from `cursor`), following nextCursor. */
async function allPages(t: ExecutionContext, svc: TestService, qs: string, cursor: string | null = null): Promise<Json[][]> {
  const pages: Json[][] = [];
  for (let i = 0; i < 100; i++) {
    const p = await page(t, svc, `${qs}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    pages.push(p.data);
    cursor = p.nextCursor;
    if (cursor === null) return pages;
  }
  throw new Error('more than 100 pages');
}

const ids = (rows: Json[]) => rows.map((r) => r.id as string);
const descending = (list: string[]) => list.every((id, i) => i === 0 || list[i - 1]! > id);

function assertProblem(t: ExecutionContext, res: Response, json: Json, expected: { status: number; code?: string; field: string }): void {
  t.is(res.status, expected.status, JSON.stringify(json));
  t.regex(res.headers.get('content-type') ?? '', /^application\/problem\+json/);
  if (expected.code) t.is(json.code, expected.code);
  const fields: string[] = (json.errors ?? []).map((e: { field: string }) => e.field);
  t.true(fields.includes(expected.field), `errors[].field names ${expected.field}; got ${JSON.stringify(fields)}`);
}

test.serial('newest first: the list is in descending id order, and the newest webhook comes first', async (t) => {
  const svc = await startTestService(t, { HOOKRELAY_ROLES: 'api' });
  t.deepEqual(await page(t, svc, ''), { data: [], nextCursor: null });
  const submitted = await submitMany(t, svc, 6, 'order');
  const { data, nextCursor } = await page(t, svc, '');
  t.is(nextCursor, null);
  t.deepEqual([...ids(data)].sort(), [...submitted].sort());
  t.true(descending(ids(data)), JSON.stringify(ids(data)));
  t.is(data[0]!.id, submitted.at(-1));
  t.is(data.at(-1)!.id, submitted[0]);
  // Creation times agree with the order.
  const times = data.map((w) => Date.parse(w.createdAt));
  t.true(times.every((time, i) => i === 0 || times[i - 1]! >= time));
  t.like(data[0], { url: `${NOWHERE}/order`, status: 'pending', attempts: 0, lastAttemptAt: null, deliveredAt: null, error: null });
  t.is(typeof data[0]!.endpointId, 'string');
  t.is(typeof data[0]!.nextAttemptAt, 'string');
  // The summary leaves out the payload and the headers.
  t.false('payload' in data[0]!);
  t.false('headers' in data[0]!);
});

test.serial('pages stay stable while new webhooks arrive: the pages after the first are exactly the rest of the first 10', async (t) => {
  const svc = await startTestService(t, { HOOKRELAY_ROLES: 'api' });
  const first10 = await submitMany(t, svc, 10, 'before');
  const page1 = await page(t, svc, 'limit=4');
  t.is(page1.data.length, 4);
  t.is(typeof page1.nextCursor, 'string');
  // Five more arrive between the pages.
  const later5 = await submitMany(t, svc, 5, 'between');
  const rest = await allPages(t, svc, 'limit=4', page1.nextCursor);
  t.deepEqual(rest.map((p) => p.length), [4, 2]);
  const seen = [...ids(page1.data), ...rest.flatMap(ids)];
  t.is(new Set(seen).size, seen.length, 'no webhook twice');
  t.deepEqual([...seen].sort(), [...first10].sort(), 'exactly the first 10');
  t.true(descending(seen), `strictly descending by id: ${JSON.stringify(seen)}`);
  t.false(seen.some((id) => later5.includes(id)), 'none of the later five');
  // A fresh first page starts with the five new ones.
  const fresh = await page(t, svc, 'limit=5');
  t.deepEqual([...ids(fresh.data)].sort(), [...later5].sort());
  // Reading from the same cursor again gives the same page.
  const again = await page(t, svc, `limit=4&cursor=${encodeURIComponent(page1.nextCursor!)}`);
  t.deepEqual(ids(again.data), ids(rest[0]!));
  // limit 1 through everything: 15 pages of one, each once.
  const ones = await allPages(t, svc, 'limit=1');
  t.is(ones.length, 15);
  t.true(ones.every((p) => p.length === 1));
  t.true(descending(ones.flat().map((w) => w.id)));
});

test.serial('filter by status and by endpointId, alone, together and across pages', async (t) => {
  const svc = await startTestService(t, { HOOKRELAY_ROLES: 'api' });
  const create = async (body: Json) => (await call(svc, '/api/v1/endpoints', { method: 'POST', json: body })).json;
  const live = await create({ url: `${NOWHERE}/live` });
  const off = await create({ url: `${NOWHERE}/off`, enabled: false });
  const gone = await create({ url: `${NOWHERE}/gone` });
  const pending: string[] = [];
  for (let i = 0; i < 3; i++) pending.push((await submit(t, svc, { endpointId: live.id, payload: i })).id);
  const held: string[] = [];
  for (let i = 0; i < 2; i++) held.push((await submit(t, svc, { endpointId: off.id, payload: i })).id);
  const dead: string[] = [];
  for (let i = 0; i < 2; i++) dead.push((await submit(t, svc, { endpointId: gone.id, payload: i })).id);
  t.is((await call(svc, `/api/v1/endpoints/${gone.id}`, { method: 'DELETE' })).res.status, 200);

  const sorted = (list: string[]) => [...list].sort().reverse();
  t.deepEqual(ids((await page(t, svc, 'status=pending')).data), sorted(pending));
  t.deepEqual(ids((await page(t, svc, 'status=held')).data), sorted(held));
  t.deepEqual(ids((await page(t, svc, 'status=dead')).data), sorted(dead));
  t.deepEqual(ids((await page(t, svc, 'status=delivered')).data), []);
  t.deepEqual(ids((await page(t, svc, 'status=retrying')).data), []);
  t.true((await page(t, svc, 'status=dead')).data.every((w) => w.status === 'dead' && w.error === 'endpoint deleted'));

  t.deepEqual(ids((await page(t, svc, `endpointId=${live.id}`)).data), sorted(pending));
  t.deepEqual(ids((await page(t, svc, `endpointId=${gone.id}`)).data), sorted(dead), 'a deleted endpoint\'s webhooks stay listed');
  t.deepEqual(ids((await page(t, svc, 'endpointId=ep_00000000000000000000000000')).data), []);
  t.deepEqual(ids((await page(t, svc, `endpointId=${live.id}&status=pending`)).data), sorted(pending));
  t.deepEqual(ids((await page(t, svc, `endpointId=${live.id}&status=dead`)).data), []);
  t.true((await page(t, svc, `endpointId=${off.id}`)).data.every((w) => w.endpointId === off.id));

  // Filters hold across pages: pending ones two at a time.
  const pages = await allPages(t, svc, 'status=pending&limit=2');
  t.deepEqual(pages.map((p) => p.length), [2, 1]);
  t.deepEqual(pages.flat().map((w) => w.id), sorted(pending));
});

test.serial('filter by creation time: createdAfter and createdBefore take RFC 3339 times, offsets included', async (t) => {
  const svc = await startTestService(t, { HOOKRELAY_ROLES: 'api' });
  const early = await submitMany(t, svc, 3, 'early');
  await new Promise((r) => setTimeout(r, 60));
  const split = new Date();
  await new Promise((r) => setTimeout(r, 60));
  const late = await submitMany(t, svc, 2, 'late');
  const sorted = (list: string[]) => [...list].sort().reverse();
  const iso = split.toISOString();
  t.deepEqual(ids((await page(t, svc, `createdAfter=${encodeURIComponent(iso)}`)).data), sorted(late));
  t.deepEqual(ids((await page(t, svc, `createdBefore=${encodeURIComponent(iso)}`)).data), sorted(early));
  // The same instant with an offset, and with lower-case t and z (RFC 3339 allows both).
  const lower = iso.replace('T', 't').replace('Z', 'z');
  t.deepEqual(ids((await page(t, svc, `createdAfter=${encodeURIComponent(lower)}`)).data), sorted(late));
  const plus2 = new Date(split.getTime() + 2 * 3600_000).toISOString().replace('Z', '+02:00');
  t.deepEqual(ids((await page(t, svc, `createdAfter=${encodeURIComponent(plus2)}`)).data), sorted(late));
  const minus5 = new Date(split.getTime() - 5 * 3600_000).toISOString().replace('Z', '-05:00');
  t.deepEqual(ids((await page(t, svc, `createdBefore=${encodeURIComponent(minus5)}`)).data), sorted(early));
  // A window around everything, an empty window, and one combined with a status.
  const hourAgo = new Date(Date.now() - 3600_000).toISOString();
  const inHour = new Date(Date.now() + 3600_000).toISOString();
  t.deepEqual(ids((await page(t, svc, `createdAfter=${hourAgo}&createdBefore=${inHour}`)).data), sorted([...early, ...late]));
  t.deepEqual(ids((await page(t, svc, `createdAfter=${inHour}`)).data), []);
  t.deepEqual(ids((await page(t, svc, `createdAfter=${iso}&createdBefore=${hourAgo}`)).data), []);
  t.deepEqual(ids((await page(t, svc, `createdAfter=${encodeURIComponent(iso)}&status=pending&limit=1`)).data), [sorted(late)[0]]);
  // Across pages.
  const pages = await allPages(t, svc, `createdBefore=${encodeURIComponent(iso)}&limit=2`);
  t.deepEqual(pages.flat().map((w) => w.id), sorted(early));
});

// RFC 3339 allows a leap second (second 60), and the document's date-time format accepts it;
// JavaScript's Date does not. The answer may be a page or a 400 naming the parameter, never a 500.
test.serial('a leap second in createdAfter or createdBefore is not a 500', async (t) => {
  const svc = await startTestService(t, { HOOKRELAY_ROLES: 'api' });
  await submitMany(t, svc, 1, 'leap');
  for (const name of ['createdAfter', 'createdBefore']) {
    const { res, json } = await call(svc, `${LIST}?${name}=${encodeURIComponent('2016-12-31T23:59:60Z')}`);
    t.true(res.status === 200 || res.status === 400, `${name}: ${res.status} ${JSON.stringify(json)}`);
    if (res.status === 400) assertProblem(t, res, json, { status: 400, field: name });
  }
});

test.serial('bad filters are 400 naming the parameter', async (t) => {
  const svc = await startTestService(t, { HOOKRELAY_ROLES: 'api' });
  const cases: [string, string][] = [
    ['status=nope', 'status'],
    ['status=PENDING', 'status'],
    ['createdAfter=yesterday', 'createdAfter'],
    ['createdAfter=2024-01-01', 'createdAfter'],
    ['createdBefore=2024-13-01T00:00:00Z', 'createdBefore'],
    ['createdBefore=1700000000', 'createdBefore'],
    [`endpointId=${'e'.repeat(65)}`, 'endpointId'],
    ['limit=0', 'limit'],
    ['limit=201', 'limit'],
    ['limit=abc', 'limit'],
    ['status=pending&status=dead', 'status'],
  ];
  for (const [qs, field] of cases) {
    const { res, json } = await call(svc, `${LIST}?${qs}`);
    assertProblem(t, res, json, { status: 400, code: 'validation_failed', field });
  }
});

test.serial('a changed cursor is 400 invalid_cursor naming cursor, and so is an endpoints cursor', async (t) => {
  const svc = await startTestService(t, { HOOKRELAY_ROLES: 'api' });
  await submitMany(t, svc, 3, 'cursor');
  const cursor = (await page(t, svc, 'limit=1')).nextCursor!;
  t.is(typeof cursor, 'string');
  const dot = cursor.indexOf('.');
  const change = (s: string, i: number) => s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1);
  for (const tampered of [change(cursor, 0), change(cursor, dot - 1), change(cursor, dot + 3), cursor.replace('.', ''), 'x.y']) {
    const { res, json } = await call(svc, `${LIST}?limit=1&cursor=${encodeURIComponent(tampered)}`);
    assertProblem(t, res, json, { status: 400, code: 'invalid_cursor', field: 'cursor' });
  }
  // A position made up by the client, signed with nothing: refused.
  const forged = `${Buffer.from(JSON.stringify({ id: 'msg_ZZZZZZZZZZZZZZZZZZZZZZZZZZ' })).toString('base64url')}.${cursor.slice(dot + 1)}`;
  const f = await call(svc, `${LIST}?cursor=${encodeURIComponent(forged)}`);
  assertProblem(t, f.res, f.json, { status: 400, code: 'invalid_cursor', field: 'cursor' });
  // The endpoints list's cursor is not a webhooks cursor.
  for (let i = 0; i < 2; i++) await call(svc, '/api/v1/endpoints', { method: 'POST', json: { url: `${NOWHERE}/ep${i}` } });
  const endpointsCursor = (await call(svc, '/api/v1/endpoints?limit=1')).json.nextCursor as string;
  t.is(typeof endpointsCursor, 'string');
  const other = await call(svc, `${LIST}?cursor=${encodeURIComponent(endpointsCursor)}`);
  assertProblem(t, other.res, other.json, { status: 400, code: 'invalid_cursor', field: 'cursor' });
  // The real cursor still works.
  t.is((await page(t, svc, `limit=1&cursor=${encodeURIComponent(cursor)}`)).data.length, 1);
});
