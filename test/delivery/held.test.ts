import test from 'ava';
import { startReceiver } from '../helpers/receiver.ts';
import { eventually, startTestService, type TestService } from '../helpers/service.ts';
import { query } from '../helpers/db.ts';

/**
 * Disabled endpoints hold their webhooks: after a 410 Gone, after failing for too long, or by
 * an operator's PATCH. Held webhooks use no attempt and go out once the endpoint is enabled.
 * Nothing is ever dropped: every webhook ends delivered, dead with a dead letter, or held.
 */

async function json(res: Response): Promise<any> {
  return res.json();
}

async function createEndpoint(svc: TestService, url: string, extra: object = {}): Promise<string> {
  const res = await svc.api('/api/v1/endpoints', { method: 'POST', json: { url, ...extra } });
  if (res.status !== 201) throw new Error(`endpoint create answered ${res.status}: ${await res.text()}`);
  return (await json(res)).id;
}

async function submit(svc: TestService, endpointId: string, payload: unknown, retryPolicy?: object): Promise<{ status: number; body: any }> {
  const res = await svc.api('/api/v1/webhooks/deliver', { method: 'POST', json: { endpointId, payload, ...(retryPolicy ? { retryPolicy } : {}) } });
  return { status: res.status, body: await json(res) };
}

const status = async (svc: TestService, id: string) => json(await svc.api(`/api/v1/webhooks/${id}/status`));
const endpoint = async (svc: TestService, id: string) => json(await svc.api(`/api/v1/endpoints/${id}`));
const patch = (svc: TestService, id: string, body: object) => svc.api(`/api/v1/endpoints/${id}`, { method: 'PATCH', json: body });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function until(svc: TestService, id: string, wanted: string[], timeoutMs = 30_000) {
  return eventually(async () => {
    const s = await status(svc, id);
    return wanted.includes(s.status) ? s : undefined;
  }, timeoutMs, 100);
}

/** Every webhook is delivered, held, or dead with an open dead letter: none is dropped or stuck. */
async function assertNothingDropped(t: import('ava').ExecutionContext, svc: TestService): Promise<void> {
  const rows = await query(svc.dbUrl, `
    SELECT w.id, w.status,
           (SELECT count(*)::int FROM hookrelay.dead_letters d WHERE d.webhook_id = w.id AND d.replayed_at IS NULL) AS open_letters
      FROM hookrelay.webhooks w`);
  for (const r of rows) {
    t.true(['delivered', 'held', 'dead'].includes(r.status), `${r.id} ends ${r.status}`);
    if (r.status === 'dead') t.is(r.open_letters, 1, `dead webhook ${r.id} has a dead letter`);
    else t.is(r.open_letters, 0, `${r.status} webhook ${r.id} has no open dead letter`);
  }
}

