import test from 'ava';
import { createEndpoint, submit, untilStatus as until, webhookStatus } from '../helpers/api.ts';
import { startReceiver } from '../helpers/receiver.ts';
import { eventually, startTestService, type TestService } from '../helpers/service.ts';
import { query } from '../helpers/db.ts';

/** Dead letters: what dies is recorded, listed, and can be replayed exactly once. */

async function json(res: Response): Promise<any> {
  return res.json();
}

const status = webhookStatus;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const list = async (svc: TestService, qs = '') => {
  const res = await svc.api(`/api/v1/dead-letters${qs ? `?${qs}` : ''}`);
  if (res.status !== 200) throw new Error(`list answered ${res.status}: ${await res.text()}`);
  return json(res);
};
const replay = (svc: TestService, id: string) => svc.api(`/api/v1/dead-letters/${encodeURIComponent(id)}/replay`, { method: 'POST' });

/** Job rows queued for one attempt of a webhook. */
async function jobsFor(svc: TestService, webhookId: string, attempt: number): Promise<number> {
  const rows = await query(svc.dbUrl, `SELECT count(*)::int AS n FROM hookrelay_queue.job WHERE name = 'deliveries' AND data->>'webhookId' = $1 AND (data->>'attempt')::int = $2`, [webhookId, attempt]);
  return rows[0]!.n;
}

test.serial('exhausted attempts make a dead letter; a replay keeps the id, gets a fresh budget, and happens once', async (t) => {
  const svc = await startTestService(t);
  const rx = await startReceiver(t);
  rx.fallback = { status: 500, body: 'nope' };
  const endpointId = await createEndpoint(svc, rx.url);
  const id = await submit(svc, endpointId, { n: 1 }, { maxAttempts: 2, baseDelayMs: 100, maxDelayMs: 100 });
  await until(svc, id, ['dead']);

  const first = await list(svc, `endpointId=${endpointId}`);
  t.is(first.data.length, 1);
  t.is(first.nextCursor, null);
  const letter = first.data[0];
  t.regex(letter.id, /^dl_[0-9A-Z]{26}$/);
  t.like(letter, { webhookId: id, endpointId, reason: 'attempts_exhausted', attempts: 2, lastStatusCode: 500, replayedAt: null, replayedBy: null });
  t.regex(letter.lastError ?? '', /500/);
  t.false(Number.isNaN(Date.parse(letter.deadAt)));

  // Replay: 200, pending, same id.
  const res = await replay(svc, letter.id);
  t.is(res.status, 200);
  t.deepEqual(await json(res), { deadLetterId: letter.id, webhookId: id, status: 'pending' });

  // The receiver still fails: exactly 2 more attempts (a fresh budget), numbered 3 and 4, then dead again.
  await rx.waitFor(4);
  const deadAgain = await eventually(async () => {
    const s = await status(svc, id);
    return s.status === 'dead' && s.attempts === 4 ? s : undefined;
  }, 30_000, 100);
  t.is(deadAgain.attempts, 4);
  await sleep(500);
  t.is(rx.received.length, 4);
  t.true(rx.received.every((r) => r.headers['webhook-id'] === id), 'the receiver sees the same webhook-id');
  const detail = await json(await svc.api(`/api/v1/webhooks/${id}`));
  t.deepEqual(detail.attempts.map((a: any) => a.number), [1, 2, 3, 4]);
  t.is(detail.id, id);

  // The first letter shows its replay; a second letter records the second death.
  const after = await list(svc, `endpointId=${endpointId}`);
  t.is(after.data.length, 2);
  const old = after.data.find((d: any) => d.id === letter.id);
  const fresh = after.data.find((d: any) => d.id !== letter.id);
  t.truthy(old.replayedAt);
  t.regex(old.replayedBy ?? '', /^api:/);
  t.like(fresh, { webhookId: id, reason: 'attempts_exhausted', attempts: 4, replayedAt: null, replayedBy: null });
  t.deepEqual((await list(svc, 'replayed=true')).data.map((d: any) => d.id), [letter.id]);
  t.deepEqual((await list(svc, 'replayed=false')).data.map((d: any) => d.id), [fresh.id]);

  // The replayed letter cannot be replayed again.
  const again = await replay(svc, letter.id);
  t.is(again.status, 409);
  t.regex(again.headers.get('content-type') ?? '', /problem\+json/);

  // The new letter can: the receiver has recovered.
  rx.fallback = { status: 200 };
  t.is((await replay(svc, fresh.id)).status, 200);
  const delivered = await until(svc, id, ['delivered']);
  t.is(delivered.attempts, 5);
  t.true(rx.received.every((r) => r.headers['webhook-id'] === id));
});

