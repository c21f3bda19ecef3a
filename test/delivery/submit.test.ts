import test, { type ExecutionContext } from 'ava';
import { sql } from 'kysely';
import type { PgBoss } from 'pg-boss';
import type { RetryPolicy } from '../../src/config.ts';
import { createDb, type Db } from '../../src/db/database.ts';
import { startQueue } from '../../src/delivery/queue.ts';
import { enqueueWebhook, submitWebhook, type SubmitDeps, type WebhookInput } from '../../src/delivery/submit.ts';
import { createKeyring } from '../../src/endpoints/keyring.ts';
import { currentKey } from '../../src/endpoints/keys.ts';
import { createEndpoint, deleteEndpoint } from '../../src/endpoints/store.ts';
import { freshDb, listenToQueue, query, recordStatements, silentLog } from '../helpers/db.ts';
import { TEST_MASTER_KEY } from '../helpers/service.ts';

/**
 * The transactional outbox: enqueueWebhook writes the webhook row, its endpoint and the job
 * for its first attempt through the caller's transaction, so all of them exist exactly when
 * that transaction commits, together with the caller's own writes.
 */

const POLICY: RetryPolicy = { maxAttempts: 3, baseDelayMs: 1000, maxDelayMs: 60_000, backoffFactor: 2 };
/** The server defaults a submission falls back on (HOOKRELAY_RETRY_* in a running service). */
const DEFAULTS: RetryPolicy = { maxAttempts: 30, baseDelayMs: 5000, maxDelayMs: 3_600_000, backoffFactor: 2 };
const PAYLOAD = { order: 'o_1', total: 4200 };

interface Setup {
  url: string;
  db: Db;
  boss: PgBoss;
  /** What enqueueWebhook and submitWebhook take: the queue, the keyring, the server defaults. */
  deps: SubmitDeps;
}

/** A fresh, migrated database with a started queue (no worker: jobs stay as written). */
async function setup(t: ExecutionContext): Promise<Setup> {
  const { url, handle } = await freshDb(t);
  const boss = await startQueue(url, { deliveryTimeoutMs: 5_000, queueHeartbeatSeconds: 10, queueSuperviseSeconds: 60, dbPoolMax: 2 }, silentLog, { supervise: false });
  t.teardown(() => boss.stop({ graceful: false, close: true, timeout: 2_000 }));
  // The application's own table, next to hookrelay's, in the same database.
  await query(url, 'CREATE TABLE public.app_orders (id text PRIMARY KEY, total integer NOT NULL)');
  const keyring = createKeyring(Buffer.from(TEST_MASTER_KEY, 'base64'));
  return { url, db: handle.db, boss, deps: { boss, keyring, retryDefaults: DEFAULTS } };
}

function input(overrides: Partial<WebhookInput> = {}): WebhookInput {
  return { url: 'https://receiver.example.com/orders', body: JSON.stringify(PAYLOAD), headers: { 'X-Tenant': 'acme' }, retryPolicy: POLICY, ...overrides };
}

async function tableCounts(url: string) {
  const [row] = await query(url, `SELECT
    (SELECT count(*) FROM hookrelay.webhooks)::int AS webhooks,
    (SELECT count(*) FROM hookrelay.endpoints)::int AS endpoints,
    (SELECT count(*) FROM hookrelay.signing_keys)::int AS keys,
    (SELECT count(*) FROM hookrelay_queue.job)::int AS jobs,
    (SELECT count(*) FROM public.app_orders)::int AS orders`);
  return row;
}

class Boom extends Error {}

test.serial('throwing after enqueueWebhook inside the transaction leaves no webhook, endpoint, signing key or job', async (t) => {
  const { url, db, deps } = await setup(t);
  let enqueuedId: string | undefined;
  await t.throwsAsync(
    db.transaction().execute(async (trx) => {
      const accepted = await enqueueWebhook(trx, deps, input());
      enqueuedId = accepted.id;
      throw new Boom('the application changed its mind');
    }),
    { instanceOf: Boom },
  );
  t.truthy(enqueuedId, 'enqueueWebhook did run');
  t.deepEqual(await tableCounts(url), { webhooks: 0, endpoints: 0, keys: 0, jobs: 0, orders: 0 });
  t.deepEqual(await query(url, `SELECT id FROM hookrelay_queue.job WHERE data->>'webhookId' = $1`, [enqueuedId]), []);
});