test.serial('410 Gone: the webhook is dead (reason gone), the endpoint disabled; new webhooks are held until it is enabled', async (t) => {
  const svc = await startTestService(t);
  const rx = await startReceiver(t);
  rx.fallback = { status: 410, body: 'gone' };
  const endpointId = await createEndpoint(svc, `${rx.url}/gone`);

  const first = await submit(svc, endpointId, { n: 1 }, { maxAttempts: 10, baseDelayMs: 100 });
  t.is(first.status, 202);
  t.is(first.body.status, 'pending');
  const dead = await until(svc, first.body.id, ['dead']);
  t.is(dead.attempts, 1, 'a 410 is not retried');
  t.regex(dead.error ?? '', /410/);
  t.is(rx.received.length, 1);

  const letters = await json(await svc.api(`/api/v1/dead-letters?endpointId=${endpointId}`));
  t.is(letters.data.length, 1);
  t.like(letters.data[0], { webhookId: first.body.id, endpointId, reason: 'gone', lastStatusCode: 410, attempts: 1, replayedAt: null, replayedBy: null });

  const ep = await endpoint(svc, endpointId);
  t.false(ep.enabled);
  t.regex(ep.disabledReason ?? '', /410/);

  // A new webhook is accepted, and held.
  const second = await submit(svc, endpointId, { n: 2 });
  t.is(second.status, 202);
  t.is(second.body.status, 'held');
  const third = await submit(svc, endpointId, { n: 3 });
  t.is(third.body.status, 'held');
  await sleep(1_500);
  t.is(rx.received.length, 1, 'the receiver got nothing for held webhooks');
  for (const id of [second.body.id, third.body.id]) {
    const s = await status(svc, id);
    t.is(s.status, 'held');
    t.is(s.attempts, 0);
    t.is(s.nextAttemptAt, null);
  }
  const heldList = await json(await svc.api(`/api/v1/webhooks?status=held&endpointId=${endpointId}`));
  t.deepEqual(heldList.data.map((w: any) => w.id).sort(), [second.body.id, third.body.id].sort());

  // Replaying the dead letter while the endpoint is disabled holds the webhook too.
  const replay = await svc.api(`/api/v1/dead-letters/${letters.data[0].id}/replay`, { method: 'POST' });
  t.is(replay.status, 200);
  t.like(await json(replay), { deadLetterId: letters.data[0].id, webhookId: first.body.id, status: 'held' });
  t.is((await status(svc, first.body.id)).status, 'held');
  await assertNothingDropped(t, svc);

  // Enabled again: the held webhooks go out.
  rx.fallback = { status: 200, body: 'ok' };
  const res = await patch(svc, endpointId, { enabled: true });
  t.is(res.status, 200);
  const enabled = await json(res);
  t.true(enabled.enabled);
  t.is(enabled.disabledReason, null);
  for (const id of [second.body.id, third.body.id]) {
    const s = await until(svc, id, ['delivered']);
    t.is(s.attempts, 1);
  }
  t.is((await until(svc, first.body.id, ['delivered'])).attempts, 2);
  const got = rx.received.slice(1).map((r) => r.headers['webhook-id']).sort();
  t.deepEqual(got, [first.body.id, second.body.id, third.body.id].sort());
  await assertNothingDropped(t, svc);
});

test.serial('disabling by PATCH holds pending webhooks when their attempt comes due, without using an attempt', async (t) => {
  const svc = await startTestService(t);
  const rx = await startReceiver(t);
  rx.fallback = { status: 500, body: 'not yet' };
  const endpointId = await createEndpoint(svc, rx.url);

  // One attempt fails; the next is due in ~2 s.
  const a = await submit(svc, endpointId, { n: 'a' }, { maxAttempts: 10, baseDelayMs: 2_000, maxDelayMs: 2_000 });
  const b = await submit(svc, endpointId, { n: 'b' }, { maxAttempts: 10, baseDelayMs: 2_000, maxDelayMs: 2_000 });
  for (const w of [a, b]) t.is(w.body.status, 'pending');
  await until(svc, a.body.id, ['retrying']);
  await until(svc, b.body.id, ['retrying']);
  t.is(rx.received.length, 2);

  const res = await patch(svc, endpointId, { enabled: false });
  t.is(res.status, 200);
  const disabled = await json(res);
  t.false(disabled.enabled);
  t.truthy(disabled.disabledReason);

  // When the retry comes due, the webhook is held instead of attempted.
  for (const w of [a, b]) {
    const s = await until(svc, w.body.id, ['held'], 30_000);
    t.is(s.attempts, 1, 'no attempt used');
    t.is(s.nextAttemptAt, null);
  }
  t.is(rx.received.length, 2, 'the receiver got nothing after the endpoint was disabled');
  const c = await submit(svc, endpointId, { n: 'c' });
  t.is(c.status, 202);
  t.is(c.body.status, 'held');
  await assertNothingDropped(t, svc);

  // Enabled again: everything held is delivered; the attempt numbers continue.
  rx.fallback = { status: 200 };
  t.is((await patch(svc, endpointId, { enabled: true })).status, 200);
  for (const w of [a, b, c]) await until(svc, w.body.id, ['delivered']);
  const detail = await json(await svc.api(`/api/v1/webhooks/${a.body.id}`));
  t.deepEqual(detail.attempts.map((x: any) => [x.number, x.outcome]), [[1, 'failure'], [2, 'success']]);
  t.is((await status(svc, c.body.id)).attempts, 1);
  t.is(rx.received.length, 5);
  await assertNothingDropped(t, svc);
});

