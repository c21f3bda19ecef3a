import test from 'ava';
import type { RetryPolicy } from '../../src/config.ts';
import { JITTER, nextRetry, nominalDelayMs, parseRetryAfter, type AttemptAnswer } from '../../src/delivery/retry-policy.ts';
import { resolvePolicy } from '../../src/delivery/submit.ts';
import { AppError } from '../../src/errors.ts';

/** The retry decision is pure: tables of (policy, attempt, random, answer, now) → decision. */

const policy = (p: Partial<RetryPolicy> = {}): RetryPolicy => ({ maxAttempts: 30, baseDelayMs: 5_000, maxDelayMs: 3_600_000, backoffFactor: 2, ...p });

const ALMOST_ONE = 1 - Number.EPSILON / 2; // 0.9999999999999999, the largest value Math.random can return

test('JITTER is ±20%', (t) => {
  t.is(JITTER, 0.2);
});

const NOMINAL: Array<[string, RetryPolicy, number, number]> = [
  ['defaults, after attempt 1', policy(), 1, 5_000],
  ['defaults, after attempt 2', policy(), 2, 10_000],
  ['defaults, after attempt 3', policy(), 3, 20_000],
  ['defaults, after attempt 10', policy(), 10, 2_560_000],
  ['defaults, after attempt 11 (capped)', policy(), 11, 3_600_000],
  ['defaults, after attempt 29 (capped)', policy(), 29, 3_600_000],
  ['factor 1 is a constant delay', policy({ backoffFactor: 1, baseDelayMs: 250 }), 7, 250],
  ['factor 1.5', policy({ backoffFactor: 1.5, baseDelayMs: 1_000 }), 3, 2_250],
  ['factor 10', policy({ backoffFactor: 10, baseDelayMs: 100 }), 4, 100_000],
  ['cap reached exactly', policy({ baseDelayMs: 100, maxDelayMs: 800 }), 4, 800],
  ['cap passed', policy({ baseDelayMs: 100, maxDelayMs: 800 }), 5, 800],
  ['cap equal to base', policy({ baseDelayMs: 200, maxDelayMs: 200 }), 1, 200],
  ['cap equal to base, later attempt', policy({ baseDelayMs: 200, maxDelayMs: 200 }), 9, 200],
  ['huge exponent stays at the cap', policy({ backoffFactor: 10, maxAttempts: 100, maxDelayMs: 604_800_000 }), 99, 604_800_000],
];

for (const [what, p, attempt, expected] of NOMINAL) {
  test(`nominalDelayMs: ${what}`, (t) => {
    t.is(nominalDelayMs(p, attempt), expected);
  });
}

/** [what, policy, attempt, random, expected delayMs] */
const RETRY: Array<[string, RetryPolicy, number, number, number]> = [
  ['random 0 is −20%', policy(), 1, 0, 4_000],
  ['random 0.5 is the nominal delay', policy(), 1, 0.5, 5_000],
  ['random ~1 is +20%', policy(), 1, ALMOST_ONE, 6_000],
  ['random 0.25 is −10%', policy(), 2, 0.25, 9_000],
  ['random 0.75 is +10%', policy(), 3, 0.75, 22_000],
  ['at the cap, random 0 is −20% of the cap', policy(), 20, 0, 2_880_000],
  ['at the cap, random 0.5 is the cap', policy(), 20, 0.5, 3_600_000],
  ['at the cap, random ~1 stays at the cap', policy(), 20, ALMOST_ONE, 3_600_000],
  ['just under the cap, +20% is clamped to the cap', policy({ baseDelayMs: 700, maxDelayMs: 800 }), 1, ALMOST_ONE, 800],
  ['rounded to whole milliseconds', policy({ baseDelayMs: 101 }), 1, 0, 81],
  ['smallest base delay, random 0', policy({ baseDelayMs: 100, maxDelayMs: 100 }), 1, 0, 80],
];

for (const [what, p, attempt, random, expected] of RETRY) {
  test(`nextRetry: ${what}`, (t) => {
    t.deepEqual(nextRetry(p, attempt, random), { kind: 'retry', delayMs: expected, nextAttempt: attempt + 1, honouredRetryAfter: false });
  });
}

