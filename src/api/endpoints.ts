import { getEndpoint } from '../endpoints/store.ts';
import { AppError } from '../errors.ts';
import type { Handler } from './app.ts';

const getEndpointSecret: Handler = async (ctx, deps) => {
  const id = ctx.params.id ?? '';
  const endpoint = await getEndpoint(deps.db, id);
  if (!endpoint) throw new AppError(404, 'endpoint_not_found', `no endpoint with id ${JSON.stringify(id)}`);
  ctx.set('Cache-Control', 'no-store');
  ctx.body = { secret: endpoint.secret };
};

export const endpointHandlers: Record<string, Handler> = { getEndpointSecret };
