import test, { type ExecutionContext } from 'ava';
import { sql } from 'kysely';
import type { PgBoss } from 'pg-boss';
import type { RetryPolicy } from '../../src/config.ts';
import type { Db } from '../../src/db/database.ts';
import { startQueue } from '../../src/delivery/queue.ts';
import { enqueueWebhook, submitWebhook, type WebhookInput } from '../../src/delivery/submit.ts';
import { freshDb, query, silentLog } from '../helpers/db.ts';

/**
 * The transactional outbox: enqueueWebhook writes the webhook row, its endpoint and the job
 * for its first attempt through the caller's transaction, so all of them exist exactly when
 * that transaction commits, together with the caller's own writes.
 */

const POLICY: RetryPolicy = { maxAttempts: 3, baseDelayMs: 1000, maxDelayMs: 60_000, backoffFactor: 2 };

interface Setup {
  url: string;
  db: Db;
  boss: PgBoss;
}

/** A fresh, migrated database with a started queue (no worker: jobs stay as written). */
async function setup(t: ExecutionContext): Promise<Setup> {
  const { url, handle } = await freshDb(t);
  const boss = await startQueue(url, { deliveryTimeoutMs: 5_000, queueHeartbeatSeconds: 10, queueSuperviseSeconds: 60, dbPoolMax: 2 }, silentLog, { supervise: false });
  t.teardown(() => boss.stop({ graceful: false, close: true, timeout: 2_000 }));
  // The application's own table, next to hookrelay's, in the same database.
  await query(url, 'CREATE TABLE public.app_orders (id text PRIMARY KEY, total integer NOT NULL)');
  return { url, db: handle.db, boss };
}

function input(overrides: Partial<WebhookInput> = {}): WebhookInput {
  return { url: 'https://receiver.example.com/orders', payload: { order: 'o_1', total: 4200 }, headers: { 'X-Tenant': 'acme' }, retryPolicy: POLICY, ...overrides };
}

async function tableCounts(url: string) {
  const [row] = await query(url, `SELECT
    (SELECT count(*) FROM hookrelay.webhooks)::int AS webhooks,
    (SELECT count(*) FROM hookrelay.endpoints)::int AS endpoints,
    (SELECT count(*) FROM hookrelay_queue.job)::int AS jobs,
    (SELECT count(*) FROM public.app_orders)::int AS orders`);
  return row;
}

class Boom extends Error {}

test.serial('throwing after enqueueWebhook inside the transaction leaves no webhook, endpoint or job', async (t) => {
  const { url, db, boss } = await setup(t);
  let enqueuedId: string | undefined;
  await t.throwsAsync(
    db.transaction().execute(async (trx) => {
      const accepted = await enqueueWebhook(trx, boss, input());
      enqueuedId = accepted.id;
      throw new Boom('the application changed its mind');
    }),
    { instanceOf: Boom },
  );
  t.truthy(enqueuedId, 'enqueueWebhook did run');
  t.deepEqual(await tableCounts(url), { webhooks: 0, endpoints: 0, jobs: 0, orders: 0 });
  t.deepEqual(await query(url, `SELECT id FROM hookrelay_queue.job WHERE data->>'webhookId' = $1`, [enqueuedId]), []);
});

test.serial('after commit, the webhook row and its created job both exist', async (t) => {
  const { url, db, boss } = await setup(t);
  const accepted = await db.transaction().execute((trx) => enqueueWebhook(trx, boss, input({ idempotencyKey: 'k-1', requestHash: Buffer.alloc(32, 7), requestId: 'req-1' })));
  t.regex(accepted.id, /^msg_[0-9A-Z]{26}$/);
  t.regex(accepted.endpointId, /^ep_[0-9A-Z]{26}$/);
  t.is(accepted.status, 'pending');

  const webhooks = await query(url, 'SELECT id, endpoint_id, url, payload, headers, retry_policy, status, attempts, idempotency_key, request_id FROM hookrelay.webhooks');
  t.deepEqual(webhooks, [{
    id: accepted.id,
    endpoint_id: accepted.endpointId,
    url: 'https://receiver.example.com/orders',
    payload: { order: 'o_1', total: 4200 },
    headers: { 'X-Tenant': 'acme' },
    retry_policy: POLICY,
    status: 'pending',
    attempts: 0,
    idempotency_key: 'k-1',
    request_id: 'req-1',
  }]);
  const endpoints = await query(url, 'SELECT id, url FROM hookrelay.endpoints');
  t.deepEqual(endpoints, [{ id: accepted.endpointId, url: 'https://receiver.example.com/orders' }]);
  const jobs = await query(url, `SELECT name, state, data FROM hookrelay_queue.job WHERE data->>'webhookId' = $1`, [accepted.id]);
  t.deepEqual(jobs, [{ name: 'deliveries', state: 'created', data: { webhookId: accepted.id, attempt: 1 } }]);
});

test.serial('the caller\'s own write commits together with the webhook', async (t) => {
  const { url, db, boss } = await setup(t);
  const accepted = await db.transaction().execute(async (trx) => {
    await sql`INSERT INTO public.app_orders (id, total) VALUES (${'o_1'}, ${4200})`.execute(trx);
    return enqueueWebhook(trx, boss, input());
  });
  t.deepEqual(await tableCounts(url), { webhooks: 1, endpoints: 1, jobs: 1, orders: 1 });
  t.deepEqual(await query(url, 'SELECT id, total FROM public.app_orders'), [{ id: 'o_1', total: 4200 }]);
  t.is((await query(url, `SELECT count(*)::int AS n FROM hookrelay_queue.job WHERE data->>'webhookId' = $1`, [accepted.id]))[0]!.n, 1);
});

