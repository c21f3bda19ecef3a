import test from 'ava';
import { createEndpoint, submit, untilStatus as until, webhookStatus } from '../helpers/api.ts';
import { startReceiver } from '../helpers/receiver.ts';
import { eventually, startTestService, type TestService } from '../helpers/service.ts';
import { query } from '../helpers/db.ts';

/** POST /api/v1/webhooks/retry: re-queue dead webhooks, or attempt retrying ones now. */

async function json(res: Response): Promise<any> {
  return res.json();
}

const status = webhookStatus;
const retry = async (svc: TestService, body: unknown) => svc.api('/api/v1/webhooks/retry', { method: 'POST', json: body });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test.serial('{status: dead, endpointId} re-queues the dead webhooks of that endpoint; they are delivered once the receiver is fixed', async (t) => {
  const svc = await startTestService(t);
  const rx = await startReceiver(t);
  rx.fallback = { status: 500 };
  const a = await createEndpoint(svc, `${rx.url}/a`);
  const b = await createEndpoint(svc, `${rx.url}/b`);
  const aIds = [await submit(svc, a, 1), await submit(svc, a, 2), await submit(svc, a, 3)];
  const bId = await submit(svc, b, 4);
  // One of a's webhooks is still retrying (far off): a dead filter leaves it alone.
  const aRetrying = await submit(svc, a, 5, { maxAttempts: 5, baseDelayMs: 600_000, maxDelayMs: 600_000 });
  for (const id of [...aIds, bId]) await until(svc, id, ['dead']);
  await until(svc, aRetrying, ['retrying']);

  rx.fallback = { status: 200 };
  const res = await retry(svc, { status: 'dead', endpointId: a });
  t.is(res.status, 200);
  t.deepEqual(await json(res), { requeued: 3 });
  // Safe to repeat.
  t.deepEqual(await json(await retry(svc, { status: 'dead', endpointId: a })), { requeued: 0 });

  for (const id of aIds) {
    const s = await until(svc, id, ['delivered']);
    t.is(s.attempts, 2);
  }
  t.is((await status(svc, bId)).status, 'dead');
  t.is((await status(svc, aRetrying)).status, 'retrying');
  // Each re-queued webhook's dead letter shows the replay; b's stays open.
  const letters = await json(await svc.api(`/api/v1/dead-letters?endpointId=${a}`));
  t.is(letters.data.length, 3);
  t.true(letters.data.every((d: any) => d.replayedAt !== null && /^api:/.test(d.replayedBy)));
  const bLetters = await json(await svc.api(`/api/v1/dead-letters?endpointId=${b}`));
  t.is(bLetters.data[0].replayedAt, null);
  // The same ids reached the receiver again.
  for (const id of aIds) t.is(rx.received.filter((r) => r.headers['webhook-id'] === id).length, 2);
});

test.serial('{status: retrying} attempts a webhook now instead of at its far-off scheduled time', async (t) => {
  const svc = await startTestService(t);
  const rx = await startReceiver(t);
  rx.script({ status: 500 });
  const endpointId = await createEndpoint(svc, rx.url);
  const id = await submit(svc, endpointId, { n: 1 }, { maxAttempts: 5, baseDelayMs: 600_000, maxDelayMs: 600_000 });
  const waiting = await until(svc, id, ['retrying']);
  t.true(Date.parse(waiting.nextAttemptAt) - Date.now() > 60_000, `next attempt at ${waiting.nextAttemptAt}`);
  t.is(rx.received.length, 1);

  const res = await retry(svc, { status: 'retrying', endpointId });
  t.is(res.status, 200);
  t.deepEqual(await json(res), { requeued: 1 });
  const delivered = await until(svc, id, ['delivered'], 20_000);
  t.is(delivered.attempts, 2);
  t.is(rx.received.length, 2);
  t.true(rx.received.every((r) => r.headers['webhook-id'] === id));
  // Delivered now: nothing left to retry, and the far-off job finds the attempt done.
  t.deepEqual(await json(await retry(svc, { status: 'retrying' })), { requeued: 0 });
  await sleep(500);
  t.is(rx.received.length, 2);
});

