// The typed client end to end: submit a webhook and wait for its delivery, rotate the
// endpoint's key, and replay a webhook that died. Each step prints one JSON line.
//
//   HOOKRELAY_URL=http://localhost:8080 HOOKRELAY_TOKEN=hr_… \
//   RECEIVER_URL=https://receiver.example/hooks node examples/client/demo.ts
//
// The third step sends one webhook with a single attempt to FAILING_URL (default
// RECEIVER_URL): when it dies (the receiver did not answer 2xx), it is replayed.
import { createHookrelayClient, replayDeadWebhook, rotateSecret, submitWebhook, waitForStatus } from './hookrelay-client.ts';

const env = (name: string, fallback?: string): string => {
  const value = process.env[name] ?? fallback;
  if (!value) {
    console.error(`demo: set ${name}`);
    process.exit(2);
  }
  return value;
};

const client = createHookrelayClient(env('HOOKRELAY_URL', 'http://localhost:8080'), env('HOOKRELAY_TOKEN'));
const receiverUrl = env('RECEIVER_URL');
const failingUrl = env('FAILING_URL', receiverUrl);
const print = (step: string, data: object) => console.log(JSON.stringify({ step, ...data }));

// 1. Submit, with an idempotency key: a retry of this request cannot make a second webhook.
const orderId = Date.now();
const accepted = await submitWebhook(client, { url: receiverUrl, payload: { type: 'order.paid', orderId } }, `order-${orderId}-paid`);
print('submitted', accepted);
const delivered = await waitForStatus(client, accepted.id);
print('finished', delivered);

// 2. Rotate the endpoint's signing key; the old key keeps signing for an hour.
const rotation = await rotateSecret(client, accepted.endpointId, 3600);
print('rotated', { endpointId: accepted.endpointId, keyId: rotation.keyId, previousKeyId: rotation.previousKeyId, previousKeyExpiresAt: rotation.previousKeyExpiresAt });

// 3. One attempt only: if the receiver fails it, the webhook is dead at once; replay it.
const once = await submitWebhook(client, { url: failingUrl, payload: { type: 'order.refunded', orderId }, retryPolicy: { maxAttempts: 1 } });
const outcome = await waitForStatus(client, once.id);
print('finished', outcome);
if (outcome.status === 'dead') {
  const replayed = await replayDeadWebhook(client, once);
  print('replayed', replayed);
  print('finished', await waitForStatus(client, once.id));
}
