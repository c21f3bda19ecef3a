// A typed hookrelay client: openapi-fetch over the types openapi-typescript generates from
// openapi.yaml. In your own project, generate the types from a running instance:
//   npx openapi-typescript http://localhost:8080/openapi.yaml -o hookrelay-types.ts
// and import from that file instead of this repository's src/api/openapi-types.ts.
import createClient, { type Client } from 'openapi-fetch';
import type { components, paths } from '../../src/api/openapi-types.ts';

export type HookrelayClient = Client<paths>;
export type DeliverRequest = components['schemas']['DeliverRequest'];
export type WebhookStatus = components['schemas']['WebhookStatus'];
export type Status = WebhookStatus['status'];
export type Problem = components['schemas']['Problem'];

/** An answer other than 2xx, with hookrelay's problem document (RFC 9457). */
export class HookrelayError extends Error {
  readonly status: number;
  readonly problem: Problem | undefined;
  constructor(status: number, problem: Problem | undefined) {
    super(`hookrelay answered ${status}: ${problem?.detail ?? problem?.title ?? 'no details'}`);
    this.status = status;
    this.problem = problem;
  }
}

/** A client for the hookrelay at `baseUrl`, sending `token` with every request. */
export function createHookrelayClient(baseUrl: string, token: string): HookrelayClient {
  const client = createClient<paths>({ baseUrl });
  client.use({
    onRequest({ request }) {
      request.headers.set('Authorization', `Bearer ${token}`);
      return request;
    },
  });
  return client;
}

/** The data of a 2xx answer; anything else is a HookrelayError. */
function unwrap<T>(result: { data?: T; error?: unknown; response: Response }): T {
  if (result.data !== undefined && result.response.ok) return result.data;
  throw new HookrelayError(result.response.status, result.error as Problem | undefined);
}

/**
 * Submits a webhook. With an idempotency key (an order id, say), sending the same request
 * again after a timeout or a crash answers the first submission instead of making a second.
 */
export async function submitWebhook(client: HookrelayClient, request: DeliverRequest, idempotencyKey?: string) {
  return unwrap(await client.POST('/api/v1/webhooks/deliver', {
    body: request,
    params: { header: idempotencyKey === undefined ? {} : { 'Idempotency-Key': idempotencyKey } },
  }));
}

export async function getStatus(client: HookrelayClient, id: string): Promise<WebhookStatus> {
  return unwrap(await client.GET('/api/v1/webhooks/{id}/status', { params: { path: { id } } }));
}

/** Polls the webhook's status until it is one of `until` (default: delivered or dead). */
export async function waitForStatus(client: HookrelayClient, id: string, until: readonly Status[] = ['delivered', 'dead'], options: { timeoutMs?: number; everyMs?: number } = {}): Promise<WebhookStatus> {
  const deadline = Date.now() + (options.timeoutMs ?? 60_000);
  for (;;) {
    const status = await getStatus(client, id);
    if (until.includes(status.status)) return status;
    if (Date.now() > deadline) throw new Error(`webhook ${id} is still ${status.status} after ${options.timeoutMs ?? 60_000} ms`);
    await new Promise((resolve) => setTimeout(resolve, options.everyMs ?? 250));
  }
}

/**
 * Rotates the endpoint's signing key. Deliveries carry a signature with the old key and one
 * with the new for `graceSeconds`, so receivers can switch secrets without missing one.
 */
export async function rotateSecret(client: HookrelayClient, endpointId: string, graceSeconds = 86_400) {
  const rotation = unwrap(await client.POST('/api/v1/endpoints/{id}/secret/rotate', { params: { path: { id: endpointId } }, body: { graceSeconds } }));
  const { secret } = unwrap(await client.GET('/api/v1/endpoints/{id}/secret', { params: { path: { id: endpointId } } }));
  return { ...rotation, secret };
}

/** Replays the dead letter of a dead webhook: same webhook id, a fresh attempt budget. */
export async function replayDeadWebhook(client: HookrelayClient, webhook: { id: string; endpointId: string }) {
  let cursor: string | undefined;
  do {
    const page = unwrap(await client.GET('/api/v1/dead-letters', {
      params: { query: { endpointId: webhook.endpointId, replayed: false, limit: 100, ...(cursor ? { cursor } : {}) } },
    }));
    const letter = page.data.find((d) => d.webhookId === webhook.id);
    if (letter) return unwrap(await client.POST('/api/v1/dead-letters/{id}/replay', { params: { path: { id: letter.id } } }));
    cursor = page.nextCursor ?? undefined;
  } while (cursor);
  throw new Error(`webhook ${webhook.id} has no dead letter waiting for a replay`);
}
