import test from 'ava';
import { startReceiver } from '../helpers/receiver.ts';
import { eventually, startTestService } from '../helpers/service.ts';
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
  const created = await svc.api('/api/v1/endpoints', { method: 'POST', json: { url: rx.url } });
  const endpointId = ((await created.json()) as { id: string }).id;
  const submitted = await svc.api('/api/v1/webhooks/deliver', { method: 'POST', json: { endpointId, payload: { n: 1 }, retryPolicy: { maxAttempts: 1 } } });
  const id = ((await submitted.json()) as { id: string }).id;
  const status = async () => ((await (await svc.api(`/api/v1/webhooks/${id}/status`)).json()) as { status: string }).status;
  await eventually(async () => (await status()) === 'dead' || undefined, 30_000, 100);

  rx.fallback = { status: 200 };
  const [row] = await query(svc.dbUrl, `SELECT hookrelay.replay_webhook($1, 'test') AS replayed`, [id]);
  t.true(row!.replayed);
  const jobs = await query(svc.dbUrl, `SELECT group_id FROM hookrelay_queue.job WHERE name = 'deliveries' AND data->>'webhookId' = $1 AND (data->>'attempt')::int = 2`, [id]);
  t.deepEqual(jobs.map((j) => j.group_id), [endpointId]);
  await eventually(async () => (await status()) === 'delivered' || undefined, 30_000, 100);
  t.is(rx.received.filter((r) => r.headers['webhook-id'] === id).length, 2);
});
