import test from 'ava';
import { createRateLimiter } from '../../src/api/rate-limit.ts';
import { createToken } from '../../src/api/tokens.ts';
import { startTestService } from '../helpers/service.ts';

/** Per-token token buckets: 429 with Retry-After over the limit, one token never throttles another. */

const PATH = '/api/v1/webhooks/msg_00000000000000000000000000/status';

test('a token with 5/s, burst 5: the 6th quick request is 429; another token is unaffected; after Retry-After it works again', async (t) => {
  const svc = await startTestService(t, { HOOKRELAY_ROLES: 'api' });
  const limited = await createToken(svc.service.db.db, 'limited', { rateLimitPerSecond: 5, rateLimitBurst: 5 });
  const other = await createToken(svc.service.db.db, 'other', { rateLimitPerSecond: 5, rateLimitBurst: 5 });
  const as = (token: string) => ({ headers: { authorization: `Bearer ${token}` } });

  // Six requests at once: the burst of five passes, the sixth is refused. (A slow machine may
  // refill a token in between; then the next requests find the bucket empty. No timing is assumed.)
  const first = await Promise.all(Array.from({ length: 6 }, () => svc.api(PATH, as(limited.token))));
  for (const res of first) {
    t.is(res.headers.get('ratelimit-limit'), '5');
    if (res.status === 404) await res.arrayBuffer();
  }
  t.is(first.filter((r) => r.status === 404).length >= 5, true, 'the burst passes (404: the webhook does not exist)');
  let refused = first.find((r) => r.status === 429);
  for (let i = 0; i < 30 && !refused; i++) {
    const res = await svc.api(PATH, as(limited.token));
    if (res.status === 429) refused = res;
    else await res.arrayBuffer();
  }
  if (!refused) return t.fail('no 429 within 36 requests of a 5/s token');
  t.is(refused.status, 429);
  t.regex(refused.headers.get('content-type') ?? '', /^application\/problem\+json/);
  const retryAfter = Number(refused.headers.get('retry-after'));
  t.true(Number.isInteger(retryAfter) && retryAfter >= 1, `Retry-After ${refused.headers.get('retry-after')}`);
  t.is(refused.headers.get('ratelimit-limit'), '5');
  t.is(refused.headers.get('ratelimit-remaining'), '0');
  const problem = (await refused.json()) as Record<string, any>;
  t.is(problem.status, 429);
  t.is(problem.code, 'rate_limited');

  // Another token has its own bucket.
  const fromOther = await svc.api(PATH, as(other.token));
  t.is(fromOther.status, 404);
  // Health checks are never limited.
  t.is((await svc.api('/healthz', as(limited.token))).status, 200);

  await new Promise((r) => setTimeout(r, retryAfter * 1000 + 100));
  const later = await svc.api(PATH, as(limited.token));
  t.is(later.status, 404, 'allowed again after Retry-After');
});

test('the server defaults apply to tokens without their own limit', async (t) => {
  const svc = await startTestService(t, { HOOKRELAY_ROLES: 'api', HOOKRELAY_RATE_LIMIT_PER_SECOND: '1', HOOKRELAY_RATE_LIMIT_BURST: '2' });
  const { token } = await createToken(svc.service.db.db, 'defaults');
  const headers = { authorization: `Bearer ${token}` };
  // Ten at once against a bucket of 2 refilling at 1/s: however slow the machine, the bucket
  // cannot refill eight times while they are answered.
  const answers = await Promise.all(Array.from({ length: 10 }, () => svc.api(PATH, { headers })));
  const statuses = answers.map((r) => r.status);
  t.true(statuses.filter((s) => s === 404).length >= 2, `the burst of 2 is allowed: ${statuses}`);
  t.true(statuses.filter((s) => s === 429).length >= 5, `the rest are limited: ${statuses}`);
  t.true(statuses.every((s) => s === 404 || s === 429), String(statuses));
  t.is(answers.find((r) => r.status === 429)!.headers.get('retry-after'), '1');
});

test('the limiter: buckets refill at the rate, Retry-After is whole seconds >= 1, and the map is bounded', (t) => {
  let now = 0;
  const limiter = createRateLimiter({ maxBuckets: 3, now: () => now });
  const limits = { perSecond: 2, burst: 2 };
  t.true(limiter.take('a', limits).allowed);
  t.true(limiter.take('a', limits).allowed);
  const refused = limiter.take('a', limits);
  t.false(refused.allowed);
  t.is(refused.retryAfterSeconds, 1);
  now += 500;
  t.true(limiter.take('a', limits).allowed, 'half a second refills one at 2/s');
  t.false(limiter.take('a', limits).allowed);
  // A slow rate: Retry-After rounds up to whole seconds.
  t.true(limiter.take('slow', { perSecond: 0.25, burst: 1 }).allowed);
  t.is(limiter.take('slow', { perSecond: 0.25, burst: 1 }).retryAfterSeconds, 4);
  // Bounded: the least recently used bucket goes first.
  limiter.take('b', limits);
  t.is(limiter.size(), 3);
  limiter.take('c', limits);
  t.is(limiter.size(), 3, 'c pushed out a, the least recently used');
  const back = limiter.take('a', limits);
  t.true(back.allowed);
  t.is(back.remaining, 1, 'a came back as a full bucket');
  for (let i = 0; i < 100; i++) limiter.take(`k${i}`, limits);
  t.is(limiter.size(), 3);
});