test.serial('after commit, the webhook row and its created job both exist', async (t) => {
  const { url, db, deps } = await setup(t);
  const accepted = await db.transaction().execute((trx) => enqueueWebhook(trx, deps, input({ idempotencyKey: 'k-1', requestHash: Buffer.alloc(32, 7), requestId: 'req-1' })));
  t.regex(accepted.id, /^msg_[0-9A-Z]{26}$/);
  t.regex(accepted.endpointId, /^ep_[0-9A-Z]{26}$/);
  t.is(accepted.status, 'pending');

  const webhooks = await query(url, 'SELECT id, endpoint_id, url, body, headers, retry_policy, status, attempts, idempotency_key, request_id FROM hookrelay.webhooks');
  t.deepEqual(webhooks, [{
    id: accepted.id,
    endpoint_id: accepted.endpointId,
    url: 'https://receiver.example.com/orders',
    body: JSON.stringify(PAYLOAD),
    headers: { 'X-Tenant': 'acme' },
    retry_policy: POLICY,
    status: 'pending',
    attempts: 0,
    idempotency_key: 'k-1',
    request_id: 'req-1',
  }]);
  const endpoints = await query(url, 'SELECT id, url FROM hookrelay.endpoints');
  t.deepEqual(endpoints, [{ id: accepted.endpointId, url: 'https://receiver.example.com/orders' }]);
  // The endpoint registered on first use got its first signing key, current and sealed.
  const keys = await query(url, 'SELECT endpoint_id, kind, expires_at, public_key FROM hookrelay.signing_keys');
  t.deepEqual(keys, [{ endpoint_id: accepted.endpointId, kind: 'hmac', expires_at: null, public_key: null }]);
  const jobs = await query(url, `SELECT name, state, data FROM hookrelay_queue.job WHERE data->>'webhookId' = $1`, [accepted.id]);
  t.deepEqual(jobs, [{ name: 'deliveries', state: 'created', data: { webhookId: accepted.id, attempt: 1 } }]);
});

test.serial('the caller\'s own write commits together with the webhook', async (t) => {
  const { url, db, deps } = await setup(t);
  const accepted = await db.transaction().execute(async (trx) => {
    await sql`INSERT INTO public.app_orders (id, total) VALUES (${'o_1'}, ${4200})`.execute(trx);
    return enqueueWebhook(trx, deps, input());
  });
  t.deepEqual(await tableCounts(url), { webhooks: 1, endpoints: 1, keys: 1, jobs: 1, orders: 1 });
  t.deepEqual(await query(url, 'SELECT id, total FROM public.app_orders'), [{ id: 'o_1', total: 4200 }]);
  t.is((await query(url, `SELECT count(*)::int AS n FROM hookrelay_queue.job WHERE data->>'webhookId' = $1`, [accepted.id]))[0]!.n, 1);
});

test.serial('the caller\'s own write rolls back together with the webhook', async (t) => {
  const { url, db, deps } = await setup(t);
  await t.throwsAsync(db.transaction().execute(async (trx) => {
    await sql`INSERT INTO public.app_orders (id, total) VALUES (${'o_1'}, ${4200})`.execute(trx);
    await enqueueWebhook(trx, deps, input());
    throw new Boom('payment declined');
  }), { instanceOf: Boom });
  t.deepEqual(await tableCounts(url), { webhooks: 0, endpoints: 0, keys: 0, jobs: 0, orders: 0 });
});

