import { AppError } from '../errors.ts';
import type { Db } from '../db/database.ts';
import { METRICS_CONTENT_TYPE } from '../observability/metrics.ts';
import { readStats, type Stats } from '../observability/stats.ts';
import type { Handler } from './app.ts';

/** GET /api/v1/stats and GET /metrics (README: "Observability"). */

/**
 * The stats are a few aggregates over the last hour's rows: one reading serves every request
 * for this long (per database handle), so dashboards polling at once cost one round of queries.
 */
export const STATS_CACHE_MS = 5_000;
const statsCache = new WeakMap<Db, { at: number; value: Promise<Stats> }>();

function cachedStats(db: Db): Promise<Stats> {
  const now = Date.now();
  const hit = statsCache.get(db);
  if (hit && now - hit.at < STATS_CACHE_MS) return hit.value;
  const value = readStats(db);
  statsCache.set(db, { at: now, value });
  // A failed reading is not kept.
  value.catch(() => {
    if (statsCache.get(db)?.value === value) statsCache.delete(db);
  });
  return value;
}

const getStats: Handler = async (ctx, deps) => {
  ctx.body = await cachedStats(deps.db);
};

const getMetrics: Handler = async (ctx, deps) => {
  if (!deps.metrics) throw new AppError(404, 'not_found', 'metrics are not collected by this service');
  const text = await deps.metrics.render();
  ctx.status = 200;
  ctx.type = METRICS_CONTENT_TYPE;
  ctx.body = text;
};

export const statsHandlers: Record<string, Handler> = { getStats, getMetrics };