test.serial('an unknown dead letter is 404', async (t) => {
  const svc = await startTestService(t);
  const res = await replay(svc, 'dl_01JF3Y8Q6ZV7W3K2T9H4N5B6C7');
  t.is(res.status, 404);
  t.is((await json(res)).status, 404);
  t.is((await svc.api('/api/v1/dead-letters/dl_nope/replay', { method: 'POST', auth: false })).status, 401);
});

test.serial('listing: filters by endpoint, reason, time and replay; cursor pagination; a tampered cursor is 400', async (t) => {
  const svc = await startTestService(t);
  const rx = await startReceiver(t);
  rx.fallback = { status: 500 };
  const a = await createEndpoint(svc, `${rx.url}/a`);
  const b = await createEndpoint(svc, `${rx.url}/b`);
  const gone = await createEndpoint(svc, `${rx.url}/gone`);

  const aIds = [await submit(svc, a, 1), await submit(svc, a, 2), await submit(svc, a, 3)];
  for (const id of aIds) await until(svc, id, ['dead']);
  await sleep(50);
  const middle = new Date().toISOString();
  await sleep(50);
  const bIds = [await submit(svc, b, 4), await submit(svc, b, 5)];
  rx.script(); // (nothing scripted: /gone answers 410 through the handler below)
  rx.fallback = (req, res) => {
    res.writeHead(req.url === '/gone' ? 410 : 500);
    res.end();
  };
  const goneId = await submit(svc, gone, 6, { maxAttempts: 5 });
  for (const id of [...bIds, goneId]) await until(svc, id, ['dead']);

  const all = await list(svc);
  t.is(all.data.length, 6);
  t.is(all.nextCursor, null);
  // Newest first.
  const allIds = all.data.map((d: any) => d.id);
  t.deepEqual(allIds, [...allIds].sort().reverse());

  t.deepEqual((await list(svc, `endpointId=${a}`)).data.map((d: any) => d.webhookId).sort(), [...aIds].sort());
  t.deepEqual((await list(svc, `endpointId=${b}`)).data.map((d: any) => d.webhookId).sort(), [...bIds].sort());
  t.deepEqual((await list(svc, 'endpointId=ep_nothing')).data, []);
  const goneLetters = (await list(svc, 'reason=gone')).data;
  t.deepEqual(goneLetters.map((d: any) => d.webhookId), [goneId]);
  t.is(goneLetters[0].lastStatusCode, 410);
  t.is((await list(svc, 'reason=attempts_exhausted')).data.length, 5);
  t.deepEqual((await list(svc, 'reason=endpoint_deleted')).data, []);

  const before = (await list(svc, `deadBefore=${encodeURIComponent(middle)}`)).data.map((d: any) => d.webhookId).sort();
  t.deepEqual(before, [...aIds].sort());
  const afterIds = (await list(svc, `deadAfter=${encodeURIComponent(middle)}`)).data.map((d: any) => d.webhookId).sort();
  t.deepEqual(afterIds, [...bIds, goneId].sort());
  t.deepEqual((await list(svc, `deadAfter=${encodeURIComponent(middle)}&endpointId=${b}`)).data.map((d: any) => d.webhookId).sort(), [...bIds].sort());
  t.deepEqual((await list(svc, `deadAfter=${encodeURIComponent(new Date(Date.now() + 60_000).toISOString())}`)).data, []);
  t.is((await list(svc, 'replayed=false')).data.length, 6);
  t.deepEqual((await list(svc, 'replayed=true')).data, []);

  // limit 2 over the 5 exhausted letters: 2 + 2 + 1, no repeats, no gaps, same order as one page.
  const pages: any[][] = [];
  let cursor: string | null = null;
  do {
    const page: any = await list(svc, `reason=attempts_exhausted&limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    pages.push(page.data);
    cursor = page.nextCursor;
    if (pages.length > 5) break;
  } while (cursor);
  t.deepEqual(pages.map((p) => p.length), [2, 2, 1]);
  const paged = pages.flat().map((d) => d.id);
  t.deepEqual(paged, (await list(svc, 'reason=attempts_exhausted')).data.map((d: any) => d.id));
  t.is(new Set(paged).size, 5);

  // A cursor that was changed is refused.
  const page1 = await list(svc, 'reason=attempts_exhausted&limit=2');
  const c: string = page1.nextCursor;
  const [data, sig] = c.split('.');
  const forged = Buffer.from(JSON.stringify({ id: 'dl_ZZZZZZZZZZZZZZZZZZZZZZZZZZ' })).toString('base64url');
  for (const bad of [`${forged}.${sig}`, `${data}.${sig!.slice(0, -2)}AA`, `${data}`, 'garbage', `${c}.x`]) {
    const res = await svc.api(`/api/v1/dead-letters?limit=2&cursor=${encodeURIComponent(bad)}`);
    t.is(res.status, 400, bad);
    t.is((await json(res)).errors?.[0]?.field, 'cursor', bad);
  }
  // A webhooks cursor is not a dead-letters cursor.
  const hooks = await json(await svc.api('/api/v1/webhooks?limit=1'));
  t.truthy(hooks.nextCursor);
  t.is((await svc.api(`/api/v1/dead-letters?cursor=${encodeURIComponent(hooks.nextCursor)}`)).status, 400);

  // Bad filters are 400s naming the parameter.
  for (const [qs, field] of [['reason=tired', 'reason'], ['deadAfter=yesterday', 'deadAfter'], ['deadBefore=2025-13-01', 'deadBefore'], ['replayed=maybe', 'replayed'], ['limit=0', 'limit'], ['limit=201', 'limit']] as const) {
    const res = await svc.api(`/api/v1/dead-letters?${qs}`);
    t.is(res.status, 400, qs);
    t.is((await json(res)).errors?.[0]?.field, field, qs);
  }
});

test.serial('10 concurrent replays of one dead letter: one 200, nine 409, one new attempt', async (t) => {
  const svc = await startTestService(t);
  const rx = await startReceiver(t);
  rx.fallback = { status: 500 };
  const endpointId = await createEndpoint(svc, rx.url);
  const id = await submit(svc, endpointId, { n: 1 });
  await until(svc, id, ['dead']);
  const [letter] = (await list(svc)).data;
  t.is(rx.received.length, 1);

  rx.fallback = { status: 200 };
  const answers = await Promise.all(Array.from({ length: 10 }, () => replay(svc, letter.id)));
  const codes = answers.map((r) => r.status).sort();
  t.deepEqual(codes, [200, 409, 409, 409, 409, 409, 409, 409, 409, 409]);
  for (const r of answers) {
    const body = await json(r);
    if (r.status === 200) t.deepEqual(body, { deadLetterId: letter.id, webhookId: id, status: 'pending' });
    else t.is(body.status, 409);
  }

  const delivered = await until(svc, id, ['delivered']);
  t.is(delivered.attempts, 2);
  await sleep(1_000);
  t.is(rx.received.length, 2, 'exactly one new attempt reached the receiver');
  t.is(await jobsFor(svc, id, 2), 1, 'exactly one job for the replayed attempt');
  t.is(await jobsFor(svc, id, 3), 0);
  const letters = (await list(svc)).data;
  t.is(letters.length, 1);
  t.truthy(letters[0].replayedAt);
});

test.serial('bulk replay by filter answers how many; repeating it re-queues nothing', async (t) => {
  const svc = await startTestService(t);
  const rx = await startReceiver(t);
  rx.fallback = { status: 500 };
  const a = await createEndpoint(svc, `${rx.url}/a`);
  const b = await createEndpoint(svc, `${rx.url}/b`);
  const aIds = [await submit(svc, a, 1), await submit(svc, a, 2), await submit(svc, a, 3)];
  const bId = await submit(svc, b, 4);
  for (const id of [...aIds, bId]) await until(svc, id, ['dead']);

  rx.fallback = { status: 200 };
  const first = await svc.api('/api/v1/dead-letters/replay', { method: 'POST', json: { endpointId: a, reason: 'attempts_exhausted' } });
  t.is(first.status, 200);
  t.deepEqual(await json(first), { requeued: 3 });
  const second = await svc.api('/api/v1/dead-letters/replay', { method: 'POST', json: { endpointId: a, reason: 'attempts_exhausted' } });
  t.deepEqual(await json(second), { requeued: 0 });

  for (const id of aIds) t.is((await until(svc, id, ['delivered'])).attempts, 2);
  t.is((await status(svc, bId)).status, 'dead', 'the filter left the other endpoint alone');
  t.deepEqual((await list(svc, `endpointId=${a}&replayed=false`)).data, []);
  t.is((await list(svc, `endpointId=${b}&replayed=false`)).data.length, 1);
  // Once per webhook: the receiver got each replayed webhook exactly twice (death, replay).
  await sleep(500);
  for (const id of aIds) t.is(rx.received.filter((r) => r.headers['webhook-id'] === id).length, 2);

  // A filter matching nothing, and bad filters.
  t.deepEqual(await json(await svc.api('/api/v1/dead-letters/replay', { method: 'POST', json: { reason: 'gone' } })), { requeued: 0 });
  for (const [body, field] of [[{ reason: 'tired' }, 'reason'], [{ deadAfter: 'soon' }, 'deadAfter'], [{ endpointId: b, extra: 1 }, 'extra']] as const) {
    const res = await svc.api('/api/v1/dead-letters/replay', { method: 'POST', json: body });
    t.is(res.status, 400, JSON.stringify(body));
    t.is((await json(res)).errors?.[0]?.field, field);
  }
  // No filter at all replays everything open.
  const everything = await svc.api('/api/v1/dead-letters/replay', { method: 'POST', json: {} });
  t.deepEqual(await json(everything), { requeued: 1 });
  await until(svc, bId, ['delivered']);
});

test.serial('deleting an endpoint turns its waiting webhooks into dead letters (endpoint_deleted) that cannot be replayed', async (t) => {
  const svc = await startTestService(t);
  const rx = await startReceiver(t);
  rx.fallback = { status: 500, body: 'down' };
  const endpointId = await createEndpoint(svc, rx.url);
  // One webhook retrying far in the future, one held (the endpoint disabled), one delivered earlier.
  rx.script({ status: 200 });
  const delivered = await submit(svc, endpointId, 'ok');
  await until(svc, delivered, ['delivered']);
  const retrying = await submit(svc, endpointId, 'r', { maxAttempts: 5, baseDelayMs: 600_000, maxDelayMs: 600_000 });
  await until(svc, retrying, ['retrying']);
  t.is((await svc.api(`/api/v1/endpoints/${endpointId}`, { method: 'PATCH', json: { enabled: false } })).status, 200);
  const heldRes = await svc.api('/api/v1/webhooks/deliver', { method: 'POST', json: { endpointId, payload: 'h' } });
  const held = (await json(heldRes)).id;
  t.is((await status(svc, held)).status, 'held');

  const del = await svc.api(`/api/v1/endpoints/${endpointId}`, { method: 'DELETE' });
  t.is(del.status, 200);
  t.truthy((await json(del)).deletedAt);

  for (const id of [retrying, held]) t.is((await status(svc, id)).status, 'dead');
  t.is((await status(svc, delivered)).status, 'delivered');
  const letters = (await list(svc, 'reason=endpoint_deleted')).data;
  t.deepEqual(letters.map((d: any) => d.webhookId).sort(), [retrying, held].sort());
  for (const d of letters) {
    t.is(d.endpointId, endpointId);
    t.is(d.replayedAt, null);
    t.regex(d.lastError ?? '', /endpoint deleted/);
  }
  t.like(letters.find((d: any) => d.webhookId === retrying), { attempts: 1, lastStatusCode: 500 });
  t.like(letters.find((d: any) => d.webhookId === held), { attempts: 0 });

  for (const d of letters) {
    const res = await replay(svc, d.id);
    t.is(res.status, 409);
  }
  t.deepEqual(await json(await svc.api('/api/v1/dead-letters/replay', { method: 'POST', json: { endpointId } })), { requeued: 0 });
  t.deepEqual(await json(await svc.api('/api/v1/webhooks/retry', { method: 'POST', json: { status: 'dead', endpointId } })), { requeued: 0 });
  for (const id of [retrying, held]) t.is((await status(svc, id)).status, 'dead');
  t.is((await list(svc, 'replayed=true')).data.length, 0);
});
