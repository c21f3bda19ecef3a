import test, { type ExecutionContext } from 'ava';
import type { PgBoss } from 'pg-boss';
import type { RetryPolicy } from '../../src/config.ts';
import type { Db } from '../../src/db/database.ts';
import { createDb, QUEUE_SCHEMA } from '../../src/db/database.ts';
import { createGroupCommit } from '../../src/delivery/group-commit.ts';
import { startQueue } from '../../src/delivery/queue.ts';
import { submitWebhook, type SubmitDeps, type WebhookInput } from '../../src/delivery/submit.ts';
import type { AppError } from '../../src/errors.ts';
import { createKeyring } from '../../src/endpoints/keyring.ts';
import { createEndpoint, deleteEndpoint } from '../../src/endpoints/store.ts';
import { freshDb, listenToQueue, query, recordStatements, silentLog } from '../helpers/db.ts';
import { startTestService, TEST_MASTER_KEY } from '../helpers/service.ts';

/**
 * Group commit: submissions made together share one transaction, each caller is answered
 * after that transaction commits, and every caller gets the answer submitWebhook would have
 * given it alone, whatever the others in its batch did.
 */

const DEFAULTS: RetryPolicy = { maxAttempts: 30, baseDelayMs: 5000, maxDelayMs: 3_600_000, backoffFactor: 2 };

interface Setup {
  url: string;
  db: Db;
  boss: PgBoss;
  deps: SubmitDeps;
}

async function setup(t: ExecutionContext): Promise<Setup> {
  const { url, handle } = await freshDb(t);
  const boss = await startQueue(url, { deliveryTimeoutMs: 5_000, queueHeartbeatSeconds: 10, queueSuperviseSeconds: 60, dbPoolMax: 2 }, silentLog, { supervise: false });
  t.teardown(() => boss.stop({ graceful: false, close: true, timeout: 2_000 }));
  const keyring = createKeyring(Buffer.from(TEST_MASTER_KEY, 'base64'));
  return { url, db: handle.db, boss, deps: { boss, keyring, retryDefaults: DEFAULTS } };
}

function input(n: number, overrides: Partial<WebhookInput> = {}): WebhookInput {
  return { url: 'https://receiver.example.com/orders', body: JSON.stringify({ n }), headers: { 'X-N': String(n) }, ...overrides };
}

async function countWebhooks(url: string): Promise<number> {
  const [row] = await query<{ count: number }>(url, 'SELECT count(*)::int AS count FROM hookrelay.webhooks');
  return row!.count;
}

/** Jobs of the delivery queue, by the webhook they ask for. */
async function jobsByWebhook(url: string): Promise<Map<string, { attempt: number; groupedByEndpoint: boolean }[]>> {
  const rows = await query(url, `SELECT j.data, j.group_id, w.endpoint_id FROM ${QUEUE_SCHEMA}.job j JOIN hookrelay.webhooks w ON w.id = j.data->>'webhookId' WHERE j.name = 'deliveries'`);
  const map = new Map<string, { attempt: number; groupedByEndpoint: boolean }[]>();
  for (const { data, group_id, endpoint_id } of rows) {
    map.set(data.webhookId, [...(map.get(data.webhookId) ?? []), { attempt: data.attempt, groupedByEndpoint: group_id === endpoint_id }]);
  }
  return map;
}

test.serial('submissions made together are written in one batch; each is committed with its job when its caller hears', async (t) => {
  const { url, db, deps } = await setup(t);
  const gc = createGroupCommit(db, deps);
  const answers = await Promise.all(Array.from({ length: 60 }, (_, n) => gc.submit(input(n, { requestId: `req-${n}` })).then(async (accepted) => {
    // Read on a connection of its own at the moment the caller is answered: already committed.
    const [row] = await query(url, 'SELECT body, request_id, status FROM hookrelay.webhooks WHERE id = $1', [accepted.id]);
    return { accepted, row };
  })));
  t.is(new Set(answers.map((a) => a.accepted.id)).size, 60);
  for (const [n, { accepted, row }] of answers.entries()) {
    t.deepEqual(row, { body: JSON.stringify({ n }), request_id: `req-${n}`, status: 'pending' });
    t.like(accepted, { status: 'pending', replayed: false });
  }
  const jobs = await jobsByWebhook(url);
  t.is(jobs.size, 60);
  for (const { accepted } of answers) t.deepEqual(jobs.get(accepted.id), [{ attempt: 1, groupedByEndpoint: true }]);
  // All 60 arrived in one tick: one endpoint registered, one batch.
  t.is(new Set(answers.map((a) => a.accepted.endpointId)).size, 1);
  t.like(gc.stats(), { batches: 1, items: 60, fallbacks: 0, largestBatch: 60 });
});

