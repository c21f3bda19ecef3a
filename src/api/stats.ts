import { AppError } from '../errors.ts';
import { METRICS_CONTENT_TYPE } from '../observability/metrics.ts';
import { readStats } from '../observability/stats.ts';
import type { Handler } from './app.ts';

/** GET /api/v1/stats and GET /metrics (README: "Observability"). */

const getStats: Handler = async (ctx, deps) => {
  ctx.body = await readStats(deps.db);
};

const getMetrics: Handler = async (ctx, deps) => {
  if (!deps.metrics) throw new AppError(404, 'not_found', 'metrics are not collected by this service');
  const text = await deps.metrics.render();
  ctx.status = 200;
  ctx.type = METRICS_CONTENT_TYPE;
  ctx.body = text;
};

export const statsHandlers: Record<string, Handler> = { getStats, getMetrics };
