import test from 'ava';
import type pg from 'pg';
import type { PgBoss } from 'pg-boss';
import { randomUUID } from 'node:crypto';
import { createKeyring } from '../../src/endpoints/keyring.ts';
import { activeKeys } from '../../src/endpoints/keys.ts';
import { DELIVERY_QUEUE } from '../../src/delivery/queue.ts';
import { candidateLimit, fetchDeliveries, loadBatch, StatementNames, withLoad } from '../../src/delivery/worker.ts';
import { eventually, startTestService, TEST_MASTER_KEY } from '../helpers/service.ts';
import { startReceiver } from '../helpers/receiver.ts';

/**
 * The worker's fetch statement (src/delivery/worker.ts fetchDeliveries) claims jobs with
 * pg-boss's own SQL and, in the same round trip, reads each job's webhook, endpoint, circuit
 * and signing keys. What it reads must be exactly what the two separate queries it replaced
 * read; a job whose webhook it cannot find is still handed out, without an entry.
 */

test('one statement claims the jobs and reads what their attempts need, as the separate queries would', async (t) => {
  t.timeout(60_000);
  // API only: no worker takes the jobs before the test fetches them.
  const svc = await startTestService(t, { HOOKRELAY_ROLES: 'api' });
  const { boss, db } = svc.service;
  const keyring = createKeyring(Buffer.from(TEST_MASTER_KEY, 'base64'));

  const created = await svc.api('/api/v1/endpoints', { method: 'POST', json: { url: 'http://127.0.0.1:9/hook', headers: { 'x-tenant': 't1' } } });
  t.is(created.status, 201);
  const endpointId = ((await created.json()) as { id: string }).id;
  // Two active keys (a rotation with grace), and one long expired that must not be read.
  t.is((await svc.api(`/api/v1/endpoints/${endpointId}/secret/rotate`, { method: 'POST', json: { graceSeconds: 3600 } })).status, 200);
  await db.db.insertInto('signing_keys').values({
    id: 'key_expired_for_test', endpoint_id: endpointId, kind: 'hmac', sealed_secret: Buffer.from('not opened'), expires_at: new Date(Date.now() - 60_000),
  }).execute();

  const ids: string[] = [];
  for (const payload of [{ n: 1 }, { n: 2 }]) {
    const res = await svc.api('/api/v1/webhooks/deliver', { method: 'POST', json: { endpointId, payload } });
    t.is(res.status, 202);
    ids.push(((await res.json()) as { id: string }).id);
  }
  const adHoc = await svc.api('/api/v1/webhooks/deliver', { method: 'POST', json: { url: 'http://127.0.0.1:9/other', payload: { n: 3 }, headers: { 'x-one': '1' } } });
  t.is(adHoc.status, 202);
  ids.push(((await adHoc.json()) as { id: string }).id);
  // A job whose webhook does not exist (cannot happen through the API; the worker says so and completes it).
  const orphan = await boss.send(DELIVERY_QUEUE, { webhookId: 'wh_does_not_exist', attempt: 1 }, { id: randomUUID() });

  const { jobs, loaded } = await fetchDeliveries(boss, keyring, 10, 64);
  t.is(jobs.length, 4);
  t.deepEqual(new Set(jobs.map((j) => j.data.webhookId)), new Set([...ids, 'wh_does_not_exist']));
  for (const job of jobs) t.deepEqual(Object.keys(job).filter((k) => k.startsWith('__')), [], 'no column of the read is left on the job');
  t.false(loaded.has(orphan!), 'no entry for a job without its webhook');
  t.is(loaded.size, 3);

  // The same facts as the builder's queries, field for field and type for type.
  const separate = await loadBatch(db.db, ids);
  for (const job of jobs.filter((j) => j.id !== orphan)) {
    const entry = loaded.get(job.id)!;
    const webhook = separate.get(job.data.webhookId)!;
    t.deepEqual(entry.webhook, webhook);
    t.true(entry.webhook.next_attempt_at instanceof Date);
    const keys = (await activeKeys(db.db, keyring, [webhook.endpoint_id])).get(webhook.endpoint_id);
    t.deepEqual(entry.keys, keys);
  }
  const keysOfEndpoint = loaded.get(jobs.find((j) => j.data.webhookId === ids[0])!.id)!.keys;
  t.is(keysOfEndpoint.length, 2, 'both keys of the rotation, not the expired one');

  // The jobs are claimed: a second fetch finds nothing.
  t.is((await fetchDeliveries(boss, keyring, 10, 64)).jobs.length, 0);
});

