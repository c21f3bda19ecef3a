import test from 'ava';
import { Webhook } from 'standardwebhooks';
import { startReceiver } from '../helpers/receiver.ts';
import { createEndpoint, submit, untilStatus } from '../helpers/api.ts';
import { startTestService } from '../helpers/service.ts';
import { query } from '../helpers/db.ts';

/**
 * Jobs that the SQL functions queue (replay, retry now, release of held webhooks) carry the
 * webhook's endpoint as their pg-boss group, like the jobs the API and the worker queue, so
 * the per-endpoint concurrency limit counts them on every worker.
 */

test('a replayed webhook\'s job is grouped by its endpoint, and the worker delivers it', async (t) => {
  const svc = await startTestService(t);
  const rx = await startReceiver(t);
  rx.fallback = { status: 500 };
  const endpointId = await createEndpoint(svc, rx.url);
  const id = await submit(svc, endpointId, { n: 1 });
  await untilStatus(svc, id, ['dead']);

  rx.fallback = { status: 200 };
  const [row] = await query(svc.dbUrl, `SELECT hookrelay.replay_webhook($1, 'test') AS replayed`, [id]);
  t.true(row!.replayed);
  const jobs = await query(svc.dbUrl, `SELECT group_id FROM hookrelay_queue.job WHERE name = 'deliveries' AND data->>'webhookId' = $1 AND (data->>'attempt')::int = 2`, [id]);
  t.deepEqual(jobs.map((j) => j.group_id), [endpointId]);
  await untilStatus(svc, id, ['delivered']);
  t.is(rx.received.filter((r) => r.headers['webhook-id'] === id).length, 2);
});

// A job queued without a group (by an older hookrelay, or by hand) still names its webhook;
// the worker reads its endpoint's keys after loading the webhook instead of beside it.
test('a job without a group is delivered and signed with its endpoint\'s key', async (t) => {
  const api = await startTestService(t, { HOOKRELAY_ROLES: 'api' });
  const rx = await startReceiver(t);
  const endpointId = await createEndpoint(api, rx.url);
  const id = await submit(api, endpointId, { n: 1 });
  const ungrouped = await query(api.dbUrl, `UPDATE hookrelay_queue.job SET group_id = NULL WHERE name = 'deliveries' AND data->>'webhookId' = $1 RETURNING id`, [id]);
  t.is(ungrouped.length, 1);
  await startTestService(t, { HOOKRELAY_ROLES: 'worker' }, { dbUrl: api.dbUrl });
  await untilStatus(api, id, ['delivered']);
  const [got] = rx.received.filter((r) => r.headers['webhook-id'] === id);
  const { secret } = (await (await api.api(`/api/v1/endpoints/${endpointId}/secret`)).json()) as { secret: string };
  t.deepEqual(new Webhook(secret).verify(got!.body, got!.headers), { n: 1 });
});