test.serial('a failing business write after enqueueWebhook takes the webhook down with it', async (t) => {
  const { url, db, deps } = await setup(t);
  await query(url, `INSERT INTO public.app_orders (id, total) VALUES ('o_1', 1)`);
  // The duplicate primary key fails inside PostgreSQL, after the webhook was enqueued.
  const err = await t.throwsAsync(db.transaction().execute(async (trx) => {
    await enqueueWebhook(trx, deps, input());
    await sql`INSERT INTO public.app_orders (id, total) VALUES (${'o_1'}, ${2})`.execute(trx);
  }));
  t.is((err as { code?: string }).code, '23505');
  t.deepEqual(await tableCounts(url), { webhooks: 0, endpoints: 0, keys: 0, jobs: 0, orders: 1 });
});

test.serial('several webhooks in one transaction commit or vanish together', async (t) => {
  const { url, db, deps } = await setup(t);
  await t.throwsAsync(db.transaction().execute(async (trx) => {
    await enqueueWebhook(trx, deps, input({ url: 'https://a.example.com/' }));
    await enqueueWebhook(trx, deps, input({ url: 'https://b.example.com/' }));
    throw new Boom();
  }), { instanceOf: Boom });
  t.deepEqual(await tableCounts(url), { webhooks: 0, endpoints: 0, keys: 0, jobs: 0, orders: 0 });

  const ids = await db.transaction().execute(async (trx) => [
    (await enqueueWebhook(trx, deps, input({ url: 'https://a.example.com/' }))).id,
    (await enqueueWebhook(trx, deps, input({ url: 'https://b.example.com/' }))).id,
    (await enqueueWebhook(trx, deps, input({ url: 'https://a.example.com/' }))).id,
  ]);
  t.deepEqual(await tableCounts(url), { webhooks: 3, endpoints: 2, keys: 2, jobs: 3, orders: 0 });
  const jobs = await query(url, `SELECT data->>'webhookId' AS id FROM hookrelay_queue.job ORDER BY 1`);
  t.deepEqual(jobs.map((j) => j.id), [...ids].sort());
});

test.serial('nothing is visible to other connections before the caller commits', async (t) => {
  const { url, db, deps } = await setup(t);
  let seenInside: unknown;
  const accepted = await db.transaction().execute(async (trx) => {
    const a = await enqueueWebhook(trx, deps, input());
    // Another connection, as an operator or a worker would see the database right now.
    seenInside = await tableCounts(url);
    return a;
  });
  t.deepEqual(seenInside, { webhooks: 0, endpoints: 0, keys: 0, jobs: 0, orders: 0 });
  t.deepEqual(await tableCounts(url), { webhooks: 1, endpoints: 1, keys: 1, jobs: 1, orders: 0 });
  t.regex(accepted.id, /^msg_/);
});

test.serial('submitWebhook resolves only once the webhook and its job are committed', async (t) => {
  const { url, db, deps } = await setup(t);
  const accepted = await submitWebhook(db, deps, input());
  t.false(accepted.replayed);
  t.is(accepted.status, 'pending');
  // Read at once, from another connection: committed, not merely written.
  const rows = await query(url, 'SELECT id, status FROM hookrelay.webhooks WHERE id = $1', [accepted.id]);
  t.deepEqual(rows, [{ id: accepted.id, status: 'pending' }]);
  const jobs = await query(url, `SELECT state FROM hookrelay_queue.job WHERE data->>'webhookId' = $1`, [accepted.id]);
  t.deepEqual(jobs, [{ state: 'created' }]);
});

test.serial('submitWebhook with a reused key and the same hash answers the committed webhook', async (t) => {
  const { url, db, deps } = await setup(t);
  const hash = Buffer.alloc(32, 1);
  const first = await submitWebhook(db, deps, input({ idempotencyKey: 'same', requestHash: hash }));
  const second = await submitWebhook(db, deps, input({ idempotencyKey: 'same', requestHash: hash }));
  t.false(first.replayed);
  t.true(second.replayed);
  t.is(second.id, first.id);
  t.deepEqual(await tableCounts(url), { webhooks: 1, endpoints: 1, keys: 1, jobs: 1, orders: 0 });
  const other = await t.throwsAsync(submitWebhook(db, deps, input({ idempotencyKey: 'same', requestHash: Buffer.alloc(32, 2) })));
  t.is((other as { status?: number }).status, 409);
  t.deepEqual(await tableCounts(url), { webhooks: 1, endpoints: 1, keys: 1, jobs: 1, orders: 0 });
});