test('a fetch says whether it looked at every due job: short of candidates, or cut to an endpoint\'s free slots', async (t) => {
  t.timeout(60_000);
  const svc = await startTestService(t, { HOOKRELAY_ROLES: 'api' });
  const { boss } = svc.service;
  const keyring = createKeyring(Buffer.from(TEST_MASTER_KEY, 'base64'));
  const submit = async (url: string, n: number) => {
    const res = await svc.api('/api/v1/webhooks/deliver', { method: 'POST', json: { url, payload: { n } } });
    t.is(res.status, 202);
    return ((await res.json()) as { id: string }).id;
  };
  // Two for endpoint A, then one for endpoint B (jobs are taken oldest first).
  const a1 = await submit('http://127.0.0.1:9/a', 1);
  const a2 = await submit('http://127.0.0.1:9/a', 2);
  const b1 = await submit('http://127.0.0.1:9/b', 3);

  // One job in flight per endpoint, two per fetch: the two oldest candidates are both A's, one
  // is left out for the limit, and B's job was not looked at. Not drained.
  const first = await fetchDeliveries(boss, keyring, 2, 1);
  t.is(first.jobs.length, 1);
  // Which of A's two goes first is pg-boss's choice (it ranks an endpoint's candidates by job id).
  t.true([a1, a2].includes(first.jobs[0]!.data.webhookId));
  t.false(first.drained, 'the LIMIT was reached: more due jobs may be behind it');
  for (const job of first.jobs) t.deepEqual(Object.keys(job).filter((k) => k.startsWith('__')), [], 'the count is not left on the job');

  // The next fetch finds B's job (A is at its limit); it looked at every due job.
  const second = await fetchDeliveries(boss, keyring, 10, 1);
  t.deepEqual(second.jobs.map((j) => j.data.webhookId), [b1]);
  t.true(second.drained);

  // And one that finds nothing is drained too.
  const third = await fetchDeliveries(boss, keyring, 10, 1);
  t.is(third.jobs.length, 0);
  t.true(third.drained);
});

test('the count of candidates goes into pg-boss\'s own claim, against the LIMIT of its text; another shape is left alone', async (t) => {
  t.timeout(60_000);
  const svc = await startTestService(t, { HOOKRELAY_ROLES: 'api' });
  const sent = recordQueries(svc.service.boss);
  await fetchDeliveries(svc.service.boss, createKeyring(Buffer.from(TEST_MASTER_KEY, 'base64')), 7, 64);
  const claim = sent.map(({ query }) => textOf(query)).find((q) => q.includes('__hr_'))!;
  t.regex(claim, /RETURNING \(SELECT count\(\*\) FROM next\)::int AS "__hr_candidates", j\./);
  t.is(candidateLimit(claim), 7, 'the LIMIT pg-boss wrote for a fetch of 7');
  // Not pg-boss 12's claim: wrapped to load the batch, but no count added (and so never drained by it).
  const other = 'WITH picked AS (SELECT id FROM q LIMIT 5) UPDATE q SET x = 1 RETURNING j.id';
  t.is(candidateLimit(other), undefined);
  t.false(withLoad(other).includes('__hr_candidates'));
});

/** pg-boss's pool (its node-postgres adapter keeps it as `pool`). */
function poolOf(boss: PgBoss): pg.Pool {
  return (boss.getDb() as unknown as { pool: pg.Pool }).pool;
}

/**
 * Every query a connection of pg-boss's pool is handed from now on, as it was handed (a text
 * or a named query), with the connection it went to: what PostgreSQL receives, whether it came
 * through pg-boss's `executeSql` or a checkout of the fetch's own.
 */
function recordQueries(boss: PgBoss): Array<{ query: unknown; client: pg.PoolClient }> {
  const pool = poolOf(boss);
  const sent: Array<{ query: unknown; client: pg.PoolClient }> = [];
  const wrapped = new WeakSet<pg.PoolClient>();
  pool.on('acquire', (client) => {
    if (wrapped.has(client)) return;
    wrapped.add(client);
    const query = client.query.bind(client) as (...args: unknown[]) => unknown;
    (client as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
      sent.push({ query: args[0], client });
      return query(...args);
    };
  });
  return sent;
}

const nameOf = (q: unknown) => (typeof q === 'object' && q !== null ? (q as { name?: string }).name : undefined);
const textOf = (q: unknown) => (typeof q === 'string' ? q : (q as { text: string }).text);

