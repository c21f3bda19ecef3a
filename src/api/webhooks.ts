import type { RetryPolicy } from '../config.ts';
import type { Webhook, Attempt } from '../db/schema.ts';
import { findReplay, requestHash, submitWebhook } from '../delivery/submit.ts';
import { HOP_BY_HOP } from '../delivery/send.ts';
import { AppError, badField, fieldError, type FieldError } from '../errors.ts';
import type { components } from './openapi-types.ts';
import type { Handler } from './app.ts';

type DeliverRequest = components['schemas']['DeliverRequest'];
type WebhookStatusBody = components['schemas']['WebhookStatus'];
type WebhookBody = components['schemas']['Webhook'];
type AttemptBody = components['schemas']['Attempt'];

/** Names a user header may not take: ours, the message framing, and hop-by-hop headers. */
function isReservedHeader(name: string): boolean {
  const lower = name.toLowerCase();
  return HOP_BY_HOP.has(lower) || lower === 'host' || lower === 'content-length' || lower === 'content-type'
    || lower.startsWith('webhook-') || lower.startsWith('x-webhook-');
}

/** Depth beyond which a payload is refused: deeper JSON is either a mistake or an attack. */
const MAX_PAYLOAD_DEPTH = 64;

/**
 * What jsonb cannot store (NUL characters, lone surrogates) or what no receiver should get
 * (absurd nesting), found before the database would answer with an error.
 */
function payloadProblem(value: unknown, path: string[], depth = 0): FieldError | undefined {
  const here = () => ['payload', ...path].join('.');
  if (depth > MAX_PAYLOAD_DEPTH) return fieldError(here(), `is nested deeper than ${MAX_PAYLOAD_DEPTH} levels`);
  if (typeof value === 'string') {
    if (value.includes('\u0000')) return fieldError(here(), 'must not contain the NUL character (\\u0000)');
    if (!value.isWellFormed()) return fieldError(here(), 'must not contain unpaired UTF-16 surrogates');
    return undefined;
  }
  if (typeof value === 'number' && !Number.isFinite(value)) return fieldError(here(), 'is a number outside the range JSON numbers can carry');
  if (value === null || typeof value !== 'object') return undefined;
  const entries = Array.isArray(value) ? value.map((v, i) => [String(i), v] as const) : Object.entries(value);
  for (const [key, child] of entries) {
    if (!Array.isArray(value) && (key.includes('\u0000') || !key.isWellFormed())) return fieldError(here(), 'has a key with a NUL character or an unpaired surrogate');
    const problem = payloadProblem(child, [...path, key], depth + 1);
    if (problem) return problem;
  }
  return undefined;
}

