import test from 'ava';
import { Webhook } from 'standardwebhooks';
import { startReceiver } from '../helpers/receiver.ts';
import { eventually, startTestService } from '../helpers/service.ts';
import { query } from '../helpers/db.ts';

/** End to end over real sockets: API → PostgreSQL → queue → worker → receiver. */

async function submit(svc: Awaited<ReturnType<typeof startTestService>>, body: unknown, headers: Record<string, string> = {}) {
  const res = await svc.api('/api/v1/webhooks/deliver', { method: 'POST', json: body, headers });
  return { res, body: (await res.json()) as any };
}

async function statusOf(svc: Awaited<ReturnType<typeof startTestService>>, id: string) {
  return (await (await svc.api(`/api/v1/webhooks/${id}/status`)).json()) as any;
}

function settled(svc: Awaited<ReturnType<typeof startTestService>>, id: string, timeoutMs = 20_000) {
  return eventually(async () => {
    const s = await statusOf(svc, id);
    return s.status === 'delivered' || s.status === 'dead' ? s : undefined;
  }, timeoutMs);
}

test('a webhook is delivered, signed so that the standardwebhooks package accepts it', async (t) => {
  const svc = await startTestService(t);
  const rx = await startReceiver(t);
  const payload = { type: 'invoice.paid', data: { id: 'in_1', amount: 4200, note: 'ünïcødé ✓' } };
  const { res, body } = await submit(svc, { url: `${rx.url}/hooks`, payload, headers: { 'X-Tenant': 'acme' } });
  t.is(res.status, 202);
  t.regex(body.id, /^msg_[0-9A-Z]{26}$/);
  t.regex(body.endpointId, /^ep_[0-9A-Z]{26}$/);
  t.is(body.status, 'pending');

  const [got] = await rx.waitFor(1);
  const status = await settled(svc, body.id);
  t.is(status.status, 'delivered');
  t.is(status.attempts, 1);
  t.truthy(status.deliveredAt);
  t.is(status.error, null);

  const { secret } = (await (await svc.api(`/api/v1/endpoints/${body.endpointId}/secret`)).json()) as any;
  t.regex(secret, /^whsec_/);
  t.deepEqual(new Webhook(secret).verify(got!.body, got!.headers), payload);
  t.is(got!.path, '/hooks');
  t.is(got!.headers['webhook-id'], body.id);
  t.is(got!.headers['x-webhook-id'], body.id);
  t.is(got!.headers['x-webhook-timestamp'], got!.headers['webhook-timestamp']);
  t.regex(got!.headers['x-webhook-signature']!, /^sha256=[0-9a-f]{64}$/);
  t.is(got!.headers['content-type'], 'application/json');
  t.is(got!.headers['x-tenant'], 'acme');
  t.deepEqual(JSON.parse(got!.body), payload);
});

test('the first webhook to a URL registers an endpoint; later ones reuse it', async (t) => {
  const svc = await startTestService(t);
  const rx = await startReceiver(t);
  const a = await submit(svc, { url: `${rx.url}/same`, payload: 1 });
  const b = await submit(svc, { url: `${rx.url}/same`, payload: 2 });
  const c = await submit(svc, { url: `${rx.url}/other`, payload: 3 });
  t.is(a.body.endpointId, b.body.endpointId);
  t.not(a.body.endpointId, c.body.endpointId);
  const rows = await query(svc.dbUrl, 'SELECT count(*)::int AS n FROM hookrelay.endpoints');
  t.is(rows[0]!.n, 2);
});

test('failures are retried with backoff until delivered; every attempt is recorded', async (t) => {
  const svc = await startTestService(t);
  const rx = await startReceiver(t);
  rx.script({ status: 500, body: 'boom' }, { status: 503, body: 'busy' }, { status: 200, body: 'fine' });
  const { body } = await submit(svc, { url: rx.url, payload: { n: 1 }, retryPolicy: { maxAttempts: 5, baseDelayMs: 200, backoffFactor: 2 } });
  const got = await rx.waitFor(3);
  const status = await settled(svc, body.id);
  t.is(status.status, 'delivered');
  t.is(status.attempts, 3);
  // Same id on every attempt, a fresh timestamp and signature per attempt.
  t.true(got.every((r) => r.headers['webhook-id'] === body.id));
  // Nominal delays 200 ms then 400 ms, ±20% jitter.
  const gap1 = got[1]!.at - got[0]!.at;
  const gap2 = got[2]!.at - got[1]!.at;
  t.true(gap1 >= 150, `first gap ${gap1} ms`);
  t.true(gap2 >= 300, `second gap ${gap2} ms`);

  const detail = (await (await svc.api(`/api/v1/webhooks/${body.id}`)).json()) as any;
  t.is(detail.attemptCount, 3);
  t.deepEqual(detail.attempts.map((a: any) => [a.number, a.statusCode, a.outcome, a.responseBody]), [
    [1, 500, 'failure', 'boom'],
    [2, 503, 'failure', 'busy'],
    [3, 200, 'success', 'fine'],
  ]);
  t.is(detail.attempts[0].errorClass, 'http_status');
  t.deepEqual(detail.retryPolicy, { maxAttempts: 5, baseDelayMs: 200, backoffFactor: 2, maxDelayMs: 3_600_000 });
});