test('with statement names the fetch is a named (prepared) statement, a few texts at most', async (t) => {
  t.timeout(60_000);
  const svc = await startTestService(t, { HOOKRELAY_ROLES: 'api' });
  const { boss } = svc.service;
  const keyring = createKeyring(Buffer.from(TEST_MASTER_KEY, 'base64'));
  const sent = recordQueries(boss);
  const statements = new StatementNames(2);
  const res = await svc.api('/api/v1/webhooks/deliver', { method: 'POST', json: { url: 'http://127.0.0.1:9/hook', payload: { n: 1 } } });
  t.is(res.status, 202);
  t.is((await fetchDeliveries(boss, keyring, 10, 64, statements)).loaded.size, 1);
  t.is((await fetchDeliveries(boss, keyring, 10, 64, statements)).jobs.length, 0);
  await fetchDeliveries(boss, keyring, 5, 64, statements);
  await fetchDeliveries(boss, keyring, 3, 64, statements);
  const fetches = sent.filter(({ query }) => textOf(query).includes('__hr_'));
  t.is(fetches.length, 4);
  const names = fetches.map(({ query }) => nameOf(query));
  // Same LIMIT, same text, same name; a third text is past the limit of two and runs unnamed.
  t.truthy(names[0]);
  t.is(names[1], names[0]);
  t.truthy(names[2]);
  t.not(names[2], names[0]);
  t.is(names[3], undefined);

  // Each connection that ran a named fetch was set to plan generically before its first one,
  // and only then.
  for (const { query, client } of fetches.filter((f) => nameOf(f.query) !== undefined)) {
    const own = sent.filter((s) => s.client === client).map((s) => textOf(s.query));
    const set = own.indexOf('SET plan_cache_mode = force_generic_plan');
    t.true(set >= 0 && set < own.indexOf(textOf(query)), 'the session is set before its first named fetch');
    t.is(own.filter((q) => q.startsWith('SET plan_cache_mode')).length, 1, 'once per connection');
  }
});

test('the named fetch is planned once per connection: generic plans only, however often it runs', async (t) => {
  t.timeout(60_000);
  const svc = await startTestService(t, { HOOKRELAY_ROLES: 'api' });
  const { boss } = svc.service;
  const keyring = createKeyring(Buffer.from(TEST_MASTER_KEY, 'base64'));
  const statements = new StatementNames();
  for (let n = 0; n < 3; n++) {
    const res = await svc.api('/api/v1/webhooks/deliver', { method: 'POST', json: { url: 'http://127.0.0.1:9/hook', payload: { n } } });
    t.is(res.status, 202);
  }
  // Past the five custom plans PostgreSQL makes by default before it weighs a generic one.
  let claimed = 0;
  for (let i = 0; i < 12; i++) claimed += (await fetchDeliveries(boss, keyring, 10, 64, statements)).jobs.length;
  t.is(claimed, 3);
  // Every connection of the pool, asked what its prepared fetches cost to plan.
  const pool = poolOf(boss);
  const clients = await Promise.all(Array.from({ length: pool.totalCount }, () => pool.connect()));
  let generic = 0;
  let custom = 0;
  try {
    for (const client of clients) {
      const { rows } = await client.query<{ generic_plans: string; custom_plans: string }>(`SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE name LIKE 'hookrelay_fetch_%'`);
      for (const row of rows) {
        generic += Number(row.generic_plans);
        custom += Number(row.custom_plans);
      }
    }
  } finally {
    for (const client of clients) client.release();
  }
  t.is(custom, 0, 'no plan made for the values of one run');
  t.is(generic, 12, 'each run on the generic plan');
});

test('HOOKRELAY_WORKER_PREPARED_FETCH=false: the worker fetches with unnamed statements and delivers', async (t) => {
  t.timeout(60_000);
  const svc = await startTestService(t, { HOOKRELAY_WORKER_PREPARED_FETCH: 'false' });
  const rx = await startReceiver(t);
  const sent = recordQueries(svc.service.boss);
  const res = await svc.api('/api/v1/webhooks/deliver', { method: 'POST', json: { url: `${rx.url}/hook`, payload: { n: 1 } } });
  t.is(res.status, 202);
  await eventually(async () => (rx.received.length === 1 ? true : undefined), 20_000);
  const fetches = sent.filter(({ query }) => textOf(query).includes('__hr_'));
  t.true(fetches.length >= 1);
  t.true(fetches.every(({ query }) => nameOf(query) === undefined), 'every fetch unnamed');
  t.false(sent.some(({ query }) => textOf(query).startsWith('SET plan_cache_mode')), 'no session setting either');
});

test('jobs whose keys do not open are still handed out, without an entry, for the batch loader to fail and the queue to retry', async (t) => {
  t.timeout(60_000);
  const svc = await startTestService(t, { HOOKRELAY_ROLES: 'api' });
  const res = await svc.api('/api/v1/webhooks/deliver', { method: 'POST', json: { url: 'http://127.0.0.1:9/hook', payload: { n: 1 } } });
  t.is(res.status, 202);
  // Another master key than the one the keys were sealed with.
  const wrong = createKeyring(Buffer.alloc(32, 9));
  const { jobs, loaded } = await fetchDeliveries(svc.service.boss, wrong, 10, 64);
  t.is(jobs.length, 1, 'the claimed job is returned, not lost in a thrown error');
  t.is(loaded.size, 0);
});