test.serial('the body is stored as the exact text given: key order, spacing and number spelling survive', async (t) => {
  const { url, db, deps } = await setup(t);
  const body = '{"b":1, "a":[1.0,2e3],"z":"\\u00e9"}';
  const accepted = await submitWebhook(db, deps, input({ body }));
  const rows = await query(url, 'SELECT body, pg_typeof(body)::text AS type FROM hookrelay.webhooks WHERE id = $1', [accepted.id]);
  t.deepEqual(rows, [{ body, type: 'text' }]);
});

test.serial('the first webhook to a URL registers an endpoint with a sealed key; later ones reuse it', async (t) => {
  const { url, db, deps } = await setup(t);
  const first = await submitWebhook(db, deps, input());
  const second = await submitWebhook(db, deps, input());
  t.is(second.endpointId, first.endpointId);
  const keys = await query<{ id: string; sealed_secret: Buffer }>(url, 'SELECT id, sealed_secret FROM hookrelay.signing_keys WHERE endpoint_id = $1', [first.endpointId]);
  t.is(keys.length, 1);
  const current = await currentKey(db, deps.keyring, first.endpointId);
  t.is(current?.id, keys[0]!.id);
  t.regex(current!.secret, /^whsec_[A-Za-z0-9+/]+={0,2}$/);
  // Neither the secret text nor its key bytes are in the stored row.
  const sealed = keys[0]!.sealed_secret;
  t.false(sealed.includes(Buffer.from(current!.secret)));
  t.false(sealed.includes(Buffer.from(current!.secret.slice('whsec_'.length), 'base64')));
});

test.serial('by endpointId: the endpoint\'s url is used, and its retry policy sits between the server\'s and the webhook\'s', async (t) => {
  const { url, db, deps } = await setup(t);
  const endpoint = await createEndpoint(db, deps.keyring, { url: 'https://configured.example.com/hook', retryPolicy: { maxAttempts: 2, baseDelayMs: 200 } });
  const plain = await submitWebhook(db, deps, input({ url: undefined, endpointId: endpoint.id, retryPolicy: undefined }));
  const own = await submitWebhook(db, deps, input({ url: undefined, endpointId: endpoint.id, retryPolicy: { maxAttempts: 5 } }));
  t.is(plain.endpointId, endpoint.id);
  t.is(own.endpointId, endpoint.id);
  const rows = await query(url, 'SELECT id, url, retry_policy FROM hookrelay.webhooks ORDER BY id');
  t.deepEqual(rows, [
    { id: plain.id, url: 'https://configured.example.com/hook', retry_policy: { ...DEFAULTS, maxAttempts: 2, baseDelayMs: 200 } },
    { id: own.id, url: 'https://configured.example.com/hook', retry_policy: { ...DEFAULTS, maxAttempts: 5, baseDelayMs: 200 } },
  ]);
  // No endpoint was registered for the submissions: the configured one served both.
  t.is((await query(url, 'SELECT count(*)::int AS n FROM hookrelay.endpoints'))[0]!.n, 1);
});

test.serial('a partial webhook policy over no endpoint policy takes the server defaults for the rest', async (t) => {
  const { url, db, deps } = await setup(t);
  const accepted = await submitWebhook(db, deps, input({ retryPolicy: { backoffFactor: 3 } }));
  const rows = await query(url, 'SELECT retry_policy FROM hookrelay.webhooks WHERE id = $1', [accepted.id]);
  t.deepEqual(rows, [{ retry_policy: { ...DEFAULTS, backoffFactor: 3 } }]);
});

