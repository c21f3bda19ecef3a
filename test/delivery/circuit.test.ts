import test from 'ava';
import { startReceiver } from '../helpers/receiver.ts';
import { eventually, startTestService, type TestService } from '../helpers/service.ts';

/**
 * The circuit breaker end to end: a real service, a real receiver that fails and recovers.
 * Only coarse timing is asserted (a cooldown of seconds), never exact durations.
 */

// Long enough that the quiet window checked below survives a loaded machine: the circuit's
// opening is stamped when its recording transaction starts, which under load can be most
// of a second before the API shows it.
const COOLDOWN_MS = 3_000;
const ENV = {
  HOOKRELAY_CIRCUIT_FAILURE_THRESHOLD: '3',
  HOOKRELAY_CIRCUIT_COOLDOWN_MS: String(COOLDOWN_MS),
  HOOKRELAY_CIRCUIT_MAX_COOLDOWN_MS: String(4 * COOLDOWN_MS),
  // A probe whose worker vanished is re-claimable after the delivery timeout + 30 s; keep the
  // timeout small so nothing here waits on it.
  HOOKRELAY_DELIVERY_TIMEOUT_MS: '2000',
};
const GENEROUS = { maxAttempts: 50, baseDelayMs: 100, maxDelayMs: 200 };

async function json(res: Response): Promise<any> {
  return res.json();
}

async function createEndpoint(svc: TestService, url: string): Promise<string> {
  const res = await svc.api('/api/v1/endpoints', { method: 'POST', json: { url } });
  if (res.status !== 201) throw new Error(`endpoint create answered ${res.status}: ${await res.text()}`);
  return (await json(res)).id;
}

async function submit(svc: TestService, endpointId: string, payload: unknown, retryPolicy: object = GENEROUS): Promise<string> {
  const res = await svc.api('/api/v1/webhooks/deliver', { method: 'POST', json: { endpointId, payload, retryPolicy } });
  if (res.status !== 202) throw new Error(`deliver answered ${res.status}: ${await res.text()}`);
  return (await json(res)).id;
}

const health = async (svc: TestService, endpointId: string) => json(await svc.api(`/api/v1/endpoints/${endpointId}/health`));
const status = async (svc: TestService, id: string) => json(await svc.api(`/api/v1/webhooks/${id}/status`));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test.serial('an endpoint that keeps failing opens its circuit; nothing is sent until the probe; recovery closes it and everything is delivered', async (t) => {
  const svc = await startTestService(t, ENV);
  const rx = await startReceiver(t);
  rx.fallback = { status: 500, body: 'down' };
  const endpointId = await createEndpoint(svc, `${rx.url}/hooks`);
  const other = await createEndpoint(svc, `${rx.url}/healthy`);

  // A fresh endpoint's health: closed, all well.
  const initial = await health(svc, endpointId);
  t.like(initial, { circuitState: 'closed', healthScore: 100, consecutiveFailures: 0, windowAttempts: 0, windowFailures: 0, failureRate: 0, openedAt: null, nextProbeAt: null, lastSuccessAt: null, lastFailureAt: null, failingSince: null });

  const ids: string[] = [];
  for (let i = 0; i < 4; i++) ids.push(await submit(svc, endpointId, { n: i }));

  // After 3 failures the circuit is open, with a probe time.
  const opened = await eventually(async () => {
    const h = await health(svc, endpointId);
    return h.circuitState === 'open' ? h : undefined;
  }, 30_000);
  t.truthy(opened.openedAt);
  t.truthy(opened.nextProbeAt);
  t.true(opened.consecutiveFailures >= 3, JSON.stringify(opened));
  t.true(Date.parse(opened.nextProbeAt) > Date.parse(opened.openedAt));
  t.true(Date.parse(opened.nextProbeAt) - Date.parse(opened.openedAt) >= COOLDOWN_MS - 50, JSON.stringify(opened));
  t.truthy(opened.lastFailureAt);
  t.truthy(opened.failingSince);
  t.true(opened.healthScore < 100);
  t.true(opened.windowFailures >= 3);
  t.is(opened.lastSuccessAt, null);

  // The endpoint (and lists of endpoints) show the health too.
  const ep = await json(await svc.api(`/api/v1/endpoints/${endpointId}`));
  t.is(ep.health?.circuitState, 'open');
  t.is(ep.health?.nextProbeAt !== null, true);
  const openList = await json(await svc.api('/api/v1/endpoints?healthState=open'));
  t.deepEqual(openList.data.map((e: any) => e.id), [endpointId]);
  t.is(openList.data[0].health.circuitState, 'open');
  const closedList = await json(await svc.api('/api/v1/endpoints?healthState=closed'));
  t.deepEqual(closedList.data.map((e: any) => e.id), [other]);
  t.deepEqual((await json(await svc.api('/api/v1/endpoints?healthState=half_open'))).data, []);

  // Let attempts already in flight when it opened land (the receiver answers at once).
  await sleep(400);
  const h1 = await health(svc, endpointId);
  t.is(h1.circuitState, 'open', 'still open before the probe time');
  const probeAt = Date.parse(h1.nextProbeAt);
  const quietUntil = probeAt - 300;
  t.true(quietUntil - Date.now() >= 500, `a measurable quiet window is left (probe at ${h1.nextProbeAt}, now ${new Date().toISOString()})`);
  const before = rx.received.length;
  const attemptsBefore = await Promise.all(ids.map(async (id) => (await status(svc, id)).attempts));
  const statusesBefore = await Promise.all(ids.map(async (id) => (await status(svc, id)).status));
  t.true(statusesBefore.every((s) => s === 'retrying' || s === 'pending'), JSON.stringify(statusesBefore));
  await sleep(quietUntil - Date.now());
  // While open, the receiver got nothing, and no webhook used an attempt.
  t.is((await health(svc, endpointId)).circuitState, 'open');
  t.is(rx.received.length, before, 'requests reached the receiver while the circuit was open');
  const attemptsDuring = await Promise.all(ids.map(async (id) => (await status(svc, id)).attempts));
  t.deepEqual(attemptsDuring, attemptsBefore, 'attempts were used while the circuit was open');
  // Deferred webhooks still have a next attempt scheduled (none was dropped or finished).
  // (Its time may be an earlier probe time when a straggler pushed the probe out since: the
  // job then defers again when it comes due, as the quiet receiver above shows.)
  for (const id of ids) {
    const s = await status(svc, id);
    t.true(s.status === 'retrying' || s.status === 'pending', `${id} is ${s.status}`);
    t.truthy(s.nextAttemptAt, id);
  }

  // The receiver recovers before the probe: the probe succeeds and the circuit closes.
  rx.fallback = { status: 200, body: 'ok' };
  const closed = await eventually(async () => {
    const h = await health(svc, endpointId);
    return h.circuitState === 'closed' ? h : undefined;
  }, 30_000);
  t.truthy(closed.lastSuccessAt);
  t.true(Date.parse(closed.lastSuccessAt) >= probeAt - 5, `first success ${closed.lastSuccessAt} not before the probe time ${h1.nextProbeAt}`);
  t.is(closed.consecutiveFailures, 0);
  t.is(closed.openedAt, null);
  t.is(closed.nextProbeAt, null);
  t.is(closed.failingSince, null);
  // The first request after the quiet window is the probe, not before the probe time.
  const firstAfter = rx.received[before];
  t.truthy(firstAfter);
  t.true(firstAfter!.at >= probeAt - 5, `a request at ${new Date(firstAfter!.at).toISOString()} before the probe time ${h1.nextProbeAt}`);

  // All webhooks end delivered, with contiguous attempt numbers.
  for (const id of ids) {
    const s = await eventually(async () => {
      const st = await status(svc, id);
      return st.status === 'delivered' ? st : undefined;
    }, 90_000, 200);
    t.is(s.status, 'delivered');
    const detail = await json(await svc.api(`/api/v1/webhooks/${id}`));
    t.deepEqual(detail.attempts.map((a: any) => a.number), detail.attempts.map((_: unknown, i: number) => i + 1));
    t.is(detail.attempts.at(-1).outcome, 'success');
  }
  // Every request the receiver got is a recorded attempt: deferrals sent nothing.
  const details = await Promise.all(ids.map(async (id) => json(await svc.api(`/api/v1/webhooks/${id}`))));
  t.is(rx.received.filter((r) => r.path === '/hooks').length, details.reduce((n, d) => n + d.attempts.length, 0));
  t.is((await json(await svc.api('/api/v1/endpoints?healthState=open'))).data.length, 0);
  const finalHealth = await health(svc, endpointId);
  t.is(finalHealth.circuitState, 'closed');
  t.true(finalHealth.healthScore > opened.healthScore);
});

