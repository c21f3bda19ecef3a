import { eventually, type TestService } from './service.ts';

/** Small calls to a test service's API that many tests make, each failing loudly on a surprise. */

export async function createEndpoint(svc: TestService, url: string, extra: object = {}): Promise<string> {
  const res = await svc.api('/api/v1/endpoints', { method: 'POST', json: { url, ...extra } });
  if (res.status !== 201) throw new Error(`endpoint create answered ${res.status}: ${await res.text()}`);
  return ((await res.json()) as { id: string }).id;
}

/** Submits to an endpoint by id; one attempt unless a retry policy says otherwise. */
export async function submit(svc: TestService, endpointId: string, payload: unknown, retryPolicy: object = { maxAttempts: 1 }): Promise<string> {
  const res = await svc.api('/api/v1/webhooks/deliver', { method: 'POST', json: { endpointId, payload, retryPolicy } });
  if (res.status !== 202) throw new Error(`deliver answered ${res.status}: ${await res.text()}`);
  return ((await res.json()) as { id: string }).id;
}

export async function webhookStatus(svc: TestService, id: string): Promise<any> {
  return (await svc.api(`/api/v1/webhooks/${id}/status`)).json();
}

/** Waits until the webhook is in one of the `wanted` states; resolves with its status. */
export function untilStatus(svc: TestService, id: string, wanted: string[], timeoutMs = 30_000): Promise<any> {
  return eventually(async () => {
    const s = await webhookStatus(svc, id);
    return wanted.includes(s.status) ? s : undefined;
  }, timeoutMs, 100);
}

/**
 * A body that passes validation for each operation that takes one, so that only the token
 * decides the answer (auth and scope tests).
 */
export const VALID_BODIES: Record<string, unknown> = {
  deliverWebhook: { url: 'http://127.0.0.1:1/x', payload: 1 },
  createEndpoint: { url: 'http://127.0.0.1:1/endpoint' },
  updateEndpoint: { description: 'changed' },
  rotateEndpointSecret: {},
  verifySignature: { body: '{}', headers: {}, secret: 'whsec_' + Buffer.alloc(32, 1).toString('base64') },
  retryWebhooks: { status: 'dead' },
  replayDeadLetters: {},
  createApiToken: { name: 'made by an auth or scope test' },
};
