import test, { type ExecutionContext } from 'ava';
import { randomUUID } from 'node:crypto';
import { createDb } from '../../src/db/database.ts';
import { createKeyring } from '../../src/endpoints/keyring.ts';
import { DEFAULT_HEALTH_SETTINGS } from '../../src/endpoints/health.ts';
import { recordAttempts, type AttemptRecord, type Outcome } from '../../src/delivery/record.ts';
import { DELIVERY_QUEUE } from '../../src/delivery/queue.ts';
import type { SendResult } from '../../src/delivery/send.ts';
import { fetchDeliveries } from '../../src/delivery/worker.ts';
import { query, recordStatements } from '../helpers/db.ts';
import { startTestService, TEST_MASTER_KEY, type TestService } from '../helpers/service.ts';

/**
 * Recording a batch of attempts (src/delivery/record.ts recordAttempts): everything an attempt
 * changes commits in one transaction of a fixed number of statements, and an attempt another
 * worker recorded first changes nothing but the completion of its job.
 */

const ok: SendResult = { ok: true, statusCode: 200, responseHeaders: {}, responseBody: Buffer.from('thanks'), durationMs: 4, errorClass: null, error: null };
const failed: SendResult = { ok: false, statusCode: 503, responseHeaders: {}, responseBody: Buffer.from('busy'), durationMs: 6, errorClass: 'http_status', error: 'HTTP 503' };

/** API only (no worker takes the jobs), two endpoints, `perEndpoint` webhooks each, their jobs fetched. */
async function setUp(t: ExecutionContext, perEndpoint: number) {
  const svc = await startTestService(t, { HOOKRELAY_ROLES: 'api' });
  const endpoints: string[] = [];
  for (const path of ['a', 'b']) {
    const res = await svc.api('/api/v1/endpoints', { method: 'POST', json: { url: `http://127.0.0.1:9/${path}` } });
    t.is(res.status, 201);
    endpoints.push(((await res.json()) as { id: string }).id);
  }
  for (const endpointId of endpoints) {
    for (let n = 0; n < perEndpoint; n++) {
      t.is((await svc.api('/api/v1/webhooks/deliver', { method: 'POST', json: { endpointId, payload: { n } } })).status, 202);
    }
  }
  const keyring = createKeyring(Buffer.from(TEST_MASTER_KEY, 'base64'));
  const { jobs, loaded } = await fetchDeliveries(svc.service.boss, keyring, 100, 64);
  t.is(jobs.length, perEndpoint * 2);
  const record = (i: number, result: SendResult, outcome: Outcome): AttemptRecord => {
    const job = jobs[i]!;
    return {
      job: { id: job.id, retryCount: job.retryCount },
      webhookId: job.data.webhookId,
      endpointId: loaded.get(job.id)!.webhook.endpoint_id,
      attempt: job.data.attempt,
      startedAt: new Date(Date.now() - 10 + i),
      result,
      outcome,
      healthSettings: DEFAULT_HEALTH_SETTINGS,
      probe: false,
    };
  };
  // A pool of the test's own whose statements are counted, as PostgreSQL receives them.
  const handle = createDb(svc.dbUrl, { max: 1 });
  t.teardown(() => handle.close());
  const statements = recordStatements(handle);
  return { svc, endpoints, record, db: handle.db, statements };
}

async function ledger(svc: TestService) {
  const [webhooks, attempts, dead, health, jobs] = await Promise.all([
    query(svc.dbUrl, 'SELECT id, status, attempts, last_status_code, last_error, next_attempt_at FROM hookrelay.webhooks ORDER BY id'),
    query(svc.dbUrl, 'SELECT webhook_id, attempt, endpoint_id, status_code, outcome, response_body FROM hookrelay.attempts ORDER BY webhook_id'),
    query(svc.dbUrl, 'SELECT webhook_id, endpoint_id, reason, last_status_code, attempts FROM hookrelay.dead_letters ORDER BY webhook_id'),
    query(svc.dbUrl, 'SELECT endpoint_id, consecutive_failures, window_attempts, window_failures, last_success_at IS NOT NULL AS succeeded FROM hookrelay.endpoint_health ORDER BY endpoint_id'),
    query(svc.dbUrl, `SELECT data->>'webhookId' AS webhook_id, (data->>'attempt')::int AS attempt, state, group_id FROM hookrelay_queue.job WHERE name = 'deliveries' ORDER BY created_on, id`),
  ]);
  return { webhooks, attempts, dead, health, jobs };
}