test('nextRetry: the jittered delay stays within ±20% of nominal, never above the cap, never negative', (t) => {
  const policies = [
    policy(),
    policy({ baseDelayMs: 100, maxDelayMs: 100, backoffFactor: 1 }),
    policy({ baseDelayMs: 100, maxDelayMs: 1_000, backoffFactor: 3, maxAttempts: 100 }),
    policy({ baseDelayMs: 604_800_000, maxDelayMs: 604_800_000, backoffFactor: 10 }),
    policy({ baseDelayMs: 333, maxDelayMs: 5_000, backoffFactor: 1.7, maxAttempts: 12 }),
  ];
  const randoms = [0, 1e-9, 0.1, 0.25, 0.5, 0.5 + 1e-9, 0.75, 0.9, 0.999, ALMOST_ONE];
  let checked = 0;
  for (const p of policies) {
    for (let attempt = 1; attempt < p.maxAttempts; attempt++) {
      const nominal = nominalDelayMs(p, attempt);
      for (const r of randoms) {
        const d = nextRetry(p, attempt, r);
        if (d.kind !== 'retry') {
          t.fail(`attempt ${attempt} of ${p.maxAttempts} should retry`);
          continue;
        }
        const where = `policy ${JSON.stringify(p)}, attempt ${attempt}, random ${r}: ${d.delayMs}`;
        t.true(Number.isInteger(d.delayMs), where);
        t.true(d.delayMs >= 0, where);
        t.true(d.delayMs <= p.maxDelayMs, where);
        t.true(d.delayMs >= Math.floor(nominal * (1 - JITTER)), where);
        t.true(d.delayMs <= Math.ceil(nominal * (1 + JITTER)), where);
        t.is(d.nextAttempt, attempt + 1);
        checked++;
      }
    }
  }
  t.true(checked > 1_000);
});

test('nextRetry: delays grow monotonically with the attempt for a fixed random', (t) => {
  const p = policy({ baseDelayMs: 100, maxDelayMs: 60_000, backoffFactor: 2, maxAttempts: 20 });
  for (const r of [0, 0.5, ALMOST_ONE]) {
    let previous = -1;
    for (let attempt = 1; attempt < p.maxAttempts; attempt++) {
      const d = nextRetry(p, attempt, r);
      if (d.kind !== 'retry') return t.fail();
      t.true(d.delayMs >= previous, `attempt ${attempt}, random ${r}`);
      previous = d.delayMs;
    }
  }
});

/** [what, maxAttempts, attempt, dead?] */
const DEAD: Array<[string, number, number, boolean]> = [
  ['maxAttempts 1: dead after the first attempt', 1, 1, true],
  ['maxAttempts 2: attempt 1 retries', 2, 1, false],
  ['maxAttempts 2: attempt 2 is the last', 2, 2, true],
  ['maxAttempts 30: attempt 29 retries', 30, 29, false],
  ['maxAttempts 30: attempt 30 is the last', 30, 30, true],
  ['maxAttempts 30: attempt 31 (a stray job) is dead too', 30, 31, true],
  ['maxAttempts 100: attempt 99 retries', 100, 99, false],
  ['maxAttempts 100: attempt 100 is the last', 100, 100, true],
];

for (const [what, maxAttempts, attempt, dead] of DEAD) {
  test(`nextRetry: ${what}`, (t) => {
    for (const r of [0, 0.5, ALMOST_ONE]) {
      const d = nextRetry(policy({ maxAttempts }), attempt, r);
      if (dead) {
        t.is(d.kind, 'dead');
        if (d.kind === 'dead') {
          t.is(d.reason, 'attempts_exhausted');
          t.true(d.detail.includes(String(maxAttempts)), d.detail);
        }
      } else {
        t.is(d.kind, 'retry');
        if (d.kind === 'retry') t.is(d.nextAttempt, attempt + 1);
      }
    }
  });
}