test.serial('the health of an unknown endpoint is 404; a bad healthState filter is 400', async (t) => {
  const svc = await startTestService(t);
  const res = await svc.api('/api/v1/endpoints/ep_01JF3Y8Q6ZV7W3K2T9H4N5B6C8/health');
  t.is(res.status, 404);
  t.regex(res.headers.get('content-type') ?? '', /application\/problem\+json/);
  t.is((await json(res)).status, 404);
  const bad = await svc.api('/api/v1/endpoints?healthState=broken');
  t.is(bad.status, 400);
  t.is((await json(bad)).errors?.[0]?.field, 'healthState');
  const unauth = await svc.api('/api/v1/endpoints/ep_01JF3Y8Q6ZV7W3K2T9H4N5B6C8/health', { auth: false });
  t.is(unauth.status, 401);
});

test.serial('a failed probe reopens the circuit with a longer cooldown', async (t) => {
  const svc = await startTestService(t, ENV);
  const rx = await startReceiver(t);
  rx.fallback = { status: 503, body: 'down' };
  const endpointId = await createEndpoint(svc, rx.url);
  const id = await submit(svc, endpointId, { n: 1 });
  const opened = await eventually(async () => {
    const h = await health(svc, endpointId);
    return h.circuitState === 'open' ? h : undefined;
  }, 30_000);
  const firstCooldown = Date.parse(opened.nextProbeAt) - Date.parse(opened.openedAt);
  // The probe fails: open again, with a later probe and a doubled cooldown.
  const reopened = await eventually(async () => {
    const h = await health(svc, endpointId);
    return h.circuitState === 'open' && h.openedAt !== opened.openedAt ? h : undefined;
  }, 30_000);
  const secondCooldown = Date.parse(reopened.nextProbeAt) - Date.parse(reopened.openedAt);
  t.true(secondCooldown >= 2 * COOLDOWN_MS - 50, `second cooldown ${secondCooldown} ms`);
  t.true(secondCooldown > firstCooldown, `${firstCooldown} → ${secondCooldown}`);
  t.true(secondCooldown <= 4 * COOLDOWN_MS + 50, `capped: ${secondCooldown}`);
  // The only webhook used exactly the attempts that reached the receiver: 3 to open, then 1 probe.
  const s = await status(svc, id);
  t.is(s.attempts, rx.received.length);
  t.is(s.status, 'retrying');
  t.true(s.attempts >= 4);
});