test('a webhook whose attempts are exhausted is dead with its last error', async (t) => {
  const svc = await startTestService(t);
  const rx = await startReceiver(t);
  rx.fallback = { status: 500, body: 'still broken' };
  const { body } = await submit(svc, { url: rx.url, payload: {}, retryPolicy: { maxAttempts: 3, baseDelayMs: 100, maxDelayMs: 200 } });
  const status = await settled(svc, body.id);
  t.is(status.status, 'dead');
  t.is(status.attempts, 3);
  t.regex(status.error, /500/);
  t.is(status.nextAttemptAt, null);
  t.is(rx.received.length, 3);
  // Nothing is left queued for a dead webhook.
  const jobs = await query(svc.dbUrl, `SELECT count(*)::int AS n FROM hookrelay_queue.job WHERE state IN ('created', 'retry', 'active')`);
  t.is(jobs[0]!.n, 0);
});

test('a redirect is a failure and is not followed', async (t) => {
  const svc = await startTestService(t);
  const rx = await startReceiver(t);
  rx.script({ status: 302, headers: { location: `${rx.url}/elsewhere` } });
  const { body } = await submit(svc, { url: `${rx.url}/start`, payload: 1, retryPolicy: { maxAttempts: 1 } });
  const status = await settled(svc, body.id);
  t.is(status.status, 'dead');
  t.is(rx.received.length, 1);
  t.is(rx.received[0]!.path, '/start');
  const detail = (await (await svc.api(`/api/v1/webhooks/${body.id}`)).json()) as any;
  t.is(detail.attempts[0].errorClass, 'redirect');
  t.is(detail.attempts[0].statusCode, 302);
});

test('the deadline covers the whole attempt: a receiver that never answers times out', async (t) => {
  const svc = await startTestService(t, { HOOKRELAY_DELIVERY_TIMEOUT_MS: '300' });
  const rx = await startReceiver(t);
  rx.script({ hang: true });
  const { body } = await submit(svc, { url: rx.url, payload: 1, retryPolicy: { maxAttempts: 2, baseDelayMs: 100 } });
  const status = await settled(svc, body.id);
  t.is(status.status, 'delivered');
  const detail = (await (await svc.api(`/api/v1/webhooks/${body.id}`)).json()) as any;
  t.is(detail.attempts[0].errorClass, 'timeout');
  t.true(detail.attempts[0].durationMs >= 250 && detail.attempts[0].durationMs < 5_000);
});

test('a refused connection is a recorded failure', async (t) => {
  const svc = await startTestService(t);
  const rx = await startReceiver(t);
  const url = rx.url;
  await rx.close();
  const { body } = await submit(svc, { url, payload: 1, retryPolicy: { maxAttempts: 1 } });
  const status = await settled(svc, body.id);
  t.is(status.status, 'dead');
  const detail = (await (await svc.api(`/api/v1/webhooks/${body.id}`)).json()) as any;
  t.is(detail.attempts[0].errorClass, 'connection_refused');
});

test('at most 1 KiB of the response is stored, and a large response does not hurt', async (t) => {
  const svc = await startTestService(t);
  const rx = await startReceiver(t);
  rx.script({ status: 200, body: 'x'.repeat(5 * 1024 * 1024) });
  const { body } = await submit(svc, { url: rx.url, payload: 1 });
  await settled(svc, body.id);
  const detail = (await (await svc.api(`/api/v1/webhooks/${body.id}`)).json()) as any;
  t.is(detail.status, 'delivered');
  t.is(detail.attempts[0].responseBody, 'x'.repeat(1024));
});

test('user headers never replace signature, framing or hop-by-hop headers', async (t) => {
  const svc = await startTestService(t);
  for (const name of ['webhook-signature', 'X-Webhook-ID', 'Content-Type', 'Host', 'Content-Length', 'Transfer-Encoding', 'Connection']) {
    const { res, body } = await submit(svc, { url: 'http://127.0.0.1:1/x', payload: 1, headers: { [name]: 'evil' } });
    t.is(res.status, 400, name);
    t.is(body.errors[0].field, `headers.${name}`);
  }
  const rows = await query(svc.dbUrl, 'SELECT count(*)::int AS n FROM hookrelay.webhooks');
  t.is(rows[0]!.n, 0);
});

test('the request id is echoed and carried into the webhook logs', async (t) => {
  const svc = await startTestService(t);
  const rx = await startReceiver(t);
  const { res, body } = await submit(svc, { url: rx.url, payload: 1 }, { 'X-Request-Id': 'req-abc-123' });
  t.is(res.headers.get('x-request-id'), 'req-abc-123');
  await settled(svc, body.id);
  const delivered = await eventually(async () => svc.logs.find((l) => l.message === 'delivered' && l.webhookId === body.id));
  t.is(delivered.requestId, 'req-abc-123');
  t.is(delivered.attempt, 1);
  // Tokens, secrets and Authorization values never reach the log.
  const { secret } = (await (await svc.api(`/api/v1/endpoints/${body.endpointId}/secret`)).json()) as any;
  const all = JSON.stringify(svc.logs);
  t.false(all.includes(svc.token));
  t.false(all.includes(secret));
});
