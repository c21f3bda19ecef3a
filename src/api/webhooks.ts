import type { Webhook, Attempt, WebhookStatus } from '../db/schema.ts';
import { createCursorCodec } from './cursor.ts';
import { findReplay, requestHash } from '../delivery/submit.ts';
import { createGroupCommit, type GroupCommit } from '../delivery/group-commit.ts';
import { HOP_BY_HOP } from '../delivery/send.ts';
import { isNeverAllowedUrl, type AllowList } from '../delivery/address-policy.ts';
import { AppError, badField, fieldError, parseTime, type FieldError } from '../errors.ts';
import type { components } from './openapi-types.ts';
import type { Handler } from './app.ts';
import { traceSubmission } from '../observability/tracing.ts';
import type { Accepted } from '../delivery/submit.ts';

type DeliverRequest = components['schemas']['DeliverRequest'];
type WebhookStatusBody = components['schemas']['WebhookStatus'];
type WebhookBody = components['schemas']['Webhook'];
type AttemptBody = components['schemas']['Attempt'];
type WebhookSummaryBody = components['schemas']['WebhookSummary'];

/** Names a user header may not take: ours, the message framing, and hop-by-hop headers. */
export function isReservedHeader(name: string): boolean {
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
/** Object keys a payload may have in all: more is an attack on whoever walks it, not an event. */
export const MAX_PAYLOAD_KEYS = 10_000;

function payloadProblem(value: unknown, path: string[], depth = 0, counter = { keys: 0 }): FieldError | undefined {
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
  if (!Array.isArray(value)) {
    counter.keys += entries.length;
    if (counter.keys > MAX_PAYLOAD_KEYS) return fieldError('payload', `has more than ${MAX_PAYLOAD_KEYS} object keys in all`);
  }
  for (const [key, child] of entries) {
    if (!Array.isArray(value) && (key.includes('\u0000') || !key.isWellFormed())) return fieldError(here(), 'has a key with a NUL character or an unpaired surrogate');
    const problem = payloadProblem(child, [...path, key], depth + 1, counter);
    if (problem) return problem;
  }
  return undefined;
}

export function normalizeUrl(input: string): string {
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

/**
 * A normalized URL that could ever be delivered to, or a 400 `destination_not_allowed` naming
 * `url`: an IP literal (in any notation) in a refused range the allow list does not cover, a
 * localhost name, a metadata address. Other names are checked when a connection is made.
 */
export function checkDestination(url: string, allow: AllowList): string {
  if (isNeverAllowedUrl(url, allow)) {
    throw badField('url', 'is not an allowed destination: deliveries go to public addresses only', 'destination_not_allowed');
  }
  return url;
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

/**
 * One group commit per app: concurrent submissions share transactions (src/delivery/group-commit.ts).
 * Keyed by the app's deps, which live as long as the app.
 */
const groupCommits = new WeakMap<Parameters<Handler>[1], GroupCommit>();
function groupCommitOf(deps: Parameters<Handler>[1]): GroupCommit {
  let gc = groupCommits.get(deps);
  if (!gc) {
    gc = createGroupCommit(deps.db, { boss: deps.boss, keyring: deps.keyring, retryDefaults: deps.config.retry });
    groupCommits.set(deps, gc);
  }
  return gc;
}

const deliverWebhook: Handler = async (ctx, deps) => {
  const body = ctx.request.body as DeliverRequest;
  if ((body.url === undefined) === (body.endpointId === undefined)) {
    throw new AppError(400, 'validation_failed', 'give exactly one of url and endpointId', {
      errors: [fieldError(body.url === undefined ? 'url' : 'endpointId', body.url === undefined ? 'is required (or endpointId)' : 'cannot be given together with url')],
    });
  }
  const url = body.url === undefined ? undefined : checkDestination(normalizeUrl(body.url), deps.config.allowNetworks);
  const headers = checkHeaders(body.headers ?? {});
  // Checked before serializing: absurd nesting would overflow JSON.stringify's stack.
  const problem = payloadProblem(body.payload, []);
  if (problem) throw new AppError(400, 'validation_failed', `${problem.field} ${problem.message}`, { errors: [problem] });
  const serialized = JSON.stringify(body.payload);
  if (Buffer.byteLength(serialized) > deps.config.maxPayloadBytes) {
    throw new AppError(413, 'payload_too_large', `payload is larger than ${deps.config.maxPayloadBytes} bytes`, {
      errors: [fieldError('payload', `must be at most ${deps.config.maxPayloadBytes} bytes as JSON`)],
    });
  }

  const idempotencyKey = ctx.get('idempotency-key') || undefined;
  const hash = idempotencyKey ? requestHash(body) : undefined;
  // A repeat of a committed request is answered without opening a transaction.
  const earlier = idempotencyKey ? await findReplay(deps.db, idempotencyKey, hash) : undefined;
  // Inside the submission span; the trace it continues (or starts, with an SDK) is stored.
  const accepted = earlier ?? await traceSubmission<Accepted>(ctx.get('traceparent') || undefined, ctx.state.requestId, (trace) => groupCommitOf(deps).submit({
    url,
    endpointId: body.endpointId,
    body: serialized,
    headers,
    retryPolicy: body.retryPolicy,
    idempotencyKey,
    requestHash: hash,
    requestId: ctx.state.requestId,
    traceparent: trace.traceparent,
  }).then((a) => (trace.accepted(a.id, a.endpointId), a)));
  if (accepted.replayed) {
    ctx.set('Idempotent-Replayed', 'true');
  } else {
    deps.onSubmitted?.();
    deps.metrics?.webhookAccepted();
    ctx.state.log.info('webhook accepted', { webhookId: accepted.id, endpointId: accepted.endpointId });
  }
  ctx.status = 202;
  ctx.set('Location', `/api/v1/webhooks/${accepted.id}`);
  ctx.body = { id: accepted.id, endpointId: accepted.endpointId, status: accepted.status };
};

/**
 * Header rules the schema cannot state: reserved names (ours, framing, hop-by-hop) and names
 * given twice in different case. Shared by webhooks and endpoints.
 */
export function checkHeaders(headers: Record<string, string>, field = 'headers'): Record<string, string> {
  const reserved = Object.keys(headers).filter(isReservedHeader);
  if (reserved.length > 0) {
    throw new AppError(400, 'reserved_header', `${field} may not set ${reserved.join(', ')}`, {
      errors: reserved.map((name) => fieldError(`${field}.${name}`, 'is set by hookrelay and cannot be replaced')),
    });
  }
  const lowerNames = Object.keys(headers).map((n) => n.toLowerCase());
  const duplicate = lowerNames.find((n, i) => lowerNames.indexOf(n) !== i);
  if (duplicate) throw badField(`${field}.${duplicate}`, 'is given twice (header names are case-insensitive)');
  return headers;
}

const listWebhooks: Handler = async (ctx, deps) => {
  const q = ctx.state.query as { limit?: number; cursor?: string; status?: WebhookStatus; endpointId?: string; createdAfter?: string; createdBefore?: string };
  const limit = q.limit ?? 50;
  const after = q.cursor ? webhookCursor(deps).decode(q.cursor).id : undefined;
  let query = deps.db.selectFrom('webhooks').selectAll();
  if (q.status) query = query.where('status', '=', q.status);
  if (q.endpointId) query = query.where('endpoint_id', '=', q.endpointId);
  if (q.createdAfter) query = query.where('created_at', '>', parseTime(q.createdAfter, 'createdAfter'));
  if (q.createdBefore) query = query.where('created_at', '<', parseTime(q.createdBefore, 'createdBefore'));
  // Newest first by id: ids are unique and time-ordered, so pages neither repeat nor skip a
  // webhook, and webhooks that arrive meanwhile sort before the cursor, never into later pages.
  if (after) query = query.where('id', '<', after);
  const rows = await query.orderBy('id', 'desc').limit(limit + 1).execute();
  const page = rows.slice(0, limit);
  const last = page[page.length - 1];
  ctx.body = {
    data: page.map(summaryBody),
    nextCursor: rows.length > limit && last ? webhookCursor(deps).encode({ id: last.id }) : null,
  };
};

const webhookCursor = (deps: Parameters<Handler>[1]) => createCursorCodec(deps.keyring.derive('cursor'), 'webhooks');

function summaryBody(w: Webhook): WebhookSummaryBody {
  return {
    id: w.id,
    url: w.url,
    endpointId: w.endpoint_id,
    status: w.status,
    attempts: w.attempts,
    createdAt: w.created_at.toISOString(),
    lastAttemptAt: iso(w.last_attempt_at),
    nextAttemptAt: iso(w.next_attempt_at),
    deliveredAt: iso(w.delivered_at),
    error: w.last_error,
  };
}

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
    payload: JSON.parse(w.body),
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

export const webhookHandlers: Record<string, Handler> = { deliverWebhook, getWebhookStatus, getWebhook, listWebhooks };
