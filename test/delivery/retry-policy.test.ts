import test from 'ava';
import type { RetryPolicy } from '../../src/config.ts';
import { JITTER, nextRetry, nominalDelayMs } from '../../src/delivery/retry-policy.ts';

/** The retry decision is pure: tables of (policy, attempt, random) → decision. */

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
    t.deepEqual(nextRetry(p, attempt, random), { kind: 'retry', delayMs: expected, nextAttempt: attempt + 1 });
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
        if (d.kind === 'dead') t.true(d.reason.includes(String(maxAttempts)), d.reason);
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