test('a batch of delivered, retried and dead attempts commits in five statements and a sixth for the retries', async (t) => {
  t.timeout(60_000);
  const { svc, endpoints, record, db, statements } = await setUp(t, 2);
  // Endpoint a: delivered, then a retry; endpoint b: delivered, then dead.
  const seen = new Set<string>();
  const recs = [0, 1, 2, 3].map((i) => {
    const delivered = record(i, ok, { kind: 'delivered' });
    if (!seen.has(delivered.endpointId)) {
      seen.add(delivered.endpointId);
      return delivered;
    }
    if (delivered.endpointId === endpoints[0]) return record(i, failed, { kind: 'retry', nextAttempt: 2, at: new Date(Date.now() + 60_000) });
    return record(i, failed, { kind: 'dead', reason: 'attempts_exhausted', detail: 'no attempts left' });
  });
  const answers = await recordAttempts(db, svc.service.boss, recs);
  t.deepEqual(answers.map((a) => a.status), ['recorded', 'recorded', 'recorded', 'recorded']);
  const first = (text: string) => text.trim().split(/\s+/)[0]!.toLowerCase();
  t.is(first(statements[0]!), 'begin');
  t.regex(statements[2]!, /UPDATE hookrelay\.webhooks[\s\S]*INSERT INTO hookrelay\.attempts[\s\S]*INSERT INTO hookrelay\.dead_letters[\s\S]*FOR UPDATE/, 'one statement settles, inserts and locks');
  t.regex(statements[4]!, /UPDATE hookrelay\.endpoint_health/);
  t.is(first(statements.at(-1)!), 'commit');
  t.is(statements.length, 6, 'BEGIN, completion, settle and lock, next jobs, health, COMMIT');

  const after = await ledger(svc);
  const byId = new Map(recs.map((r) => [r.webhookId, r]));
  for (const w of after.webhooks) {
    const kind = byId.get(w.id)!.outcome.kind;
    t.is(w.status, kind === 'delivered' ? 'delivered' : kind === 'retry' ? 'retrying' : 'dead', w.id);
    t.is(w.attempts, 1);
    t.is(w.last_status_code, kind === 'delivered' ? 200 : 503);
    t.is(w.next_attempt_at === null, kind !== 'retry', `next_attempt_at of a ${kind} webhook`);
  }
  t.deepEqual(after.attempts.map((a) => [a.webhook_id, a.attempt, a.status_code, a.outcome, a.response_body]), recs
    .map((r) => [r.webhookId, 1, r.result.statusCode, r.result.ok ? 'success' : 'failure', r.result.responseBody.toString()])
    .sort((a, b) => (a[0]! < b[0]! ? -1 : 1)));
  const dead = recs.filter((r) => r.outcome.kind === 'dead');
  t.deepEqual(after.dead.map((d) => [d.webhook_id, d.endpoint_id, d.reason, d.last_status_code, d.attempts]), dead.map((r) => [r.webhookId, endpoints[1], 'attempts_exhausted', 503, 1]));
  // Every fetched job completed; one new job, for the retry, grouped by its endpoint.
  const retry = recs.find((r) => r.outcome.kind === 'retry')!;
  t.deepEqual(after.jobs.filter((j) => j.state !== 'completed').map((j) => [j.webhook_id, j.attempt, j.state, j.group_id]), [[retry.webhookId, 2, 'created', endpoints[0]]]);
  t.is(after.jobs.filter((j) => j.state === 'completed').length, 4);
  // Each endpoint's health took its two attempts in order: a success, then a failure.
  t.deepEqual(after.health.map((h) => [h.endpoint_id, h.consecutive_failures, h.window_attempts, h.window_failures, h.succeeded]), [...endpoints].sort().map((e) => [e, 1, 2, 1, true]));
});

