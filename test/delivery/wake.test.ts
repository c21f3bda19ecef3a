import test from 'ava';
import { startReceiver } from '../helpers/receiver.ts';
import { eventually, startTestService } from '../helpers/service.ts';

/**
 * How the worker's fetch loops wake (src/delivery/worker.ts): a wake-up brings in one loop, not
 * every loop, and an attempt settling on an empty queue does not send a fetch. At a trickle of
 * webhooks the queue's fetch query (the heaviest statement of the path) then runs a few times
 * per webhook whatever the number of loops; woken all at once, four loops fetched eight or more
 * times for each.
 */

const LOOPS = 4;
const WEBHOOKS = 20;

test('a trickle of webhooks costs a few fetches each, not one per loop per wake-up', async (t) => {
  t.timeout(120_000);
  const svc = await startTestService(t, { HOOKRELAY_WORKER_CONCURRENCY: String(LOOPS), HOOKRELAY_WORKER_BATCH_SIZE: '10' });
  const rx = await startReceiver(t);
  const boss = svc.service.boss;
  // Let the loops reach their first sleep, then count every fetch from here on.
  await new Promise((r) => setTimeout(r, 500));
  let fetches = 0;
  const fetch = boss.fetch.bind(boss);
  boss.fetch = ((...args: Parameters<typeof fetch>) => {
    fetches += 1;
    return fetch(...args);
  }) as typeof boss.fetch;
  for (let i = 0; i < WEBHOOKS; i++) {
    const res = await svc.api('/api/v1/webhooks/deliver', { method: 'POST', json: { url: `${rx.url}/hook`, payload: { i } } });
    t.is(res.status, 202);
    await eventually(async () => (rx.received.length === i + 1 ? true : undefined), 20_000, 10);
    // Its attempt recorded (the settle is what used to wake every loop).
    await new Promise((r) => setTimeout(r, 50));
  }
  t.is(rx.received.length, WEBHOOKS, 'each webhook delivered once');
  t.log(`${fetches} fetches for ${WEBHOOKS} webhooks delivered one at a time by ${LOOPS} loops`);
  // One fetch takes the job, one more finds the queue empty, and the NOTIFY of the same commit
  // (beside the in-process wake-up) costs one more: about three per webhook (66 for 20 when
  // written; 240 with every loop woken by every wake-up).
  t.true(fetches <= 4 * WEBHOOKS, `${fetches} fetches`);
});