test.serial('a resolved policy whose maxDelayMs is below its baseDelayMs is 400 and stores nothing', async (t) => {
  const { url, db, deps } = await setup(t);
  const err = await t.throwsAsync(submitWebhook(db, deps, input({ retryPolicy: { maxDelayMs: 1000, baseDelayMs: 2000 } })));
  t.is((err as { status?: number }).status, 400);
  t.deepEqual(await tableCounts(url), { webhooks: 0, endpoints: 0, keys: 0, jobs: 0, orders: 0 });
  // To a known endpoint, where the webhook and its job would be one statement: refused before it.
  await submitWebhook(db, deps, input());
  const again = await t.throwsAsync(submitWebhook(db, deps, input({ retryPolicy: { maxDelayMs: 1000, baseDelayMs: 2000 } })));
  t.like(again, { status: 400 });
  t.is((again as { errors?: { field: string }[] }).errors?.[0]?.field, 'retryPolicy.maxDelayMs');
  t.deepEqual(await tableCounts(url), { webhooks: 1, endpoints: 1, keys: 1, jobs: 1, orders: 0 });
});

test.serial('an unknown endpointId is 404 naming endpointId, and nothing is stored', async (t) => {
  const { url, db, deps } = await setup(t);
  const err = await t.throwsAsync(submitWebhook(db, deps, input({ url: undefined, endpointId: 'ep_00000000000000000000000000' })));
  t.like(err, { status: 404, code: 'endpoint_not_found' });
  t.is((err as { errors?: { field: string }[] }).errors?.[0]?.field, 'endpointId');
  t.deepEqual(await tableCounts(url), { webhooks: 0, endpoints: 0, keys: 0, jobs: 0, orders: 0 });
});

test.serial('a deleted endpoint is 409 by id; by URL, a new endpoint is registered in its place', async (t) => {
  const { url, db, deps } = await setup(t);
  const first = await submitWebhook(db, deps, input());
  await deleteEndpoint(db, first.endpointId);
  const err = await t.throwsAsync(submitWebhook(db, deps, input({ url: undefined, endpointId: first.endpointId })));
  t.like(err, { status: 409, code: 'endpoint_deleted' });
  const again = await submitWebhook(db, deps, input());
  t.not(again.endpointId, first.endpointId);
  t.deepEqual(await tableCounts(url), { webhooks: 2, endpoints: 2, keys: 2, jobs: 2, orders: 0 });
  // The webhook waiting for the deleted endpoint ended dead with the reason.
  const rows = await query(url, 'SELECT status, last_error FROM hookrelay.webhooks WHERE id = $1', [first.id]);
  t.deepEqual(rows, [{ status: 'dead', last_error: 'endpoint deleted' }]);
});

test.serial('neither url nor endpointId is 400', async (t) => {
  const { url, db, deps } = await setup(t);
  const err = await t.throwsAsync(submitWebhook(db, deps, input({ url: undefined })));
  t.is((err as { status?: number }).status, 400);
  t.deepEqual(await tableCounts(url), { webhooks: 0, endpoints: 0, keys: 0, jobs: 0, orders: 0 });
});

/** A handle of one connection whose statements are recorded, for the round-trip counts below. */
function recordedDb(t: ExecutionContext, url: string): { db: Db; statements: string[] } {
  const handle = createDb(url, { max: 1 });
  t.teardown(() => handle.close());
  return { db: handle.db, statements: recordStatements(handle) };
}

const firstWord = (statement: string) => statement.trim().split(/\s+/)[0]!.toUpperCase();