test.serial('the caller\'s own write rolls back together with the webhook', async (t) => {
  const { url, db, boss } = await setup(t);
  await t.throwsAsync(db.transaction().execute(async (trx) => {
    await sql`INSERT INTO public.app_orders (id, total) VALUES (${'o_1'}, ${4200})`.execute(trx);
    await enqueueWebhook(trx, boss, input());
    throw new Boom('payment declined');
  }), { instanceOf: Boom });
  t.deepEqual(await tableCounts(url), { webhooks: 0, endpoints: 0, jobs: 0, orders: 0 });
});

test.serial('a failing business write after enqueueWebhook takes the webhook down with it', async (t) => {
  const { url, db, boss } = await setup(t);
  await query(url, `INSERT INTO public.app_orders (id, total) VALUES ('o_1', 1)`);
  // The duplicate primary key fails inside PostgreSQL, after the webhook was enqueued.
  const err = await t.throwsAsync(db.transaction().execute(async (trx) => {
    await enqueueWebhook(trx, boss, input());
    await sql`INSERT INTO public.app_orders (id, total) VALUES (${'o_1'}, ${2})`.execute(trx);
  }));
  t.is((err as { code?: string }).code, '23505');
  t.deepEqual(await tableCounts(url), { webhooks: 0, endpoints: 0, jobs: 0, orders: 1 });
});

test.serial('several webhooks in one transaction commit or vanish together', async (t) => {
  const { url, db, boss } = await setup(t);
  await t.throwsAsync(db.transaction().execute(async (trx) => {
    await enqueueWebhook(trx, boss, input({ url: 'https://a.example.com/' }));
    await enqueueWebhook(trx, boss, input({ url: 'https://b.example.com/' }));
    throw new Boom();
  }), { instanceOf: Boom });
  t.deepEqual(await tableCounts(url), { webhooks: 0, endpoints: 0, jobs: 0, orders: 0 });

  const ids = await db.transaction().execute(async (trx) => [
    (await enqueueWebhook(trx, boss, input({ url: 'https://a.example.com/' }))).id,
    (await enqueueWebhook(trx, boss, input({ url: 'https://b.example.com/' }))).id,
    (await enqueueWebhook(trx, boss, input({ url: 'https://a.example.com/' }))).id,
  ]);
  t.deepEqual(await tableCounts(url), { webhooks: 3, endpoints: 2, jobs: 3, orders: 0 });
  const jobs = await query(url, `SELECT data->>'webhookId' AS id FROM hookrelay_queue.job ORDER BY 1`);
  t.deepEqual(jobs.map((j) => j.id), [...ids].sort());
});

test.serial('nothing is visible to other connections before the caller commits', async (t) => {
  const { url, db, boss } = await setup(t);
  let seenInside: unknown;
  const accepted = await db.transaction().execute(async (trx) => {
    const a = await enqueueWebhook(trx, boss, input());
    // Another connection, as an operator or a worker would see the database right now.
    seenInside = await tableCounts(url);
    return a;
  });
  t.deepEqual(seenInside, { webhooks: 0, endpoints: 0, jobs: 0, orders: 0 });
  t.deepEqual(await tableCounts(url), { webhooks: 1, endpoints: 1, jobs: 1, orders: 0 });
  t.regex(accepted.id, /^msg_/);
});

test.serial('submitWebhook resolves only once the webhook and its job are committed', async (t) => {
  const { url, db, boss } = await setup(t);
  const accepted = await submitWebhook(db, boss, input());
  t.false(accepted.replayed);
  t.is(accepted.status, 'pending');
  // Read at once, from another connection: committed, not merely written.
  const rows = await query(url, 'SELECT id, status FROM hookrelay.webhooks WHERE id = $1', [accepted.id]);
  t.deepEqual(rows, [{ id: accepted.id, status: 'pending' }]);
  const jobs = await query(url, `SELECT state FROM hookrelay_queue.job WHERE data->>'webhookId' = $1`, [accepted.id]);
  t.deepEqual(jobs, [{ state: 'created' }]);
});

test.serial('submitWebhook with a reused key and the same hash answers the committed webhook', async (t) => {
  const { url, db, boss } = await setup(t);
  const hash = Buffer.alloc(32, 1);
  const first = await submitWebhook(db, boss, input({ idempotencyKey: 'same', requestHash: hash }));
  const second = await submitWebhook(db, boss, input({ idempotencyKey: 'same', requestHash: hash }));
  t.false(first.replayed);
  t.true(second.replayed);
  t.is(second.id, first.id);
  t.deepEqual(await tableCounts(url), { webhooks: 1, endpoints: 1, jobs: 1, orders: 0 });
  const other = await t.throwsAsync(submitWebhook(db, boss, input({ idempotencyKey: 'same', requestHash: Buffer.alloc(32, 2) })));
  t.is((other as { status?: number }).status, 409);
  t.deepEqual(await tableCounts(url), { webhooks: 1, endpoints: 1, jobs: 1, orders: 0 });
});