test.serial('{status: retrying} repeated before the attempt is made re-queues nothing more and sends once', async (t) => {
  const svc = await startTestService(t);
  const rx = await startReceiver(t);
  const endpointId = await createEndpoint(svc, rx.url);
  // The second attempt takes a while to answer, so the repeat arrives while it is under way.
  rx.script({ status: 500 }, { status: 200, delayMs: 1_500 }, { status: 200, delayMs: 1_500 });
  const id = await submit(svc, endpointId, { n: 1 }, { maxAttempts: 5, baseDelayMs: 600_000, maxDelayMs: 600_000 });
  await until(svc, id, ['retrying']);
  t.deepEqual(await json(await retry(svc, { status: 'retrying', endpointId })), { requeued: 1 });
  const repeat = await json(await retry(svc, { status: 'retrying', endpointId }));
  await until(svc, id, ['delivered']);
  await sleep(2_500);
  // "Safe to repeat: a webhook already re-queued is not counted again." (openapi.yaml)
  t.deepEqual(repeat, { requeued: 0 });
  t.is(rx.received.length, 2, 'the receiver got the re-queued attempt once');
});

test.serial('time-range filters pick webhooks by creation time', async (t) => {
  // Ten failures to one endpoint would open its circuit (and defer the re-queued attempts).
  const svc = await startTestService(t, { HOOKRELAY_CIRCUIT_FAILURE_THRESHOLD: '1000' });
  const rx = await startReceiver(t);
  rx.fallback = { status: 500 };
  const endpointId = await createEndpoint(svc, rx.url);
  const early = [await submit(svc, endpointId, 1), await submit(svc, endpointId, 2)];
  await sleep(50);
  const middle = new Date().toISOString();
  await sleep(50);
  const late = [await submit(svc, endpointId, 3), await submit(svc, endpointId, 4), await submit(svc, endpointId, 5)];
  for (const id of [...early, ...late]) await until(svc, id, ['dead']);

  // Outside any range: nothing.
  const future = new Date(Date.now() + 3_600_000).toISOString();
  const past = new Date(Date.now() - 3_600_000).toISOString();
  t.deepEqual(await json(await retry(svc, { status: 'dead', createdAfter: future })), { requeued: 0 });
  t.deepEqual(await json(await retry(svc, { status: 'dead', createdBefore: past })), { requeued: 0 });
  t.deepEqual(await json(await retry(svc, { status: 'dead', createdAfter: past, createdBefore: past })), { requeued: 0 });

  // The receiver keeps failing (maxAttempts 1): re-queued webhooks die again, so counts stay exact.
  t.deepEqual(await json(await retry(svc, { status: 'dead', createdBefore: middle })), { requeued: 2 });
  for (const id of early) await eventually(async () => ((await status(svc, id)).status === 'dead' && (await status(svc, id)).attempts === 2 ? true : undefined), 30_000, 100);
  for (const id of late) t.is((await status(svc, id)).attempts, 1);

  t.deepEqual(await json(await retry(svc, { status: 'dead', createdAfter: middle, createdBefore: future, endpointId })), { requeued: 3 });
  for (const id of late) await eventually(async () => ((await status(svc, id)).status === 'dead' && (await status(svc, id)).attempts === 2 ? true : undefined), 30_000, 100);
  for (const id of early) t.is((await status(svc, id)).attempts, 2);
  t.deepEqual(await json(await retry(svc, { status: 'dead', endpointId: 'ep_01JF3Y8Q6ZV7W3K2T9H4N5B6C8' })), { requeued: 0 });
  const attempts = await query(svc.dbUrl, 'SELECT count(*)::int AS n FROM hookrelay.attempts');
  t.is(attempts[0]!.n, 10);
});

test.serial('bad input is a 400 naming the field', async (t) => {
  const svc = await startTestService(t);
  const cases: Array<[unknown, string]> = [
    [{ status: 'delivered' }, 'status'],
    [{ status: 'held' }, 'status'],
    [{ status: 'pending' }, 'status'],
    [{}, 'status'],
    [{ status: 'dead', nope: true }, 'nope'],
    [{ status: 'dead', createdAfter: 'yesterday' }, 'createdAfter'],
    [{ status: 'dead', createdBefore: '2025-02-30T00:00:00Z' }, 'createdBefore'],
    [{ status: 'dead', createdAfter: 1_700_000_000 }, 'createdAfter'],
    [{ status: 'retrying', endpointId: 'x'.repeat(65) }, 'endpointId'],
    [{ status: 'retrying', endpointId: 7 }, 'endpointId'],
  ];
  for (const [body, field] of cases) {
    const res = await retry(svc, body);
    t.is(res.status, 400, JSON.stringify(body));
    const problem = await json(res);
    t.regex(res.headers.get('content-type') ?? '', /problem\+json/);
    t.true((problem.errors ?? []).some((e: any) => e.field === field), `${JSON.stringify(body)} → ${JSON.stringify(problem.errors)}`);
  }
  t.is((await svc.api('/api/v1/webhooks/retry', { method: 'POST', body: 'status=dead', headers: { 'content-type': 'application/x-www-form-urlencoded' } })).status, 415);
  t.is((await svc.api('/api/v1/webhooks/retry', { method: 'POST', json: { status: 'dead' }, auth: false })).status, 401);
});

