import test from 'ava';
import type { PgBoss } from 'pg-boss';
import { startReceiver } from '../helpers/receiver.ts';
import { eventually, startTestService, TEST_MASTER_KEY } from '../helpers/service.ts';
import { QUEUE_SCHEMA } from '../../src/db/database.ts';
import { DELIVERY_QUEUE } from '../../src/delivery/queue.ts';
import { startWorker } from '../../src/delivery/worker.ts';
import { query } from '../helpers/db.ts';
import { createSender } from '../../src/delivery/send.ts';
import { createKeyring } from '../../src/endpoints/keyring.ts';
import { createLogger } from '../../src/log.ts';

/**
 * How the worker's fetch loops wake (src/delivery/worker.ts): a wake-up brings in one loop, not
 * every loop, and an attempt settling on an empty queue does not send a fetch. At a trickle of
 * webhooks the queue's fetch query (the heaviest statement of the path) then runs a few times
 * per webhook whatever the number of loops; woken all at once, four loops fetched eight or more
 * times for each.
 */

const LOOPS = 4;
const WEBHOOKS = 20;

/** Counts pg-boss fetches from now on. */
function countFetches(boss: PgBoss): { n: number } {
  const count = { n: 0 };
  const fetch = boss.fetch.bind(boss);
  boss.fetch = ((...args: Parameters<typeof fetch>) => {
    count.n += 1;
    return fetch(...args);
  }) as typeof boss.fetch;
  return count;
}

test('a trickle of webhooks costs a few fetches each, not one per loop per wake-up', async (t) => {
  t.timeout(120_000);
  const svc = await startTestService(t, { HOOKRELAY_WORKER_CONCURRENCY: String(LOOPS), HOOKRELAY_WORKER_BATCH_SIZE: '10' });
  const rx = await startReceiver(t);
  const boss = svc.service.boss;
  // Let the loops reach their first sleep, then count every fetch from here on.
  await new Promise((r) => setTimeout(r, 500));
  const fetches = countFetches(boss);
  for (let i = 0; i < WEBHOOKS; i++) {
    const res = await svc.api('/api/v1/webhooks/deliver', { method: 'POST', json: { url: `${rx.url}/hook`, payload: { i } } });
    t.is(res.status, 202);
    await eventually(async () => (rx.received.length === i + 1 ? true : undefined), 20_000, 10);
    // Its attempt recorded (the settle is what used to wake every loop).
    await new Promise((r) => setTimeout(r, 50));
  }
  t.is(rx.received.length, WEBHOOKS, 'each webhook delivered once');
  t.log(`${fetches.n} fetches for ${WEBHOOKS} webhooks delivered one at a time by ${LOOPS} loops`);
  // One fetch takes the job and says it looked at every due job, so its loop sleeps; the
  // NOTIFY of the same commit (beside the in-process wake-up) brings in one more: two per
  // webhook (40 for 20). Before a fetch said so, a third followed every batch to find the queue
  // empty (60 for 20); with every loop woken by every wake-up it was 240.
  t.true(fetches.n <= 2.5 * WEBHOOKS, `${fetches.n} fetches`);
});

test('wake-ups in one turn of the event loop (a group commit answering its webhooks) bring in one loop, not one each', async (t) => {
  t.timeout(60_000);
  // API only, and a worker of the test's own, so that its wake() can be called directly.
  const svc = await startTestService(t, { HOOKRELAY_ROLES: 'api' });
  const { boss, db } = svc.service;
  const fetches = countFetches(boss);
  const worker = await startWorker({
    db: db.db, boss, sender: createSender(), keyring: createKeyring(Buffer.from(TEST_MASTER_KEY, 'base64')),
    log: createLogger({ level: 'error', silent: true }), config: { ...svc.config, workerConcurrency: LOOPS, workerBatchSize: 10 },
  });
  t.teardown(() => worker.stop(1_000));
  // Every loop fetches once at start, finds nothing and sleeps.
  await new Promise((r) => setTimeout(r, 500));
  t.is(fetches.n, LOOPS);
  for (let i = 0; i < 10; i++) worker.wake();
  await new Promise((r) => setTimeout(r, 500));
  t.is(fetches.n - LOOPS, 1, 'ten wake-ups of one turn: one fetch');
  worker.wake();
  await new Promise((r) => setImmediate(r));
  worker.wake();
  await new Promise((r) => setTimeout(r, 500));
  t.is(fetches.n - LOOPS, 3, 'wake-ups of two turns: one fetch each');
});

test('a NOTIFY just after a local wake-up waits for the next fetch instead of sending one of its own; any other wakes at once', async (t) => {
  t.timeout(60_000);
  const svc = await startTestService(t, { HOOKRELAY_ROLES: 'api' });
  const { boss, db } = svc.service;
  const fetches = countFetches(boss);
  // A window long enough that the test's own timing cannot decide the outcome.
  const echoMs = 1_500;
  const worker = await startWorker({
    db: db.db, boss, sender: createSender(), keyring: createKeyring(Buffer.from(TEST_MASTER_KEY, 'base64')),
    log: createLogger({ level: 'error', silent: true }), config: { ...svc.config, workerConcurrency: LOOPS, workerBatchSize: 10 }, echoMs,
  });
  t.teardown(() => worker.stop(1_000));
  const [row] = await query<{ channel: string }>(svc.dbUrl, `SELECT 'pgboss_' || left(encode(sha224($1::bytea), 'hex'), 24) AS channel`, [QUEUE_SCHEMA]);
  const channel = row!.channel;
  const notify = () => query(svc.dbUrl, 'SELECT pg_notify($1, $2)', [channel, DELIVERY_QUEUE]);
  const settled = () => new Promise((r) => setTimeout(r, 300));
  await settled();
  t.is(fetches.n, LOOPS);

  // Another process's commit, with no local one near it: a fetch at once.
  await notify();
  await settled();
  t.is(fetches.n - LOOPS, 1, 'a NOTIFY alone: one fetch, well inside the echo window');

  // A local commit and its NOTIFY, then another local commit inside the window: the second
  // wake-up's fetch covers the NOTIFY, which sends none of its own.
  await new Promise((r) => setTimeout(r, echoMs + 100));
  worker.wake();
  await notify();
  await settled();
  t.is(fetches.n - LOOPS, 2, 'the local wake-up fetched; the NOTIFY is held');
  worker.wake();
  await new Promise((r) => setTimeout(r, echoMs + 300));
  t.is(fetches.n - LOOPS, 3, 'one fetch for the second wake-up, none for the NOTIFY it covered');

  // A local commit and a NOTIFY with no fetch after it: the NOTIFY fetches when its wait ends.
  worker.wake();
  await notify();
  await settled();
  t.is(fetches.n - LOOPS, 4);
  await new Promise((r) => setTimeout(r, echoMs + 300));
  t.is(fetches.n - LOOPS, 5, 'held, never dropped');
});