test.serial('an endpoint created disabled holds webhooks from the start', async (t) => {
  const svc = await startTestService(t);
  const rx = await startReceiver(t);
  const endpointId = await createEndpoint(svc, rx.url, { enabled: false });
  const w = await submit(svc, endpointId, { n: 1 });
  t.is(w.status, 202);
  t.is(w.body.status, 'held');
  // Also when submitted by URL rather than endpoint id.
  const byUrl = await svc.api('/api/v1/webhooks/deliver', { method: 'POST', json: { url: rx.url, payload: 2 } });
  t.is(byUrl.status, 202);
  const byUrlBody = await json(byUrl);
  t.is(byUrlBody.endpointId, endpointId);
  t.is(byUrlBody.status, 'held');
  await sleep(1_000);
  t.is(rx.received.length, 0);
  t.is((await patch(svc, endpointId, { enabled: true })).status, 200);
  await until(svc, w.body.id, ['delivered']);
  await until(svc, byUrlBody.id, ['delivered']);
  t.is(rx.received.length, 2);
});

test.serial('an endpoint failing without a success for HOOKRELAY_DISABLE_AFTER_SECONDS is disabled; its webhooks are held, none dropped', async (t) => {
  const svc = await startTestService(t, {
    HOOKRELAY_DISABLE_AFTER_SECONDS: '1',
    // The circuit stays closed: only the disable rule acts.
    HOOKRELAY_CIRCUIT_FAILURE_THRESHOLD: '10000',
    HOOKRELAY_CIRCUIT_MIN_REQUESTS: '1000000',
  });
  const rx = await startReceiver(t);
  rx.fallback = { status: 500, body: 'broken' };
  const endpointId = await createEndpoint(svc, rx.url);
  const ids: string[] = [];
  for (let i = 0; i < 3; i++) {
    const w = await submit(svc, endpointId, { n: i }, { maxAttempts: 100, baseDelayMs: 150, maxDelayMs: 300 });
    t.is(w.status, 202);
    ids.push(w.body.id);
  }

  const ep = await eventually(async () => {
    const e = await endpoint(svc, endpointId);
    return e.enabled === false ? e : undefined;
  }, 30_000, 100);
  t.regex(ep.disabledReason ?? '', /fail/i);
  t.is(ep.health.circuitState, 'closed', 'the circuit did not open');
  // Failures span at least the disable period, and no success in between.
  t.truthy(ep.health.failingSince);
  t.true(Date.parse(ep.health.lastFailureAt) - Date.parse(ep.health.failingSince) >= 1_000, JSON.stringify(ep.health));
  t.is(ep.health.lastSuccessAt, null);

  // Every webhook ends held (none dead: 100 attempts were far off), and the receiver goes quiet.
  for (const id of ids) {
    const s = await until(svc, id, ['held', 'dead', 'delivered']);
    t.is(s.status, 'held');
    t.true(s.attempts >= 1);
  }
  const quiet = rx.received.length;
  await sleep(1_000);
  t.is(rx.received.length, quiet);
  const attempts = await query(svc.dbUrl, 'SELECT count(*)::int AS n FROM hookrelay.attempts');
  t.is(attempts[0]!.n, quiet, 'every request was a recorded attempt');
  // A new webhook is held as well.
  const late = await submit(svc, endpointId, { n: 'late' });
  t.is(late.body.status, 'held');
  await assertNothingDropped(t, svc);

  // Enabling it again releases everything.
  rx.fallback = { status: 200 };
  t.is((await patch(svc, endpointId, { enabled: true })).status, 200);
  for (const id of [...ids, late.body.id]) await until(svc, id, ['delivered']);
  const after = await endpoint(svc, endpointId);
  t.true(after.enabled);
  t.is(after.health.failingSince, null);
  await assertNothingDropped(t, svc);
});
