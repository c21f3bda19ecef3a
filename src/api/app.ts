import { randomUUID } from 'node:crypto';
import Koa from 'koa';
import Router, { type RouterContext } from '@koa/router';
import { koaBody } from 'koa-body';
import type { PgBoss } from 'pg-boss';
import type { Config } from '../config.ts';
import { DB_RETRY_AFTER_SECONDS, isDatabaseUnavailable, type Db } from '../db/database.ts';
import { constraintProblem } from '../db/constraints.ts';
import { AppError, badField, fieldError, toProblem, type FieldError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { loadSpec, toFieldErrors, type Operation, type Spec } from './spec.ts';
import { hasScopes, type Authenticator, type TokenInfo } from './tokens.ts';
import { createRateLimiter, type RateLimiter } from './rate-limit.ts';
import { tokenHandlers } from './tokens-api.ts';
import type { Keyring } from '../endpoints/keyring.ts';
import { webhookHandlers } from './webhooks.ts';
import { endpointHandlers } from './endpoints.ts';
import { healthHandlers, type Readiness } from './health.ts';
import { signatureHandlers } from './signatures.ts';
import { deadLetterHandlers } from './dead-letters.ts';
import { docsRoutes } from './docs.ts';
import { uiRoutes } from './ui.ts';
import { statsHandlers } from './stats.ts';
import type { Metrics } from '../observability/metrics.ts';

export interface AppDeps {
  db: Db;
  boss: PgBoss;
  keyring: Keyring;
  config: Pick<Config, 'maxPayloadBytes' | 'retry' | 'allowNetworks'> & Partial<Pick<Config, 'rateLimit' | 'metricsPublic'>>;
  log: Logger;
  auth: Authenticator;
  readiness: Readiness;
  /** Per-token rate limiting; a fresh limiter (per app) when not given. */
  rateLimiter?: RateLimiter;
  /** Called after a webhook commits, to wake a worker in the same process at once. */
  onSubmitted?: () => void;
  spec?: Spec;
  /**
   * Called with every answer to a request the document describes, after it is complete; the
   * tests check each one against openapi.yaml here.
   */
  onResponse?: (operation: Operation, ctx: Koa.ParameterizedContext<RequestState>) => void;
  /** The service's Prometheus metrics: GET /metrics renders them; each answer is observed. */
  metrics?: Metrics;
  /**
   * Only these operations (by operationId) are served, and neither the dashboard nor /docs: how
   * a process without the api role answers its probes and /metrics. Unset: all of openapi.yaml.
   */
  operations?: ReadonlySet<string>;
}

export interface RequestState {
  requestId: string;
  log: Logger;
  tokenId?: string;
  /** The scopes of the request's token (admin implies every other). */
  scopes?: readonly string[];
  operation: Operation;
  /** Query parameters the document declares, converted and validated. */
  query: Record<string, unknown>;
}

export type Context = RouterContext<RequestState>;
export type Handler = (ctx: Context, deps: AppDeps) => Promise<void>;

/** Room for the envelope (url, headers, policy) around a payload of the largest allowed size. */
const ENVELOPE_BYTES = 64 * 1024;
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * Builds the Koa application; it never listens (main.ts and the tests do). Routes come from
 * openapi.yaml: each operation there must have a handler, and nothing is served that the
 * document does not describe.
 */
export function createApp(deps: AppDeps): Koa<RequestState> {
  const spec = deps.spec ?? loadSpec();
  const handlers: Record<string, Handler> = { ...webhookHandlers, ...endpointHandlers, ...signatureHandlers, ...deadLetterHandlers, ...healthHandlers, ...tokenHandlers, ...statsHandlers };
  const rateLimiter = deps.rateLimiter ?? createRateLimiter();
  const defaultLimits = deps.config.rateLimit ?? { perSecond: 200, burst: 400 };
  const app = new Koa<RequestState>();
  app.proxy = false;
  app.silent = true;

  app.use(async (ctx, next) => {
    const given = ctx.get('x-request-id');
    const requestId = REQUEST_ID.test(given) ? given : randomUUID();
    ctx.state.requestId = requestId;
    ctx.state.log = deps.log.child({ requestId });
    ctx.set('X-Request-Id', requestId);
    const started = performance.now();
    try {
      await next();
      if (ctx.body === undefined && ctx.status === 404) throw new AppError(404, 'not_found', `no route for ${ctx.method} ${ctx.path}`);
    } catch (err) {
      renderError(ctx, err);
    } finally {
      if (deps.onResponse && ctx.state.operation) deps.onResponse(ctx.state.operation, ctx);
      // 503 is a known state (the database is away), logged where it is detected.
      const level = ctx.status === 503 ? 'warn' : ctx.status >= 500 ? 'error' : 'debug';
      // By operation path template (never raw ids), so the label set stays bounded.
      deps.metrics?.apiRequest(ctx.method, ctx.state.operation?.path ?? 'unmatched', ctx.status, (performance.now() - started) / 1000);
      ctx.state.log.log(level, 'request', { method: ctx.method, path: ctx.path, status: ctx.status, durationMs: Math.round(performance.now() - started) });
    }
  });

  // The dashboard's static pages: outside the openapi.yaml router (they are not API operations).
  if (!deps.operations) app.use(uiRoutes());

  const router = new Router<RequestState>();
  const bodyParser = koaBody({
    json: true,
    urlencoded: false,
    text: false,
    multipart: false,
    jsonStrict: false,
    jsonLimit: deps.config.maxPayloadBytes + ENVELOPE_BYTES,
    // The router only calls the parser for operations that have a body.
    parsedMethods: ['POST', 'PUT', 'PATCH'] as never,
  });
  for (const operation of spec.operations.values()) {
    const handler = handlers[operation.operationId];
    if (!handler) throw new Error(`openapi.yaml describes ${operation.operationId}, which has no handler`);
    if (deps.operations && !deps.operations.has(operation.operationId)) continue;
    const method = operation.method.toLowerCase() as 'get' | 'post' | 'put' | 'patch' | 'delete';
    router[method](operation.routerPath, async (ctx, next) => {
      ctx.state.operation = operation;
      // HOOKRELAY_METRICS_PUBLIC=true: GET /metrics asks for no token.
      if (operation.secured && !(operation.operationId === 'getMetrics' && deps.config.metricsPublic)) {
        const token = await authenticate(ctx, deps);
        limitRate(ctx, rateLimiter, token, defaultLimits);
        authorize(ctx, operation, token);
      }
      validateHeaders(ctx, operation);
      ctx.state.query = validateQuery(ctx, operation);
      rejectImpossibleIds(ctx);
      const hasBody = ctx.request.length !== 0 && (ctx.request.length !== undefined || ctx.get('transfer-encoding') !== '');
      if (operation.body && !operation.body.required && !hasBody) {
        ctx.request.body = {};
      } else if (operation.body) {
        // null or an empty body: nothing to parse; false: a body of another type.
        const type = ctx.request.is('application/json', '+json');
        if (type === null || ctx.request.length === 0) {
          throw new AppError(400, 'validation_failed', 'a JSON request body is required', { errors: [fieldError('', 'is required')] });
        }
        if (type === false) throw new AppError(415, 'unsupported_media_type', 'the request body must be application/json');
        try {
          await bodyParser(ctx as unknown as Koa.Context, async () => {});
        } catch (err) {
          // Errors with a status (too large, bad JSON) are rendered as such; anything else from
          // reading the body (a corrupt gzip stream, say) is still the client's malformed body.
          // So is a 5xx from the reader: raw-body says 500 "stream is not readable" when the
          // client closed or stopped sending before the body could be read.
          if (isHttpError(err) && err.status < 500) throw err;
          throw new AppError(400, 'invalid_body', 'the request body could not be read (bad Content-Encoding?)');
        }
        const body = ctx.request.body;
        if (!operation.body.validate(body)) {
          const errors = toFieldErrors(operation.body.validate.errors);
          throw new AppError(400, 'validation_failed', `invalid request: ${errors.map((e) => `${e.field || 'body'} ${e.message}`).join('; ')}`, { errors });
        }
        const unstorable = unstorableText(body);
        if (unstorable) throw new AppError(400, 'validation_failed', `invalid request: ${unstorable.field || 'body'} ${unstorable.message}`, { errors: [unstorable] });
      }
      await handler(ctx, deps);
      return next();
    });
  }
  for (const handler of Object.keys(handlers)) {
    if (!spec.operations.has(handler)) throw new Error(`handler ${handler} has no operation in openapi.yaml`);
  }
  // The API reference (/docs, /openapi.yaml) is not an operation of the document it renders.
  if (!deps.operations) app.use(docsRoutes());
  app.use(router.routes());
  return app;
}

async function authenticate(ctx: Context, deps: AppDeps): Promise<TokenInfo> {
  const header = ctx.get('authorization');
  const match = /^Bearer[ ]+(\S+)\s*$/i.exec(header);
  if (!match) {
    throw new AppError(401, 'unauthorized', 'an Authorization: Bearer <token> header is required', {
      headers: { 'WWW-Authenticate': 'Bearer realm="hookrelay"' },
    });
  }
  // Unknown, revoked and expired tokens get the same answer.
  const token = await deps.auth.lookup(match[1]!);
  if (!token) {
    throw new AppError(401, 'invalid_token', 'the bearer token is not valid', {
      headers: { 'WWW-Authenticate': 'Bearer realm="hookrelay", error="invalid_token"' },
    });
  }
  ctx.state.tokenId = token.id;
  ctx.state.scopes = token.scopes;
  ctx.state.log = ctx.state.log.child({ tokenId: token.id });
  return token;
}

/**
 * One bucket per token (per process). RateLimit-Limit and RateLimit-Remaining go on every
 * authenticated answer; over the limit the request is a 429 with Retry-After.
 */
function limitRate(ctx: Context, limiter: RateLimiter, token: TokenInfo, defaults: { perSecond: number; burst: number }): void {
  const perSecond = token.rateLimitPerSecond ?? defaults.perSecond;
  // A token with only its own rate gets a burst of twice that rate (as the defaults, 200/400).
  const burst = token.rateLimitBurst ?? (token.rateLimitPerSecond !== null ? token.rateLimitPerSecond * 2 : defaults.burst);
  const decision = limiter.take(token.id, { perSecond, burst });
  ctx.set('RateLimit-Limit', String(decision.limit));
  ctx.set('RateLimit-Remaining', String(decision.remaining));
  if (!decision.allowed) {
    throw new AppError(429, 'rate_limited', `this token is over its rate limit (${perSecond} requests per second, bursts of ${burst}); retry after ${decision.retryAfterSeconds} s`, {
      headers: { 'Retry-After': String(decision.retryAfterSeconds), 'RateLimit-Limit': String(decision.limit), 'RateLimit-Remaining': '0' },
    });
  }
}

/** The scopes the document names for the operation, enforced: 403 insufficient_scope otherwise. */
function authorize(ctx: Context, operation: Operation, token: TokenInfo): void {
  if (hasScopes(token.scopes, operation.scopes)) return;
  const needed = operation.scopes.join(' ');
  throw new AppError(403, 'insufficient_scope', `this token lacks the scope ${needed} that ${operation.method} ${operation.path} needs (it has: ${token.scopes.join(', ') || 'none'})`, {
    headers: { 'WWW-Authenticate': `Bearer realm="hookrelay", error="insufficient_scope", scope="${needed}"` },
  });
}

function validateQuery(ctx: Context, operation: Operation): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const param of operation.query) {
    const given = ctx.query[param.name];
    if (given === undefined) {
      if (param.required) throw badField(param.name, 'is a required query parameter');
      continue;
    }
    if (Array.isArray(given)) throw badField(param.name, 'is given more than once');
    // PostgreSQL text cannot hold NUL: refused here rather than failing in the query.
    if (given.includes('\u0000')) throw badField(param.name, 'must not contain NUL characters');
    const value = param.coerce(given);
    if (!param.validate(value)) {
      const errors = toFieldErrors(param.validate.errors, param.name);
      throw new AppError(400, 'validation_failed', `query parameter ${param.name} ${errors[0]?.message ?? 'is invalid'}`, { errors });
    }
    out[param.name] = value;
  }
  return out;
}