function normalizeUrl(input: string): string {
  let url: URL;
  try {
    url = new URL(input);
  } catch {
    throw badField('url', 'must be an absolute http or https URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw badField('url', 'must be an absolute http or https URL');
  if (url.username || url.password) throw badField('url', 'must not carry credentials; use headers instead');
  if (!url.hostname) throw badField('url', 'must name a host');
  url.hash = '';
  return url.href;
}

function resolvePolicy(given: DeliverRequest['retryPolicy'], defaults: RetryPolicy): RetryPolicy {
  const policy: RetryPolicy = { ...defaults, ...given };
  if (policy.maxDelayMs < policy.baseDelayMs) {
    const field = given?.maxDelayMs !== undefined ? 'retryPolicy.maxDelayMs' : 'retryPolicy.baseDelayMs';
    throw badField(field, `maxDelayMs (${policy.maxDelayMs}) must not be less than baseDelayMs (${policy.baseDelayMs})`);
  }
  return policy;
}

const iso = (d: Date | null) => (d ? d.toISOString() : null);

function statusBody(w: Webhook): WebhookStatusBody {
  return {
    id: w.id,
    status: w.status,
    attempts: w.attempts,
    lastAttemptAt: iso(w.last_attempt_at),
    nextAttemptAt: iso(w.next_attempt_at),
    deliveredAt: iso(w.delivered_at),
    error: w.last_error,
  };
}

function attemptBody(a: Attempt): AttemptBody {
  return {
    number: a.attempt,
    startedAt: a.started_at.toISOString(),
    durationMs: a.duration_ms,
    statusCode: a.status_code,
    outcome: a.outcome,
    errorClass: a.error_class,
    error: a.error,
    responseBody: a.response_body,
  };
}

const deliverWebhook: Handler = async (ctx, deps) => {
  const body = ctx.request.body as DeliverRequest;
  const url = normalizeUrl(body.url);
  const headers = body.headers ?? {};
  const reserved = Object.keys(headers).filter(isReservedHeader);
  if (reserved.length > 0) {
    throw new AppError(400, 'reserved_header', `headers may not set ${reserved.join(', ')}`, {
      errors: reserved.map((name) => fieldError(`headers.${name}`, 'is set by hookrelay and cannot be replaced')),
    });
  }
  const lowerNames = Object.keys(headers).map((n) => n.toLowerCase());
  const duplicate = lowerNames.find((n, i) => lowerNames.indexOf(n) !== i);
  if (duplicate) throw badField(`headers.${duplicate}`, 'is given twice (header names are case-insensitive)');
  // Checked before serializing: absurd nesting would overflow JSON.stringify's stack.
  const problem = payloadProblem(body.payload, []);
  if (problem) throw new AppError(400, 'validation_failed', `${problem.field} ${problem.message}`, { errors: [problem] });
  const serialized = JSON.stringify(body.payload);
  if (Buffer.byteLength(serialized) > deps.config.maxPayloadBytes) {
    throw new AppError(413, 'payload_too_large', `payload is larger than ${deps.config.maxPayloadBytes} bytes`, {
      errors: [fieldError('payload', `must be at most ${deps.config.maxPayloadBytes} bytes as JSON`)],
    });
  }
  const retryPolicy = resolvePolicy(body.retryPolicy, deps.config.retry);

  const idempotencyKey = ctx.get('idempotency-key') || undefined;
  const hash = idempotencyKey ? requestHash(body) : undefined;
  // A repeat of a committed request is answered without opening a transaction.
  const earlier = idempotencyKey ? await findReplay(deps.db, idempotencyKey, hash) : undefined;
  const accepted = earlier ?? await submitWebhook(deps.db, deps.boss, {
    url,
    payload: body.payload,
    headers,
    retryPolicy,
    idempotencyKey,
    requestHash: hash,
    requestId: ctx.state.requestId,
  });
  if (accepted.replayed) {
    ctx.set('Idempotent-Replayed', 'true');
  } else {
    deps.onSubmitted?.();
    ctx.state.log.info('webhook accepted', { webhookId: accepted.id, endpointId: accepted.endpointId });
  }
  ctx.status = 202;
  ctx.set('Location', `/api/v1/webhooks/${accepted.id}`);
  ctx.body = { id: accepted.id, endpointId: accepted.endpointId, status: 'pending' };
};

async function findWebhook(ctx: Parameters<Handler>[0], deps: Parameters<Handler>[1]): Promise<Webhook> {
  const id = ctx.params.id ?? '';
  const row = await deps.db.selectFrom('webhooks').selectAll().where('id', '=', id).executeTakeFirst();
  if (!row) throw new AppError(404, 'webhook_not_found', `no webhook with id ${JSON.stringify(id)}`);
  return row;
}

const getWebhookStatus: Handler = async (ctx, deps) => {
  ctx.body = statusBody(await findWebhook(ctx, deps));
};

const getWebhook: Handler = async (ctx, deps) => {
  const w = await findWebhook(ctx, deps);
  const attempts = await deps.db.selectFrom('attempts').selectAll().where('webhook_id', '=', w.id).orderBy('attempt').execute();
  const body: WebhookBody = {
    id: w.id,
    url: w.url,
    endpointId: w.endpoint_id,
    payload: w.payload,
    headers: w.headers,
    retryPolicy: w.retry_policy,
    status: w.status,
    attemptCount: w.attempts,
    attempts: attempts.map(attemptBody),
    createdAt: w.created_at.toISOString(),
    updatedAt: w.updated_at.toISOString(),
    lastAttemptAt: iso(w.last_attempt_at),
    nextAttemptAt: iso(w.next_attempt_at),
    deliveredAt: iso(w.delivered_at),
    error: w.last_error,
    idempotencyKey: w.idempotency_key,
  };
  ctx.body = body;
};

export const webhookHandlers: Record<string, Handler> = { deliverWebhook, getWebhookStatus, getWebhook };