test('on a prepared pool a batch is recorded by named statements, and a batch of another size parses nothing new', async (t) => {
  t.timeout(60_000);
  const { svc, record } = await setUp(t, 4);
  const handle = createDb(svc.dbUrl, { max: 1, prepared: true });
  t.teardown(() => handle.close());
  const prepared = async () => (await handle.pool.query<{ name: string; statement: string }>('SELECT name, statement FROM pg_prepared_statements ORDER BY name')).rows;
  // Two attempts, then four: the statements' texts do not depend on the batch's size.
  const answers = await recordAttempts(handle.db, svc.service.boss, [0, 1].map((i) => record(i, ok, { kind: 'delivered' })));
  t.deepEqual(answers.map((a) => a.status), ['recorded', 'recorded']);
  const after = await prepared();
  t.regex(after.map((s) => s.statement).join('\n'), /UPDATE "?hookrelay_queue"?\.job/, 'the completion');
  t.true(after.some((s) => /INSERT INTO hookrelay\.attempts[\s\S]*FOR UPDATE/.test(s.statement)), 'the settle-and-lock statement');
  t.true(after.some((s) => /^\s*UPDATE hookrelay\.endpoint_health/.test(s.statement)), 'the health update');
  t.true(after.every((s) => s.name.startsWith('hookrelay_')));
  await recordAttempts(handle.db, svc.service.boss, [2, 3, 4, 5].map((i) => record(i, ok, { kind: 'delivered' })));
  t.deepEqual(await prepared(), after, 'the same names, parsed once');
  // A newer instance adds a column to a table the statements read: they go on as prepared.
  await query(svc.dbUrl, 'ALTER TABLE hookrelay.endpoint_health ADD COLUMN added_later text');
  t.deepEqual((await recordAttempts(handle.db, svc.service.boss, [6, 7].map((i) => record(i, ok, { kind: 'delivered' })))).map((a) => a.status), ['recorded', 'recorded']);
  t.deepEqual(await prepared(), after, 'nothing prepared again');
  const { webhooks, attempts } = await ledger(svc);
  t.deepEqual(webhooks.map((w) => w.status), Array(8).fill('delivered'));
  t.is(attempts.length, 8);
});

test('an attempt another worker recorded first is stale: its job completes and nothing else changes', async (t) => {
  t.timeout(60_000);
  const { svc, record, db, statements } = await setUp(t, 1);
  const first = [record(0, ok, { kind: 'delivered' }), record(1, failed, { kind: 'retry', nextAttempt: 2, at: new Date(Date.now() + 60_000) })];
  await recordAttempts(db, svc.service.boss, first);
  // A second job for each first attempt, as a job handed out twice after a lost heartbeat.
  const { boss } = svc.service;
  for (const rec of first) await boss.send(DELIVERY_QUEUE, { webhookId: rec.webhookId, attempt: 1 }, { id: randomUUID(), group: { id: rec.endpointId } });
  const { jobs } = await fetchDeliveries(boss, createKeyring(Buffer.from(TEST_MASTER_KEY, 'base64')), 10, 64);
  t.is(jobs.length, 2);
  const before = await ledger(svc);
  statements.length = 0;

  const again = jobs.map((job) => {
    const rec = first.find((r) => r.webhookId === job.data.webhookId)!;
    return { ...rec, job: { id: job.id, retryCount: job.retryCount }, result: failed, outcome: { kind: 'dead', reason: 'attempts_exhausted', detail: 'x' } } satisfies AttemptRecord;
  });
  t.deepEqual(await recordAttempts(db, boss, again), [{ status: 'stale', transition: null, disabled: null }, { status: 'stale', transition: null, disabled: null }]);
  const after = await ledger(svc);
  t.deepEqual({ ...after, jobs: [] }, { ...before, jobs: [] }, 'no webhook, attempt, dead letter or health row changed');
  const stateOf = (rows: Record<string, any>[], webhookId: string) => rows.filter((j) => j.webhook_id === webhookId && j.attempt === 1).map((j) => j.state);
  for (const rec of first) {
    t.deepEqual(stateOf(before.jobs, rec.webhookId), ['completed', 'active']);
    t.deepEqual(stateOf(after.jobs, rec.webhookId), ['completed', 'completed'], 'the second job completed');
  }
  t.is(statements.length, 4, `BEGIN, completion, settle and lock (nothing settled, nothing locked), COMMIT:\n${statements.join('\n---\n')}`);
});

test('a batch whose endpoint lost its health row fails whole and writes nothing', async (t) => {
  t.timeout(60_000);
  const { svc, endpoints, record, db } = await setUp(t, 1);
  const before = await ledger(svc);
  await query(svc.dbUrl, 'DELETE FROM hookrelay.endpoint_health WHERE endpoint_id = $1', [endpoints[1]]);
  const error = await t.throwsAsync(recordAttempts(db, svc.service.boss, [record(0, ok, { kind: 'delivered' }), record(1, ok, { kind: 'delivered' })]));
  t.regex(error!.message, /no health row/);
  const after = await ledger(svc);
  t.deepEqual({ ...after, health: [] }, { ...before, health: [] }, 'the transaction rolled back: webhooks, attempts and jobs as they were');
});