/**
 * A path id with a NUL character names nothing (PostgreSQL text cannot hold one): 404 as for
 * any unknown id, instead of an error from the database.
 */
function rejectImpossibleIds(ctx: Context): void {
  for (const [name, value] of Object.entries(ctx.params ?? {})) {
    if (typeof value === 'string' && value.includes('\u0000')) throw new AppError(404, 'not_found', `nothing has this ${name}`);
  }
}

/**
 * The first string (or object key) of a request body that PostgreSQL text and jsonb cannot
 * hold: a NUL character or an unpaired UTF-16 surrogate. Every body field ends up in a
 * column or is compared with one, so these are refused for all of them, naming the field.
 * Iterative, so that absurdly deep JSON cannot overflow the stack here.
 */
function unstorableText(body: unknown): FieldError | undefined {
  type Path = { key: string; parent: Path } | null;
  const field = (path: Path) => {
    const keys: string[] = [];
    for (let p = path; p; p = p.parent) keys.unshift(p.key);
    return keys.join('.');
  };
  const bad = (s: string) => s.includes('\u0000') || !s.isWellFormed();
  const stack: [unknown, Path][] = [[body, null]];
  while (stack.length > 0) {
    const [value, path] = stack.pop()!;
    if (typeof value === 'string') {
      if (bad(value)) return fieldError(field(path), 'must not contain NUL characters or unpaired UTF-16 surrogates');
    } else if (Array.isArray(value)) {
      for (let i = value.length - 1; i >= 0; i--) stack.push([value[i], { key: String(i), parent: path }]);
    } else if (value !== null && typeof value === 'object') {
      for (const [key, child] of Object.entries(value).reverse()) {
        if (bad(key)) return fieldError(field(path), 'has a key with a NUL character or an unpaired UTF-16 surrogate');
        stack.push([child, { key, parent: path }]);
      }
    }
  }
  return undefined;
}