test('nextRetry: dead exactly when attempt >= maxAttempts, over a grid', (t) => {
  for (let maxAttempts = 1; maxAttempts <= 12; maxAttempts++) {
    for (let attempt = 1; attempt <= 14; attempt++) {
      t.is(nextRetry(policy({ maxAttempts }), attempt, 0.5).kind, attempt >= maxAttempts ? 'dead' : 'retry', `${attempt}/${maxAttempts}`);
    }
  }
});

test('nextRetry: the decision is a pure function of its arguments', (t) => {
  const p = Object.freeze(policy({ baseDelayMs: 1_234 }));
  t.deepEqual(nextRetry(p, 3, 0.42), nextRetry(p, 3, 0.42));
  t.deepEqual(p, policy({ baseDelayMs: 1_234 }));
});

test('nextRetry: the jitter of non-Retry-After delays spreads over the whole ±20% band', (t) => {
  // Bounded is checked above; here: a spread of randoms really uses the band (not a constant).
  const p = policy({ baseDelayMs: 10_000 });
  const delays = Array.from({ length: 101 }, (_, i) => {
    const d = nextRetry(p, 1, i / 101);
    return d.kind === 'retry' ? d.delayMs : Number.NaN;
  });
  t.is(Math.min(...delays), 8_000);
  t.true(Math.max(...delays) >= 11_900 && Math.max(...delays) <= 12_000);
  t.true(new Set(delays).size > 50);
});

// --- The receiver's answer: 410 Gone and Retry-After ---------------------------------------

/** A fixed "now" for HTTP-dates: Wed, 21 Oct 2015 07:28:00 GMT. */
const NOW = Date.parse('Wed, 21 Oct 2015 07:28:00 GMT');
const at = (offsetSeconds: number) => new Date(NOW + offsetSeconds * 1000).toUTCString();

test('the HTTP-date helper makes IMF-fixdate strings', (t) => {
  t.is(at(0), 'Wed, 21 Oct 2015 07:28:00 GMT');
  t.is(at(30), 'Wed, 21 Oct 2015 07:28:30 GMT');
});

/** [what, header value, expected ms from NOW or undefined] */
const PARSE: Array<[string, string | undefined, number | undefined]> = [
  ['absent', undefined, undefined],
  ['delta-seconds', '120', 120_000],
  ['zero seconds', '0', 0],
  ['one second', '1', 1_000],
  ['surrounding white space is ignored', '  7 ', 7_000],
  ['ten digits is still a number', '9999999999', 9_999_999_999_000],
  ['eleven digits is garbage', '99999999999', undefined],
  ['leading zeros', '007', 7_000],
  ['negative seconds', '-5', undefined],
  ['plus sign', '+5', undefined],
  ['fractional seconds', '1.5', undefined],
  ['exponent', '1e3', undefined],
  ['hex', '0x10', undefined],
  ['empty', '', undefined],
  ['words', 'soon', undefined],
  ['number with unit', '5s', undefined],
  ['two numbers', '5, 6', undefined],
  ['HTTP-date 30 s ahead', at(30), 30_000],
  ['HTTP-date one hour ahead', at(3600), 3_600_000],
  ['HTTP-date now', at(0), 0],
  ['HTTP-date in the past is zero', at(-600), 0],
  ['HTTP-date far in the past is zero', 'Thu, 01 Jan 1970 00:00:00 GMT', 0],
  ['HTTP-date with a bad day and time', 'Wed, 99 Oct 2015 99:99:99 GMT', undefined],
  ['HTTP-date with a bad month', 'Wed, 21 Foo 2015 07:28:30 GMT', undefined],
  ['ISO date is not an HTTP-date', '2015-10-21T07:28:30Z', undefined],
  ['date without GMT', 'Wed, 21 Oct 2015 07:28:30', undefined],
  ['date in another zone', 'Wed, 21 Oct 2015 07:28:30 +0200', undefined],
];

for (const [what, value, expected] of PARSE) {
  test(`parseRetryAfter: ${what}`, (t) => {
    t.is(parseRetryAfter(value, NOW), expected);
  });
}