test.serial('a lone submission to a known endpoint is two statements: the endpoint read, then webhook, job and NOTIFY in one', async (t) => {
  const { url, deps } = await setup(t);
  const { db, statements } = recordedDb(t, url);
  const heard = await listenToQueue(t, url);
  const registered = await submitWebhook(db, deps, input());
  statements.length = 0;

  const byUrl = await submitWebhook(db, deps, input({ headers: { 'X-Tenant': 'by-url' } }));
  t.deepEqual(statements.map(firstWord), ['SELECT', 'WITH'], statements.join('\n---\n'));
  t.regex(statements[1]!, /^WITH hookrelay_rows AS \(insert into "hookrelay"\."webhooks"[\s\S]*INSERT INTO hookrelay_queue\.[\s\S]*pg_notify/);
  const byId = await submitWebhook(db, deps, input({ url: undefined, endpointId: registered.endpointId, headers: { 'X-Tenant': 'by-id' } }));
  t.is(statements.length, 4);

  t.deepEqual(await heard(), ['deliveries', 'deliveries', 'deliveries'], 'each commit woke the workers once');
  for (const [accepted, tenant] of [[byUrl, 'by-url'], [byId, 'by-id']] as const) {
    t.is(accepted.endpointId, registered.endpointId);
    const [webhook] = await query(url, 'SELECT status, headers, retry_policy, next_attempt_at IS NOT NULL AS due FROM hookrelay.webhooks WHERE id = $1', [accepted.id]);
    t.deepEqual(webhook, { status: 'pending', headers: { 'X-Tenant': tenant }, retry_policy: POLICY, due: true });
    const jobs = await query(url, `SELECT state, data, group_id FROM hookrelay_queue.job WHERE data->>'webhookId' = $1`, [accepted.id]);
    t.deepEqual(jobs, [{ state: 'created', data: { webhookId: accepted.id, attempt: 1 }, group_id: registered.endpointId }]);
  }
});

test.serial('a lone submission to a disabled endpoint is held in one INSERT; a first-seen URL registers its endpoint in a transaction', async (t) => {
  const { url, deps } = await setup(t);
  const { db, statements } = recordedDb(t, url);
  const disabled = await createEndpoint(db, deps.keyring, { url: 'https://paused.example.com/hook', enabled: false });
  statements.length = 0;
  const held = await submitWebhook(db, deps, input({ url: undefined, endpointId: disabled.id }));
  t.is(held.status, 'held');
  t.deepEqual(statements.map(firstWord), ['SELECT', 'INSERT']);
  t.deepEqual(await query(url, `SELECT count(*)::int AS n FROM hookrelay_queue.job WHERE data->>'webhookId' = $1`, [held.id]), [{ n: 0 }]);

  statements.length = 0;
  const first = await submitWebhook(db, deps, input({ url: 'https://new.example.com/hook' }));
  t.is(first.status, 'pending');
  // Missed outside, then in the transaction: read again, endpoint, its key, webhook with job.
  t.deepEqual(statements.map(firstWord), ['SELECT', 'BEGIN', 'SELECT', 'INSERT', 'INSERT', 'WITH', 'COMMIT'], statements.join('\n---\n'));
  t.deepEqual(await tableCounts(url), { webhooks: 2, endpoints: 2, keys: 2, jobs: 1, orders: 0 });
});

test.serial('a job insert that fails takes its webhook down with it: the one statement is all or nothing', async (t) => {
  const { url, db, boss, deps } = await setup(t);
  await submitWebhook(db, deps, input());
  const failing = new Proxy(boss, {
    get(target, prop, receiver) {
      if (prop !== 'send') return Reflect.get(target, prop, receiver);
      // The job's JSON spoiled on its way to the database: PostgreSQL refuses the statement.
      return (name: string, data: object, options: { db: { executeSql(text: string, values?: unknown[]): Promise<{ rows: any[] }> } }) =>
        target.send(name, data, { ...options, db: { executeSql: (text, values = []) => options.db.executeSql(text, values.map(() => '{not json')) } });
    },
  });
  const err = await t.throwsAsync(submitWebhook(db, { ...deps, boss: failing }, input({ idempotencyKey: 'spoiled', requestHash: Buffer.alloc(32, 3) })));
  t.is((err as { code?: string }).code, '22P02');
  t.deepEqual(await tableCounts(url), { webhooks: 1, endpoints: 1, keys: 1, jobs: 1, orders: 0 });
});

test.serial('a job insert of a shape it cannot join is written apart, in a transaction, with its webhook', async (t) => {
  const { url, boss, deps } = await setup(t);
  const { db, statements } = recordedDb(t, url);
  await submitWebhook(db, deps, input());
  let failApart = false;
  let calls = 0;
  const commented = new Proxy(boss, {
    get(target, prop, receiver) {
      if (prop !== 'send') return Reflect.get(target, prop, receiver);
      // A leading comment is a shape with-jobs.ts does not know.
      return (name: string, data: object, options: { db: { executeSql(text: string, values?: unknown[]): Promise<{ rows: any[] }> } }) =>
        target.send(name, data, { ...options, db: { executeSql: (text, values) => {
          // The first call is the joined statement's; the second, the job insert written apart.
          calls += 1;
          if (failApart && calls === 2) return Promise.reject(new Boom('job insert failed'));
          return options.db.executeSql(`/* queued */ ${text}`, values);
        } } });
    },
  });
  statements.length = 0;
  const accepted = await submitWebhook(db, { ...deps, boss: commented }, input());
  t.deepEqual(statements.map(firstWord), ['SELECT', 'BEGIN', 'INSERT', '/*', 'COMMIT'], statements.join('\n---\n'));
  t.deepEqual(await query(url, `SELECT count(*)::int AS n FROM hookrelay_queue.job WHERE data->>'webhookId' = $1`, [accepted.id]), [{ n: 1 }]);

  t.is(calls, 2);

  failApart = true;
  calls = 0;
  statements.length = 0;
  await t.throwsAsync(submitWebhook(db, { ...deps, boss: commented }, input()), { instanceOf: Boom });
  t.deepEqual(statements.map(firstWord), ['SELECT', 'BEGIN', 'INSERT', 'ROLLBACK'], statements.join('\n---\n'));
  t.deepEqual(await tableCounts(url), { webhooks: 2, endpoints: 1, keys: 1, jobs: 2, orders: 0 }, 'the webhook written apart rolled back with its failed job');
});

test.serial('a lone submission runs as named statements on a prepared pool: its endpoint read and its insert, parsed once', async (t) => {
  const { url, deps } = await setup(t);
  const handle = createDb(url, { max: 1, prepared: true });
  t.teardown(() => handle.close());
  const first = await submitWebhook(handle.db, deps, input());
  const prepared = async () => (await sql<{ name: string; statement: string }>`SELECT name, statement FROM pg_prepared_statements ORDER BY prepare_time`.execute(handle.db)).rows;
  const after = [];
  for (let n = 0; n < 3; n++) after.push((await submitWebhook(handle.db, deps, input({ url: undefined, endpointId: first.endpointId }))).id);
  const statements = await prepared();
  t.true(statements.every((s) => s.name.startsWith('hookrelay_')), 'only hookrelay names');
  t.true(statements.some((s) => /from "hookrelay"\."endpoints" where "url" = /i.test(s.statement)), 'the read of an endpoint by URL');
  t.true(statements.some((s) => /from "hookrelay"\."endpoints" where "id" = /i.test(s.statement)), 'the read of an endpoint by id');
  const inserts = statements.filter((s) => /^WITH hookrelay_rows AS \(insert into "hookrelay"\."webhooks"/.test(s.statement));
  t.is(inserts.length, 1, 'one insert text for every lone submission, parsed once');
  const count = statements.length;
  await submitWebhook(handle.db, deps, input({ url: undefined, endpointId: first.endpointId }));
  t.is((await prepared()).length, count, 'the same texts again: nothing parsed anew');
  // And what they wrote is what an unnamed statement writes.
  const rows = await query(url, `SELECT w.id, w.status, j.state FROM hookrelay.webhooks w JOIN hookrelay_queue.job j ON j.data->>'webhookId' = w.id WHERE w.id = ANY($1) ORDER BY w.id`, [after]);
  t.deepEqual(rows.map((r) => [r.status, r.state]), after.map(() => ['pending', 'created']));
});
