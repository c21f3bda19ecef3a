import test from 'ava';
import { query } from '../helpers/db.ts';
import { startReceiver } from '../helpers/receiver.ts';
import { eventually, startTestService, type TestService } from '../helpers/service.ts';

/**
 * HOOKRELAY_ENDPOINT_CONCURRENCY: one slow endpoint with a backlog cannot take every
 * in-flight slot. Its attempts past the limit wait in the queue (without using an attempt)
 * while another endpoint's webhooks go out.
 */

const LIMIT = 3;
const SLOW = 60;
const FAST = 20;
const HOLD_MS = 2_000;

async function submit(svc: TestService, url: string, n: number): Promise<string> {
  const res = await svc.api('/api/v1/webhooks/deliver', { method: 'POST', json: { url, payload: { n } } });
  if (res.status !== 202) throw new Error(`submission answered ${res.status}: ${await res.text()}`);
  return ((await res.json()) as { id: string }).id;
}

test('a slow endpoint with a backlog does not starve a fast one', async (t) => {
  t.timeout(120_000);
  // 20 attempts in flight in all: without the limit, the slow backlog would take all of them
  // for three rounds of HOLD_MS before the first fast webhook got a slot.
  const svc = await startTestService(t, {
    HOOKRELAY_WORKER_BATCH_SIZE: '10',
    HOOKRELAY_WORKER_CONCURRENCY: '2',
    HOOKRELAY_ENDPOINT_CONCURRENCY: String(LIMIT),
    HOOKRELAY_SHUTDOWN_TIMEOUT_MS: '1000',
  });
  const rx = await startReceiver(t);
  let slowHeld = 0;
  let slowMostHeld = 0;
  let slowAnswered = 0;
  rx.fallback = (req, res) => {
    if (req.url !== '/slow') {
      res.writeHead(200).end('ok');
      return;
    }
    slowHeld += 1;
    slowMostHeld = Math.max(slowMostHeld, slowHeld);
    setTimeout(() => {
      slowHeld -= 1;
      slowAnswered += 1;
      res.writeHead(200).end('ok');
    }, HOLD_MS);
  };

  // The slow backlog first, so that a first-come queue would serve it before anything else.
  const slowIds: string[] = [];
  for (let i = 0; i < SLOW; i++) slowIds.push(await submit(svc, `${rx.url}/slow`, i));
  const fastIds: string[] = [];
  for (let i = 0; i < FAST; i++) fastIds.push(await submit(svc, `${rx.url}/fast`, i));
  const submittedAt = Date.now();
  const slowAtSubmit = rx.received.filter((r) => r.path === '/slow').length;

  await eventually(async () => {
    const [row] = await query<{ n: number }>(svc.dbUrl, "SELECT count(*)::int AS n FROM hookrelay.webhooks WHERE status = 'delivered' AND id = ANY($1)", [fastIds]);
    return row!.n === FAST ? true : undefined;
  }, 60_000, 100);
  const slowReceived = rx.received.filter((r) => r.path === '/slow').length;
  t.log(`fast endpoint done ${Date.now() - submittedAt} ms after its submissions; slow requests received by then ${slowAtSubmit}, when done ${slowReceived} of ${SLOW}; most held at once ${slowMostHeld}`);
  t.true(slowReceived < SLOW, 'the fast endpoint\'s webhooks did not wait for the slow backlog');
  t.true(slowMostHeld <= LIMIT, `at most ${LIMIT} attempts at once to the slow endpoint (saw ${slowMostHeld})`);
  t.is(rx.received.filter((r) => r.path === '/fast').length, FAST, 'each fast webhook was sent once');

  // Waiting for a slot used no attempt: no slow webhook has more than the one it is making.
  const [attempts] = await query<{ most: number; waiting: number }>(svc.dbUrl, `
    SELECT max(attempts)::int AS most, count(*) FILTER (WHERE status IN ('pending', 'retrying'))::int AS waiting
    FROM hookrelay.webhooks WHERE id = ANY($1)`, [slowIds]);
  t.true(attempts!.most <= 1, JSON.stringify(attempts));
  t.true(attempts!.waiting > 0, 'the slow backlog is still waiting its turn in the queue');
});
