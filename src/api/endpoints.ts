import type { Endpoint, EndpointHealth } from '../db/schema.ts';
import { isAsymmetric, MAX_SECRET_BYTES, MIN_SECRET_BYTES, PRIVATE_KEY_PREFIX, SECRET_PREFIX, type SignatureAlgorithm } from '../delivery/sign.ts';
import { currentKey, DEFAULT_GRACE_SECONDS, kindOf, rotateKey, type KeyKind } from '../endpoints/keys.ts';
import { createEndpoint, deleteEndpoint, healthOf, listEndpoints, requireEndpoint, updateEndpoint } from '../endpoints/store.ts';
import { AppError, badField } from '../errors.ts';
import type { components } from './openapi-types.ts';
import type { Handler } from './app.ts';
import { createCursorCodec } from './cursor.ts';
import { checkDestination, checkHeaders, normalizeUrl } from './webhooks.ts';

type EndpointBody = components['schemas']['Endpoint'];
type EndpointCreate = components['schemas']['EndpointCreate'];
type EndpointUpdate = components['schemas']['EndpointUpdate'];
type RotateRequest = components['schemas']['RotateRequest'];

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/**
 * A key the caller brings must fit the endpoint's kind: `whsec_` + base64 of 24 to 64 bytes
 * for HMAC (Standard Webhooks asks for at least 24), `whsk_` + base64 of a 32-byte seed for
 * ed25519. Anything else is a 400 before anything is stored.
 */
export function checkSecret(secret: string, kind: KeyKind, field = 'secret'): string {
  if (kind === 'hmac') {
    const body = secret.slice(SECRET_PREFIX.length);
    const bytes = Buffer.from(body, 'base64');
    if (!secret.startsWith(SECRET_PREFIX) || !BASE64.test(body)) throw badField(field, 'must be whsec_ followed by base64', 'invalid_secret');
    if (bytes.length < MIN_SECRET_BYTES || bytes.length > MAX_SECRET_BYTES) {
      throw badField(field, `must decode to ${MIN_SECRET_BYTES} to ${MAX_SECRET_BYTES} bytes (got ${bytes.length})`, 'invalid_secret');
    }
  } else {
    const body = secret.slice(PRIVATE_KEY_PREFIX.length);
    if (!secret.startsWith(PRIVATE_KEY_PREFIX) || !BASE64.test(body) || Buffer.from(body, 'base64').length !== 32) {
      throw badField(field, 'must be whsk_ followed by the base64 of a 32-byte ed25519 seed (the endpoint signs with ed25519)', 'invalid_secret');
    }
  }
  return secret;
}

function checkPolicy(policy: { baseDelayMs?: number; maxDelayMs?: number } | null | undefined): void {
  if (policy?.baseDelayMs !== undefined && policy.maxDelayMs !== undefined && policy.maxDelayMs < policy.baseDelayMs) {
    throw badField('retryPolicy.maxDelayMs', `must not be less than baseDelayMs (${policy.baseDelayMs})`);
  }
}

type HealthBody = components['schemas']['EndpointHealth'];

export function healthBody(h: EndpointHealth): HealthBody {
  const iso = (d: Date | null) => (d ? d.toISOString() : null);
  return {
    circuitState: h.circuit_state,
    healthScore: h.health_score,
    consecutiveFailures: h.consecutive_failures,
    windowAttempts: h.window_attempts,
    windowFailures: h.window_failures,
    failureRate: h.window_attempts === 0 ? 0 : Math.round((h.window_failures / h.window_attempts) * 1000) / 1000,
    openedAt: iso(h.opened_at),
    nextProbeAt: iso(h.next_probe_at),
    lastSuccessAt: iso(h.last_success_at),
    lastFailureAt: iso(h.last_failure_at),
    failingSince: iso(h.failing_since),
  };
}

/** Endpoints as the API shows them, each with its health (one query for all of them). */
async function endpointBodies(db: Parameters<Handler>[1]['db'], endpoints: Endpoint[]): Promise<EndpointBody[]> {
  const health = await healthOf(db, endpoints.map((e) => e.id));
  return endpoints.map((e) => {
    const h = health.get(e.id);
    return { ...endpointBody(e), ...(h ? { health: healthBody(h) } : {}) };
  });
}

const one = async (db: Parameters<Handler>[1]['db'], e: Endpoint) => (await endpointBodies(db, [e]))[0]!;

export function endpointBody(e: Endpoint): EndpointBody {
  return {
    id: e.id,
    url: e.url,
    description: e.description,
    enabled: e.enabled,
    disabledReason: e.disabled_reason,
    headers: e.headers,
    retryPolicy: e.retry_policy,
    timeoutMs: e.timeout_ms,
    signature: { algorithm: e.signature_algorithm },
    metadata: e.metadata,
    createdAt: e.created_at.toISOString(),
    updatedAt: e.updated_at.toISOString(),
    deletedAt: e.deleted_at ? e.deleted_at.toISOString() : null,
  };
}

const createEndpointHandler: Handler = async (ctx, deps) => {
  const body = ctx.request.body as EndpointCreate;
  const algorithm: SignatureAlgorithm = body.signature?.algorithm ?? 'hmac-sha256';
  checkPolicy(body.retryPolicy);
  const endpoint = await createEndpoint(deps.db, deps.keyring, {
    url: checkDestination(normalizeUrl(body.url), deps.config.allowNetworks),
    description: body.description,
    enabled: body.enabled,
    headers: checkHeaders(body.headers ?? {}),
    retryPolicy: body.retryPolicy,
    timeoutMs: body.timeoutMs,
    algorithm,
    metadata: body.metadata,
    secret: body.secret === undefined ? undefined : checkSecret(body.secret, kindOf(algorithm)),
  });
  ctx.state.log.info('endpoint created', { endpointId: endpoint.id, algorithm });
  ctx.status = 201;
  ctx.set('Location', `/api/v1/endpoints/${endpoint.id}`);
  ctx.body = await one(deps.db, endpoint);
};