const P = policy({ baseDelayMs: 1_000, maxDelayMs: 60_000, maxAttempts: 10 });

/** [what, answer, attempt, expected delayMs] — Retry-After honoured, clamped to [base, max], no jitter. */
const HONOURED: Array<[string, AttemptAnswer, number, number]> = [
  ['429 with seconds', { statusCode: 429, retryAfter: '10' }, 1, 10_000],
  ['503 with seconds', { statusCode: 503, retryAfter: '10' }, 1, 10_000],
  ['429 with an HTTP-date', { statusCode: 429, retryAfter: at(30) }, 1, 30_000],
  ['503 with an HTTP-date', { statusCode: 503, retryAfter: at(45) }, 1, 45_000],
  ['seconds exactly at the ceiling', { statusCode: 429, retryAfter: '60' }, 1, 60_000],
  ['seconds above the ceiling are capped', { statusCode: 429, retryAfter: '86400' }, 1, 60_000],
  ['ten-digit seconds are capped', { statusCode: 503, retryAfter: '9999999999' }, 1, 60_000],
  ['an HTTP-date a year ahead is capped', { statusCode: 503, retryAfter: at(365 * 86_400) }, 1, 60_000],
  ['zero seconds is raised to baseDelayMs', { statusCode: 429, retryAfter: '0' }, 1, 1_000],
  ['seconds below the floor are raised to baseDelayMs', { statusCode: 503, retryAfter: '0' }, 3, 1_000],
  ['an HTTP-date in the past is raised to baseDelayMs', { statusCode: 429, retryAfter: at(-60) }, 1, 1_000],
  ['a later attempt still takes the asked delay', { statusCode: 429, retryAfter: '5' }, 6, 5_000],
  ['white space around seconds', { statusCode: 429, retryAfter: ' 20 ' }, 1, 20_000],
];

for (const [what, answer, attempt, expected] of HONOURED) {
  test(`nextRetry honours Retry-After: ${what}`, (t) => {
    for (const r of [0, 0.5, ALMOST_ONE]) {
      t.deepEqual(nextRetry(P, attempt, r, answer, NOW), { kind: 'retry', delayMs: expected, nextAttempt: attempt + 1, honouredRetryAfter: true });
    }
  });
}

/** [what, answer] — Retry-After ignored: the nominal, jittered delay applies. */
const IGNORED: Array<[string, AttemptAnswer]> = [
  ['429 without Retry-After', { statusCode: 429 }],
  ['503 without Retry-After', { statusCode: 503 }],
  ['429 with garbage', { statusCode: 429, retryAfter: 'later, please' }],
  ['503 with a negative number', { statusCode: 503, retryAfter: '-30' }],
  ['429 with a fractional number', { statusCode: 429, retryAfter: '2.5' }],
  ['503 with an eleven-digit number', { statusCode: 503, retryAfter: '12345678901' }],
  ['429 with a huge number', { statusCode: 429, retryAfter: '1'.repeat(400) }],
  ['429 with an empty value', { statusCode: 429, retryAfter: '' }],
  ['503 with an unparsable date', { statusCode: 503, retryAfter: 'Wed, 99 Oct 2015 99:99:99 GMT' }],
  ['500 with a valid Retry-After', { statusCode: 500, retryAfter: '30' }],
  ['502 with a valid Retry-After', { statusCode: 502, retryAfter: '30' }],
  ['504 with a valid Retry-After', { statusCode: 504, retryAfter: '30' }],
  ['404 with a valid Retry-After', { statusCode: 404, retryAfter: '30' }],
  ['400 with an HTTP-date', { statusCode: 400, retryAfter: at(30) }],
  ['301 with a valid Retry-After', { statusCode: 301, retryAfter: '30' }],
  ['no answer at all (network error) with a Retry-After', { statusCode: null, retryAfter: '30' }],
];

