import type { Handler } from './app.ts';

/** Answers whether each part this process depends on works now: `ok`, or what is wrong. */
export type Readiness = () => Promise<Record<string, string>>;

const getHealthz: Handler = async (ctx) => {
  ctx.body = { status: 'ok' };
};

const getReadyz: Handler = async (ctx, deps) => {
  const checks = await deps.readiness();
  const ok = Object.values(checks).every((v) => v === 'ok');
  ctx.status = ok ? 200 : 503;
  ctx.set('Cache-Control', 'no-store');
  ctx.body = { status: ok ? 'ok' : 'unavailable', checks };
};

export const healthHandlers: Record<string, Handler> = { getHealthz, getReadyz };

/** Rejects when `work` has not settled within `ms` (readiness checks must answer, not hang). */
export function withTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}