test.serial('a batch to known endpoints is three statements: endpoints by id, by URL, then every webhook and job in one', async (t) => {
  const { url, deps } = await setup(t);
  const handle = createDb(url, { max: 1 });
  t.teardown(() => handle.close());
  const statements = recordStatements(handle);
  const gc = createGroupCommit(handle.db, deps);
  const [known] = await Promise.all([gc.submit(input(0)), gc.submit(input(1, { url: 'https://other.example.com/' }))]);
  statements.length = 0;
  const batch = [...Array.from({ length: 20 }, (_, n) => input(n)), input(20, { url: undefined, endpointId: known!.endpointId })];
  const answers = await Promise.all(batch.map((i) => gc.submit(i)));
  t.is(statements.length, 3, statements.join('\n---\n'));
  t.regex(statements[2]!, /^WITH hookrelay_rows AS \(insert into "hookrelay"\."webhooks"[\s\S]*INSERT INTO hookrelay_queue\./);
  const jobs = await jobsByWebhook(url);
  for (const accepted of answers) t.deepEqual(jobs.get(accepted.id), [{ attempt: 1, groupedByEndpoint: true }]);
  t.is(await countWebhooks(url), 23);
  t.like(gc.stats(), { batches: 2, items: 23, fallbacks: 0 });
});

test.serial('batches hold at most maxBatch submissions and at most maxInFlight commit at once', async (t) => {
  const { url, db, deps } = await setup(t);
  const gc = createGroupCommit(db, deps, { maxBatch: 10, maxInFlight: 2 });
  const answers = await Promise.all(Array.from({ length: 45 }, (_, n) => gc.submit(input(n))));
  t.is(new Set(answers.map((a) => a.id)).size, 45);
  const stats = gc.stats();
  t.is(stats.items, 45);
  t.is(stats.largestBatch, 10);
  t.true(stats.batches >= 5);
  t.is(stats.peakInFlight, 2);
  t.is(await countWebhooks(url), 45);
});

test.serial('a bad item is refused alone; the rest of its batch commits, held and first-seen URLs included', async (t) => {
  const { url, db, deps } = await setup(t);
  const disabled = await createEndpoint(db, deps.keyring, { url: 'https://off.example.com/', enabled: false });
  const deleted = await createEndpoint(db, deps.keyring, { url: 'https://gone.example.com/' });
  await deleteEndpoint(db, deleted.id);
  const gc = createGroupCommit(db, deps);
  const results = await Promise.allSettled([
    gc.submit(input(0)),
    gc.submit(input(1, { url: undefined, endpointId: 'ep_00000000000000000000000000' })),
    gc.submit(input(2, { url: undefined, endpointId: deleted.id })),
    // Refused on its own retry policy, for a URL nobody has used: no endpoint may be left behind.
    gc.submit(input(3, { url: 'https://never.example.com/', retryPolicy: { baseDelayMs: 5000, maxDelayMs: 1000 } })),
    gc.submit(input(4, { url: undefined, endpointId: disabled.id })),
    gc.submit(input(5, { url: 'https://new.example.com/hook' })),
    gc.submit(input(6, { url: undefined })),
  ]);
  t.is(gc.stats().batches, 1);
  const problem = (i: number) => {
    const r = results[i]!;
    return r.status === 'rejected' ? { status: (r.reason as AppError).status, code: (r.reason as AppError).code } : undefined;
  };
  t.deepEqual(problem(1), { status: 404, code: 'endpoint_not_found' });
  t.deepEqual(problem(2), { status: 409, code: 'endpoint_deleted' });
  t.deepEqual(problem(3), { status: 400, code: 'validation_failed' });
  t.deepEqual(problem(6), { status: 400, code: 'validation_failed' });
  const ok = (i: number) => {
    const r = results[i]!;
    if (r.status !== 'fulfilled') throw new Error(`item ${i} was refused: ${String(r.reason)}`);
    return r.value;
  };
  t.is(ok(0).status, 'pending');
  t.like(ok(4), { status: 'held', endpointId: disabled.id });
  t.is(ok(5).status, 'pending');

  const rows = await query(url, 'SELECT id, url, status FROM hookrelay.webhooks ORDER BY body');
  t.deepEqual(rows.map((r) => [r.url, r.status]), [
    ['https://receiver.example.com/orders', 'pending'],
    ['https://off.example.com/', 'held'],
    ['https://new.example.com/hook', 'pending'],
  ]);
  const endpoints = await query(url, 'SELECT e.url, (SELECT count(*)::int FROM hookrelay.signing_keys k WHERE k.endpoint_id = e.id) AS keys FROM hookrelay.endpoints e WHERE deleted_at IS NULL ORDER BY url');
  t.deepEqual(endpoints, [
    { url: 'https://new.example.com/hook', keys: 1 },
    { url: 'https://off.example.com/', keys: 1 },
    { url: 'https://receiver.example.com/orders', keys: 1 },
  ]);
  // A held webhook has no job until its endpoint is enabled.
  const jobs = await jobsByWebhook(url);
  t.deepEqual([...jobs.keys()].sort(), [ok(0).id, ok(5).id].sort());
});

test.serial('one Idempotency-Key twice in a batch: one webhook, both callers answered with it, the others unaffected', async (t) => {
  const { url, db, deps } = await setup(t);
  const gc = createGroupCommit(db, deps);
  const hash = Buffer.alloc(32, 1);
  const [a, b, c, d] = await Promise.all([
    gc.submit(input(1, { idempotencyKey: 'twice', requestHash: hash })),
    gc.submit(input(2)),
    gc.submit(input(1, { idempotencyKey: 'twice', requestHash: hash })),
    gc.submit(input(3, { idempotencyKey: 'other', requestHash: hash })),
  ]);
  t.is(a!.id, c!.id);
  t.deepEqual([a!.replayed, c!.replayed].sort(), [false, true]);
  t.not(b!.id, d!.id);
  t.false(b!.replayed);
  t.false(d!.replayed);
  t.is(await countWebhooks(url), 3);
  t.is((await jobsByWebhook(url)).size, 3);
  t.is(gc.stats().fallbacks, 1);
});

test.serial('the same key with a different body in one batch: that caller gets 409, the others are accepted', async (t) => {
  const { url, db, deps } = await setup(t);
  const gc = createGroupCommit(db, deps);
  const results = await Promise.allSettled([
    gc.submit(input(1, { idempotencyKey: 'k', requestHash: Buffer.alloc(32, 1) })),
    gc.submit(input(2, { idempotencyKey: 'k', requestHash: Buffer.alloc(32, 2) })),
    gc.submit(input(3)),
  ]);
  const refused = results.filter((r) => r.status === 'rejected');
  t.is(refused.length, 1);
  t.like((refused[0] as PromiseRejectedResult).reason, { status: 409, code: 'idempotency_conflict' });
  t.is(results[2]!.status, 'fulfilled');
  t.is(await countWebhooks(url), 2);
});

test.serial('a key another transaction already committed rolls the batch back; every caller still gets its own answer', async (t) => {
  const { url, db, deps } = await setup(t);
  const hash = Buffer.alloc(32, 9);
  // Committed before the batch, and not looked up first (the API looks up; a race would not).
  const earlier = await submitWebhook(db, deps, input(0, { idempotencyKey: 'taken', requestHash: hash }));
  const gc = createGroupCommit(db, deps);
  const answers = await Promise.all([
    gc.submit(input(1)),
    gc.submit(input(0, { idempotencyKey: 'taken', requestHash: hash })),
    gc.submit(input(2)),
  ]);
  t.like(answers[1], { id: earlier.id, replayed: true });
  t.false(answers[0]!.replayed);
  t.false(answers[2]!.replayed);
  t.is(gc.stats().fallbacks, 1);
  t.is(await countWebhooks(url), 3);
  const jobs = await jobsByWebhook(url);
  t.deepEqual(jobs.get(earlier.id), [{ attempt: 1, groupedByEndpoint: true }]);
  t.is(jobs.size, 3);
});

test.serial('a batch sends one NOTIFY for all its jobs', async (t) => {
  const { url, db, deps } = await setup(t);
  const heard = await listenToQueue(t, url);
  const gc = createGroupCommit(db, deps);
  await Promise.all(Array.from({ length: 40 }, (_, n) => gc.submit(input(n))));
  t.is(gc.stats().batches, 1);
  t.deepEqual(await heard(), ['deliveries']);
});

test.serial('over HTTP: concurrent POST /api/v1/webhooks/deliver are each answered 202 with their own committed webhook', async (t) => {
  const svc = await startTestService(t);
  const responses = await Promise.all(Array.from({ length: 40 }, (_, n) => svc.api('/api/v1/webhooks/deliver', {
    method: 'POST',
    json: { url: 'https://receiver.example.com/orders', payload: { n } },
    headers: n % 10 === 0 ? { 'idempotency-key': `key-${n}` } : {},
  })));
  t.deepEqual(responses.map((r) => r.status), Array(40).fill(202));
  const bodies = await Promise.all(responses.map((r) => r.json() as Promise<{ id: string }>));
  t.is(new Set(bodies.map((b) => b.id)).size, 40);
  const rows = await query(svc.dbUrl, 'SELECT id, body, idempotency_key FROM hookrelay.webhooks');
  const byId = new Map(rows.map((r) => [r.id, r]));
  for (const [n, { id }] of bodies.entries()) {
    t.is(byId.get(id)?.body, JSON.stringify({ n }));
    t.is(byId.get(id)?.idempotency_key, n % 10 === 0 ? `key-${n}` : null);
  }
});
