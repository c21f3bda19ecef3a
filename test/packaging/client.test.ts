import test from 'ava';
import { Webhook } from 'standardwebhooks';
import { createHookrelayClient, HookrelayError, submitWebhook, waitForStatus } from '../../examples/client/hookrelay-client.ts';
import { ROOT, run } from '../helpers/process.ts';
import { startReceiver } from '../helpers/receiver.ts';
import { startTestService } from '../helpers/service.ts';

/**
 * examples/client (openapi-fetch with the generated types) against a live service and a real
 * receiver: the demo script as a user runs it, and the client's functions directly.
 */

test('the demo submits, waits for delivery, rotates the key, and replays a webhook that died', async (t) => {
  t.timeout(120_000);
  const svc = await startTestService(t);
  const receiver = await startReceiver(t);
  // The first webhook is delivered; the single-attempt one fails, then its replay succeeds.
  receiver.script({ status: 200 }, { status: 500, body: 'down for maintenance' }, { status: 204 });

  const result = await run(t, process.execPath, [`${ROOT}examples/client/demo.ts`], {
    env: { ...process.env, HOOKRELAY_URL: svc.url, HOOKRELAY_TOKEN: svc.token, RECEIVER_URL: `${receiver.url}/hooks` },
    timeoutMs: 90_000,
  });
  t.is(result.code, 0, result.stderr);
  const steps = result.stdout.trim().split('\n').map((line) => JSON.parse(line) as Record<string, any>);
  t.deepEqual(steps.map((s) => `${s.step}${s.status ? ` ${s.status}` : ''}`), [
    'submitted pending',
    'finished delivered',
    'rotated',
    'finished dead',
    'replayed pending',
    'finished delivered',
  ]);
  const [submitted, first, rotated, died, replayed, last] = steps as [Record<string, any>, ...Record<string, any>[]];
  t.is(first!.id, submitted.id);
  t.is(first!.attempts, 1);
  t.truthy(rotated!.keyId);
  t.not(rotated!.keyId, rotated!.previousKeyId);
  t.is(died!.attempts, 1);
  t.regex(died!.error ?? '', /500/);
  t.is(replayed!.webhookId, died!.id);
  t.is(last!.id, died!.id);

  // What the receiver saw: three requests; the died webhook and its replay share one id, and
  // after the rotation each carries a signature under the old key and one under the new.
  const got = await receiver.waitFor(3);
  t.is(got.length, 3);
  t.is(got[0]!.headers['webhook-id'], submitted.id);
  t.is(got[1]!.headers['webhook-id'], died!.id);
  t.is(got[2]!.headers['webhook-id'], died!.id);
  t.deepEqual(JSON.parse(got[2]!.body), { type: 'order.refunded', orderId: JSON.parse(got[0]!.body).orderId });
  const secret = ((await (await svc.api(`/api/v1/endpoints/${submitted.endpointId}/secret`)).json()) as { secret: string }).secret;
  for (const delivery of got.slice(1)) {
    t.is(delivery.headers['webhook-signature']!.split(' ').length, 2);
    t.notThrows(() => new Webhook(secret).verify(delivery.body, delivery.headers));
  }
});

test('the client: an idempotency key answers the first submission again, and errors carry the problem', async (t) => {
  const svc = await startTestService(t);
  const receiver = await startReceiver(t);
  const client = createHookrelayClient(svc.url, svc.token);
  const request = { url: `${receiver.url}/hooks`, payload: { type: 'invoice.sent', invoice: 7 } };
  const first = await submitWebhook(client, request, 'invoice-7-sent');
  const again = await submitWebhook(client, request, 'invoice-7-sent');
  t.deepEqual(again.id, first.id);
  t.is((await waitForStatus(client, first.id)).status, 'delivered');
  await receiver.waitFor(1);
  t.is(receiver.received.length, 1);

  // A different body under the same key is a 409; a bad field a 400 naming it.
  const conflict = await t.throwsAsync(submitWebhook(client, { ...request, payload: { other: true } }, 'invoice-7-sent'), { instanceOf: HookrelayError });
  t.is(conflict?.status, 409);
  const invalid = await t.throwsAsync(submitWebhook(client, { url: 'not a url', payload: {} }), { instanceOf: HookrelayError });
  t.is(invalid?.status, 400);
  t.true(invalid?.problem?.errors?.some((e) => e.field === 'url'));

  // A wrong token is refused.
  const stranger = createHookrelayClient(svc.url, 'not-a-token');
  const refused = await t.throwsAsync(waitForStatus(stranger, first.id), { instanceOf: HookrelayError });
  t.is(refused?.status, 401);
});
