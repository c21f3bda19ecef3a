import { AppError, badField, parseTime } from '../errors.ts';
import type { components } from './openapi-types.ts';
import type { Handler } from './app.ts';
import { createCursorCodec } from './cursor.ts';
import { createToken, DEFAULT_SCOPES, listTokens, revokeToken, type Scope, type TokenRecord } from './tokens.ts';

/**
 * The token API, for tokens with the admin scope (openapi.yaml says so per operation; the
 * router enforces it). A token's text is in the create answer only; lists show no hash.
 */

type TokenBody = components['schemas']['Token'];
type TokenCreate = components['schemas']['TokenCreate'];

export function tokenBody(r: TokenRecord): TokenBody {
  return {
    id: r.id,
    name: r.name,
    scopes: r.scopes as TokenBody['scopes'],
    createdAt: r.created_at.toISOString(),
    expiresAt: r.expires_at ? r.expires_at.toISOString() : null,
    revokedAt: r.revoked_at ? r.revoked_at.toISOString() : null,
    lastUsedAt: r.last_used_at ? r.last_used_at.toISOString() : null,
    rateLimitPerSecond: r.rate_limit_per_second,
    rateLimitBurst: r.rate_limit_burst,
  };
}

const createApiToken: Handler = async (ctx, deps) => {
  const body = ctx.request.body as TokenCreate;
  const name = body.name.trim();
  const expiresAt = body.expiresAt !== undefined ? parseTime(body.expiresAt, 'expiresAt') : null;
  if (expiresAt && expiresAt.getTime() <= Date.now()) throw badField('expiresAt', 'must be in the future');
  const { id, token } = await createToken(deps.db, name, {
    scopes: (body.scopes ?? DEFAULT_SCOPES) as Scope[],
    expiresAt,
    rateLimitPerSecond: body.rateLimitPerSecond ?? null,
    rateLimitBurst: body.rateLimitBurst ?? null,
  });
  const [record] = await listTokens(deps.db, { ids: [id] });
  ctx.state.log.info('api token created', { createdTokenId: id, scopes: record!.scopes });
  ctx.status = 201;
  ctx.set('Cache-Control', 'no-store');
  ctx.body = { ...tokenBody(record!), token };
};

const listApiTokens: Handler = async (ctx, deps) => {
  const q = ctx.state.query as { limit?: number; cursor?: string };
  const cursor = createCursorCodec(deps.keyring.derive('cursor'), 'tokens');
  const limit = q.limit ?? 50;
  const rows = await listTokens(deps.db, { after: q.cursor ? cursor.decode(q.cursor).id : undefined, limit: limit + 1 });
  const page = rows.slice(0, limit);
  const last = page[page.length - 1];
  ctx.body = { data: page.map(tokenBody), nextCursor: rows.length > limit && last ? cursor.encode({ id: last.id }) : null };
};

const revokeApiToken: Handler = async (ctx, deps) => {
  const id = ctx.params.id ?? '';
  // By id only here (revokeToken also takes a token's text, for the CLI).
  const [existing] = await listTokens(deps.db, { ids: [id] });
  if (!existing) throw new AppError(404, 'token_not_found', `no token with id ${JSON.stringify(id)}`);
  const record = await revokeToken(deps.db, existing.id);
  ctx.state.log.info('api token revoked', { revokedTokenId: id, self: id === ctx.state.tokenId });
  ctx.body = tokenBody(record!);
};

export const tokenHandlers: Record<string, Handler> = { createApiToken, listApiTokens, revokeApiToken };