function validateHeaders(ctx: Context, operation: Operation): void {
  for (const param of operation.headers) {
    const value = ctx.get(param.name);
    if (value === '') {
      if (param.required) throw new AppError(400, 'validation_failed', `header ${param.name} is required`);
      continue;
    }
    if (!param.validate(value)) {
      const errors = toFieldErrors(param.validate.errors, param.name);
      throw new AppError(400, 'validation_failed', `header ${param.name} ${errors[0]?.message ?? 'is invalid'}`, { errors });
    }
  }
}

/** The one place errors become answers: AppErrors as problem+json, anything else a 500. */
function renderError(ctx: Koa.ParameterizedContext<RequestState>, err: unknown): void {
  let appError: AppError;
  if (err instanceof AppError) {
    appError = err;
  } else if (constraintProblem(err)) {
    appError = constraintProblem(err)!;
  } else if (isHttpError(err) && err.status < 500) {
    // koa-body (co-body / raw-body) errors: body too large, invalid JSON, bad encoding.
    appError = err.status === 413
      ? new AppError(413, 'payload_too_large', 'the request body is larger than allowed')
      : err.status === 415
        ? new AppError(415, 'unsupported_media_type', 'unsupported content encoding or charset')
        : new AppError(400, 'invalid_json', `the request body is not valid JSON${err.type === 'entity.parse.failed' ? '' : ` (${err.message})`}`);
  } else if (isDatabaseUnavailable(err)) {
    // PostgreSQL is down, restarting, or every pooled connection stayed busy for
    // HOOKRELAY_DB_ACQUIRE_TIMEOUT_MS. A connection lost during COMMIT leaves the outcome
    // unknown, which is why the answer points at Idempotency-Key rather than promising nothing changed.
    ctx.state.log?.warn('database unavailable', { error: (err as Error).message });
    appError = new AppError(503, 'database_unavailable', 'the database is unavailable right now; retry later (with the same Idempotency-Key, a retried submission is not duplicated)', {
      headers: { 'Retry-After': String(DB_RETRY_AFTER_SECONDS) },
    });
  } else {
    ctx.state.log?.error('request failed', { err });
    appError = new AppError(500, 'internal', 'internal error; the log has the details under this request id');
  }
  ctx.status = appError.status;
  for (const [k, v] of Object.entries(appError.headers)) ctx.set(k, v);
  // The rest of an oversized body is not worth reading: close the connection after answering.
  if (appError.status === 413) ctx.set('Connection', 'close');
  ctx.body = toProblem(appError, ctx.state.requestId, ctx.path);
  ctx.type = 'application/problem+json';
}

function isHttpError(err: unknown): err is { status: number; message: string; type?: string } {
  return typeof err === 'object' && err !== null && typeof (err as { status?: unknown }).status === 'number';
}