for (const [what, answer] of IGNORED) {
  test(`nextRetry ignores Retry-After: ${what}`, (t) => {
    for (const attempt of [1, 2, 5]) {
      for (const r of [0, 0.5, ALMOST_ONE]) {
        t.deepEqual(nextRetry(P, attempt, r, answer, NOW), nextRetry(P, attempt, r), `attempt ${attempt}, random ${r}`);
        const d = nextRetry(P, attempt, r, answer, NOW);
        if (d.kind === 'retry') t.false(d.honouredRetryAfter);
      }
    }
  });
}

test('nextRetry: a Retry-After never lets a receiver keep a webhook alive past maxAttempts', (t) => {
  for (const answer of [{ statusCode: 429, retryAfter: '5' }, { statusCode: 503, retryAfter: at(5) }]) {
    t.deepEqual(nextRetry(P, 10, 0.5, answer, NOW), { kind: 'dead', reason: 'attempts_exhausted', detail: 'all 10 attempts failed' });
    t.is(nextRetry(P, 9, 0.5, answer, NOW).kind, 'retry');
  }
});

test('nextRetry: an honoured Retry-After stays within [baseDelayMs, maxDelayMs] over a grid', (t) => {
  const policies = [P, policy({ baseDelayMs: 100, maxDelayMs: 100 }), policy({ baseDelayMs: 5_000, maxDelayMs: 3_600_000 })];
  const values = ['0', '1', '4', '5', '59', '3600', '3601', '604800', '9999999999', at(-10), at(0), at(1), at(7200), at(10 * 365 * 86_400)];
  for (const p of policies) {
    for (const status of [429, 503]) {
      for (const v of values) {
        const d = nextRetry(p, 1, 0.5, { statusCode: status, retryAfter: v }, NOW);
        if (d.kind !== 'retry') {
          t.fail(`${status} ${v} should retry`);
          continue;
        }
        t.true(d.honouredRetryAfter, `${status} ${v}`);
        t.true(d.delayMs >= p.baseDelayMs && d.delayMs <= p.maxDelayMs, `${JSON.stringify(p)} ${status} ${v}: ${d.delayMs}`);
        t.true(Number.isInteger(d.delayMs));
      }
    }
  }
});

/** [what, attempt, maxAttempts, answer] — 410 Gone is dead at once, reason 'gone'. */
const GONE: Array<[string, number, number, AttemptAnswer]> = [
  ['on the first attempt', 1, 10, { statusCode: 410 }],
  ['on a middle attempt', 5, 10, { statusCode: 410 }],
  ['on the last attempt (gone wins over exhausted)', 10, 10, { statusCode: 410 }],
  ['with maxAttempts 1', 1, 1, { statusCode: 410 }],
  ['with a Retry-After, which is ignored', 1, 10, { statusCode: 410, retryAfter: '5' }],
  ['with a Retry-After date, which is ignored', 2, 10, { statusCode: 410, retryAfter: at(5) }],
];

for (const [what, attempt, maxAttempts, answer] of GONE) {
  test(`nextRetry: 410 Gone is dead ${what}`, (t) => {
    for (const r of [0, 0.5, ALMOST_ONE]) {
      const d = nextRetry(policy({ maxAttempts }), attempt, r, answer, NOW);
      t.is(d.kind, 'dead');
      if (d.kind === 'dead') {
        t.is(d.reason, 'gone');
        t.regex(d.detail, /410/);
      }
    }
  });
}

test('nextRetry: statuses near 410 are ordinary failures', (t) => {
  for (const statusCode of [400, 404, 409, 411, 451, 500]) {
    const d = nextRetry(P, 1, 0.5, { statusCode }, NOW);
    t.deepEqual(d, nextRetry(P, 1, 0.5), String(statusCode));
  }
});

test('nextRetry: the answer-aware decision is pure and leaves its inputs alone', (t) => {
  const p = Object.freeze(policy({ baseDelayMs: 1_000, maxDelayMs: 60_000 }));
  const answer = Object.freeze({ statusCode: 503, retryAfter: at(30) });
  t.deepEqual(nextRetry(p, 2, 0.3, answer, NOW), nextRetry(p, 2, 0.3, answer, NOW));
  t.deepEqual(answer, { statusCode: 503, retryAfter: at(30) });
  // The HTTP-date is read against `now`, not the wall clock.
  const later = nextRetry(p, 2, 0.3, answer, NOW + 20_000);
  t.deepEqual(later, { kind: 'retry', delayMs: 10_000, nextAttempt: 3, honouredRetryAfter: true });
});