const getEndpointHandler: Handler = async (ctx, deps) => {
  ctx.body = await one(deps.db, await requireEndpoint(deps.db, ctx.params.id ?? ''));
};

const updateEndpointHandler: Handler = async (ctx, deps) => {
  const body = ctx.request.body as EndpointUpdate;
  checkPolicy(body.retryPolicy);
  const endpoint = await updateEndpoint(deps.db, deps.keyring, ctx.params.id ?? '', {
    url: body.url === undefined ? undefined : checkDestination(normalizeUrl(body.url), deps.config.allowNetworks),
    description: body.description,
    enabled: body.enabled,
    headers: body.headers === undefined ? undefined : checkHeaders(body.headers),
    retryPolicy: body.retryPolicy,
    timeoutMs: body.timeoutMs,
    algorithm: body.signature?.algorithm,
    metadata: body.metadata,
  });
  ctx.state.log.info('endpoint updated', { endpointId: endpoint.id, fields: Object.keys(body) });
  ctx.body = await one(deps.db, endpoint);
};

const deleteEndpointHandler: Handler = async (ctx, deps) => {
  const endpoint = await deleteEndpoint(deps.db, ctx.params.id ?? '');
  ctx.state.log.info('endpoint deleted', { endpointId: endpoint.id });
  ctx.body = await one(deps.db, endpoint);
};

const listEndpointsHandler: Handler = async (ctx, deps) => {
  const q = ctx.state.query as { limit?: number; cursor?: string; enabled?: boolean; url?: string; healthState?: string };
  const cursor = createCursorCodec(deps.keyring.derive('cursor'), 'endpoints');
  const after = q.cursor ? cursor.decode(q.cursor).id : undefined;
  const limit = q.limit ?? 50;
  const { rows, more } = await listEndpoints(deps.db, { enabled: q.enabled, url: q.url, healthState: q.healthState }, { limit, after });
  const last = rows[rows.length - 1];
  ctx.body = { data: await endpointBodies(deps.db, rows), nextCursor: more && last ? cursor.encode({ id: last.id }) : null };
};

const getEndpointHealth: Handler = async (ctx, deps) => {
  const endpoint = await requireEndpoint(deps.db, ctx.params.id ?? '');
  const health = (await healthOf(deps.db, [endpoint.id])).get(endpoint.id);
  if (!health) throw new AppError(404, 'endpoint_not_found', 'the endpoint has no health record');
  ctx.body = healthBody(health);
};

const getEndpointSecret: Handler = async (ctx, deps) => {
  const endpoint = await requireEndpoint(deps.db, ctx.params.id ?? '');
  if (isAsymmetric(endpoint.signature_algorithm)) {
    throw new AppError(409, 'endpoint_is_asymmetric', 'this endpoint signs with ed25519; its receivers verify with GET /api/v1/endpoints/{id}/public-key');
  }
  const key = await currentKey(deps.db, deps.keyring, endpoint.id);
  if (!key || key.kind !== 'hmac') throw new AppError(409, 'no_current_secret', 'the endpoint has no current HMAC secret');
  ctx.set('Cache-Control', 'no-store');
  ctx.body = { secret: key.secret };
};

const getEndpointPublicKey: Handler = async (ctx, deps) => {
  const endpoint = await requireEndpoint(deps.db, ctx.params.id ?? '');
  const key = await currentKey(deps.db, deps.keyring, endpoint.id);
  if (!key || key.kind !== 'ed25519' || !key.publicKey) {
    throw new AppError(409, 'endpoint_is_symmetric', 'this endpoint signs with an HMAC secret, which has no public key; see GET /api/v1/endpoints/{id}/secret');
  }
  ctx.body = { publicKey: key.publicKey, keyId: key.id };
};

const rotateEndpointSecret: Handler = async (ctx, deps) => {
  const body = ctx.request.body as RotateRequest;
  const endpoint = await requireEndpoint(deps.db, ctx.params.id ?? '');
  const rotation = await rotateKey(deps.db, deps.keyring, endpoint.id, {
    secret: body.secret,
    checkSecret: (secret, kind) => checkSecret(secret, kind),
    graceSeconds: body.graceSeconds ?? DEFAULT_GRACE_SECONDS,
  });
  ctx.state.log.info('signing key rotated', { endpointId: endpoint.id, keyId: rotation.keyId, previousKeyId: rotation.previousKeyId, previousKeyExpiresAt: rotation.previousKeyExpiresAt?.toISOString() });
  ctx.body = {
    keyId: rotation.keyId,
    publicKey: rotation.publicKey,
    previousKeyId: rotation.previousKeyId,
    previousKeyExpiresAt: rotation.previousKeyExpiresAt ? rotation.previousKeyExpiresAt.toISOString() : null,
  };
};

export const endpointHandlers: Record<string, Handler> = {
  createEndpoint: createEndpointHandler,
  getEndpoint: getEndpointHandler,
  updateEndpoint: updateEndpointHandler,
  deleteEndpoint: deleteEndpointHandler,
  listEndpoints: listEndpointsHandler,
  getEndpointSecret,
  getEndpointPublicKey,
  rotateEndpointSecret,
  getEndpointHealth,
};