// ---------------------------------------------------------------------------------------------
// POST /api/v1/webhooks/{id}/retry: one webhook, by id.

const retryOne = async (svc: TestService, id: string) => svc.api(`/api/v1/webhooks/${id}/retry`, { method: 'POST' });

test.serial('retrying one webhook by id replays a dead one and leaves its neighbours alone', async (t) => {
  const svc = await startTestService(t);
  const rx = await startReceiver(t);
  rx.fallback = { status: 500 };
  const endpointId = await createEndpoint(svc, rx.url);
  const [first, second] = [await submit(svc, endpointId, 1), await submit(svc, endpointId, 2)];
  await until(svc, first, ['dead']);
  await until(svc, second, ['dead']);

  rx.fallback = { status: 200 };
  const res = await retryOne(svc, first);
  t.is(res.status, 200);
  const body = await json(res);
  t.is(body.webhookId, first);
  t.is(body.status, 'pending');
  t.false(Number.isNaN(Date.parse(body.nextAttemptAt)));
  const delivered = await until(svc, first, ['delivered']);
  t.is(delivered.attempts, 2);
  t.is((await status(svc, second)).status, 'dead', 'only the named webhook was replayed');
  // Its dead letter says so; a second retry of a delivered webhook is a 409.
  const letters = await json(await svc.api(`/api/v1/dead-letters?endpointId=${endpointId}`));
  const letter = letters.data.find((d: any) => d.webhookId === first);
  t.truthy(letter.replayedAt);
  t.regex(letter.replayedBy, /^api:/);
  const again = await retryOne(svc, first);
  t.is(again.status, 409);
  t.is((await json(again)).code, 'not_retryable');
});

test.serial('retrying one webhook by id brings a far-off retry forward; a second call finds nothing to bring forward', async (t) => {
  const svc = await startTestService(t);
  const rx = await startReceiver(t);
  rx.script({ status: 500 }, { status: 200, delayMs: 1_000 });
  const endpointId = await createEndpoint(svc, rx.url);
  const id = await submit(svc, endpointId, { n: 1 }, { maxAttempts: 5, baseDelayMs: 600_000, maxDelayMs: 600_000 });
  await until(svc, id, ['retrying']);
  const res = await retryOne(svc, id);
  t.is(res.status, 200);
  const body = await json(res);
  t.is(body.status, 'retrying');
  t.true(Date.parse(body.nextAttemptAt) - Date.now() < 60_000);
  const repeat = await retryOne(svc, id);
  await until(svc, id, ['delivered']);
  t.is(repeat.status, 409, 'the attempt was already due');
  await sleep(500);
  t.is(rx.received.length, 2);
});

test.serial('retrying one webhook by id: unknown is 404, a dead one of a disabled endpoint is held', async (t) => {
  const svc = await startTestService(t);
  const rx = await startReceiver(t);
  rx.fallback = { status: 500 };
  const endpointId = await createEndpoint(svc, rx.url);
  const unknown = await retryOne(svc, 'msg_01JF3Y8Q6ZV7W3K2T9H4N5B6C8');
  t.is(unknown.status, 404);
  t.regex(unknown.headers.get('content-type') ?? '', /problem\+json/);
  t.is((await retryOne(svc, 'x'.repeat(65))).status, 404, 'no webhook has such an id');
  t.is((await svc.api('/api/v1/webhooks/x/retry', { method: 'POST', auth: false })).status, 401);

  const dead = await submit(svc, endpointId, 1);
  await until(svc, dead, ['dead']);
  t.is((await svc.api(`/api/v1/endpoints/${endpointId}`, { method: 'PATCH', json: { enabled: false } })).status, 200);
  const held = await json(await retryOne(svc, dead));
  t.is(held.status, 'held');
  t.is(held.nextAttemptAt, null);
  t.is((await status(svc, dead)).status, 'held');
  const conflict = await retryOne(svc, dead);
  t.is(conflict.status, 409);
});