// --- Policy resolution: webhook fields over endpoint fields over server defaults -----------

const SERVER: RetryPolicy = Object.freeze({ maxAttempts: 30, baseDelayMs: 5_000, maxDelayMs: 3_600_000, backoffFactor: 2 });

/** [what, endpoint policy, webhook policy, expected] */
const RESOLVE: Array<[string, Partial<RetryPolicy> | null, Partial<RetryPolicy> | undefined, RetryPolicy]> = [
  ['neither: the server defaults', null, undefined, SERVER],
  ['empty objects: the server defaults', {}, {}, SERVER],
  ['endpoint fields over the server', { maxAttempts: 5, backoffFactor: 3 }, undefined, { ...SERVER, maxAttempts: 5, backoffFactor: 3 }],
  ['webhook fields over the server', null, { baseDelayMs: 200 }, { ...SERVER, baseDelayMs: 200 }],
  ['webhook fields over endpoint fields', { maxAttempts: 5, baseDelayMs: 1_000 }, { maxAttempts: 2 }, { ...SERVER, maxAttempts: 2, baseDelayMs: 1_000 }],
  ['each field from its own level', { baseDelayMs: 1_000, maxDelayMs: 10_000 }, { maxAttempts: 3 }, { maxAttempts: 3, baseDelayMs: 1_000, maxDelayMs: 10_000, backoffFactor: 2 }],
  ['the webhook overrides every field', { maxAttempts: 5, baseDelayMs: 1_000, maxDelayMs: 10_000, backoffFactor: 3 }, { maxAttempts: 1, baseDelayMs: 100, maxDelayMs: 100, backoffFactor: 1 }, { maxAttempts: 1, baseDelayMs: 100, maxDelayMs: 100, backoffFactor: 1 }],
  ['base equal to max is fine', { maxDelayMs: 5_000 }, undefined, { ...SERVER, maxDelayMs: 5_000 }],
];

for (const [what, endpoint, webhook, expected] of RESOLVE) {
  test(`resolvePolicy: ${what}`, (t) => {
    t.deepEqual(resolvePolicy(SERVER, endpoint, webhook), expected);
  });
}

test('resolvePolicy leaves its inputs alone', (t) => {
  const endpoint = Object.freeze({ maxAttempts: 5 });
  const webhook = Object.freeze({ baseDelayMs: 200 });
  resolvePolicy(SERVER, endpoint, webhook);
  t.deepEqual(endpoint, { maxAttempts: 5 });
  t.deepEqual(webhook, { baseDelayMs: 200 });
  t.deepEqual(SERVER, { maxAttempts: 30, baseDelayMs: 5_000, maxDelayMs: 3_600_000, backoffFactor: 2 });
});

/** [what, endpoint, webhook, field named in the 400] — the merged policy has max < base. */
const CONFLICTS: Array<[string, Partial<RetryPolicy> | null, Partial<RetryPolicy> | undefined, string]> = [
  ['webhook maxDelayMs below the server base', null, { maxDelayMs: 1_000 }, 'retryPolicy.maxDelayMs'],
  ['webhook baseDelayMs above the server max', null, { baseDelayMs: 4_000_000 }, 'retryPolicy.baseDelayMs'],
  ['webhook baseDelayMs above the endpoint max', { maxDelayMs: 2_000 }, { baseDelayMs: 3_000 }, 'retryPolicy.baseDelayMs'],
];

for (const [what, endpoint, webhook, field] of CONFLICTS) {
  test(`resolvePolicy refuses a merged policy with maxDelayMs < baseDelayMs: ${what}`, (t) => {
    const err = t.throws(() => resolvePolicy(SERVER, endpoint, webhook), { instanceOf: AppError });
    t.is(err?.status, 400);
    t.is(err?.errors?.[0]?.field, field);
  });
}
