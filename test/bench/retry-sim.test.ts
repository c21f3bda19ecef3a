import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import type { RetryPolicy } from '../../src/config.ts';
import { DEFAULT_HEALTH_SETTINGS, type HealthSettings } from '../../src/endpoints/health.ts';
import {
  DISTRIBUTIONS, HORIZON_MS, mulberry32, nominalDelays, parsePolicy, policySchedule, simulate, simulateSchedule, simulateWebhook,
  STANDARD_WEBHOOKS, VARIANTS, type Schedule, type VariantResult,
} from '../../bench/retry-sim.ts';

/**
 * The retry simulation (bench/retry-sim.ts): structural properties only, with a small n and a
 * fixed seed. The figures themselves are recorded in docs/RETRY_SCHEDULE.md.
 */

const SERVER: RetryPolicy = { maxAttempts: 30, baseDelayMs: 5_000, maxDelayMs: 3_600_000, backoffFactor: 2 };
const N = 400;
const SEED = 42;

/** Policies that exercise the exponential phase, the cap, deferrals by the circuit, one attempt. */
const POLICIES: RetryPolicy[] = [
  SERVER,
  { maxAttempts: 33, baseDelayMs: 30_000, maxDelayMs: 3_600_000, backoffFactor: 2 },
  { maxAttempts: 40, baseDelayMs: 100, maxDelayMs: 60_000, backoffFactor: 1.5 },
  { maxAttempts: 12, baseDelayMs: 100, maxDelayMs: 100, backoffFactor: 1 },
  { maxAttempts: 100, baseDelayMs: 1_000, maxDelayMs: 7 * 24 * 3_600_000, backoffFactor: 10 },
  { maxAttempts: 1, baseDelayMs: 5_000, maxDelayMs: 3_600_000, backoffFactor: 2 },
];
const SCHEDULES: Schedule[] = [...POLICIES.map((p) => policySchedule(p)), STANDARD_WEBHOOKS];

/** Random cases: an outage length (some 0, some beyond 24 h, some never ending) and jitter inputs. */
function cases(seed: number, count: number): Array<{ outageMs: number; jitter: Float64Array }> {
  const random = mulberry32(seed);
  const out: Array<{ outageMs: number; jitter: Float64Array }> = [];
  for (let i = 0; i < count; i++) {
    const pick = random();
    const outageMs = pick < 0.05 ? 0 : pick < 0.1 ? Number.POSITIVE_INFINITY : pick < 0.4 ? random() * 600_000 : random() * 2 * HORIZON_MS;
    const jitter = new Float64Array(100);
    for (let k = 0; k < jitter.length; k++) jitter[k] = random();
    out.push({ outageMs, jitter });
  }
  return out;
}

function fractionsOf(r: VariantResult): number[] {
  return [r.deliveredWithin24h, r.deliveredEventually, r.dead, r.held];
}

test('mulberry32 is deterministic for a seed and stays in [0, 1)', (t) => {
  const a = mulberry32(7);
  const b = mulberry32(7);
  const c = mulberry32(8);
  const xs = Array.from({ length: 1000 }, () => a());
  t.deepEqual(xs, Array.from({ length: 1000 }, () => b()));
  t.notDeepEqual(xs, Array.from({ length: 1000 }, () => c()));
  t.true(xs.every((x) => x >= 0 && x < 1));
});

test('outage samples lie in [0, 24 h] for every distribution', (t) => {
  for (const dist of DISTRIBUTIONS) {
    const random = mulberry32(SEED);
    for (let i = 0; i < 5_000; i++) {
      const L = dist.sample(random);
      t.true(L >= 0 && L <= HORIZON_MS, `${dist.name}: ${L}`);
    }
  }
});

test('fractions are in [0, 1], within-24h never exceeds eventually, and the ends add up', (t) => {
  for (const schedule of SCHEDULES) {
    const result = simulateSchedule(schedule, { n: N, seed: SEED, deadEndpointN: 20 });
    t.deepEqual(Object.keys(result.outages), DISTRIBUTIONS.map((d) => d.name));
    for (const [dist, perVariant] of Object.entries(result.outages)) {
      t.deepEqual(Object.keys(perVariant), [...VARIANTS]);
      for (const [variant, r] of Object.entries(perVariant)) {
        const what = `${schedule.name} ${JSON.stringify(schedule.kind === 'policy' ? schedule.policy : '')} ${dist} ${variant}`;
        for (const f of fractionsOf(r)) t.true(f >= 0 && f <= 1, `${what}: ${f}`);
        t.true(r.deliveredWithin24h <= r.deliveredEventually, what);
        t.true(Math.abs(r.deliveredEventually + r.dead + r.held - 1) < 1e-3, what);
        t.true(r.meanAttemptsDuringOutage >= 0 && r.meanAttemptsDuringOutage <= r.meanAttempts, what);
        t.true(r.meanAttempts <= (schedule.kind === 'policy' ? schedule.policy.maxAttempts : schedule.delaysMs.length + 1), what);
        if (r.deliveredEventually > 0) t.true(r.recoveryToDeliveryMs.median >= 0 && r.recoveryToDeliveryMs.median <= r.recoveryToDeliveryMs.p95, what);
      }
    }
    t.is(result.pass, result.outages['uniform']!.plain.deliveredWithin24h >= 0.95);
  }
});

test('the simulation is deterministic for a seed and depends on it', (t) => {
  const a = simulate(SERVER, { n: N, seed: SEED });
  const b = simulate(SERVER, { n: N, seed: SEED });
  t.deepEqual(a, b);
  const c = simulate(SERVER, { n: N, seed: SEED + 1 });
  t.notDeepEqual(a.result.outages, c.result.outages);
});

test('the report carries the model, the policy, the span, the distributions and the comparison', (t) => {
  const report = simulate(SERVER, { n: 50, seed: SEED });
  t.true(report.model.includes('one webhook'));
  t.deepEqual(report.policy, SERVER);
  t.is(report.nominalSpanMs, nominalDelays(policySchedule(SERVER)).reduce((s, d) => s + d, 0));
  t.is(report.nominalSpan, '20h 25m 15s');
  t.deepEqual(report.distributions.map((d) => d.name), ['uniform', 'logNormal', 'blip']);
  t.is(typeof report.pass, 'boolean');
  t.is(report.comparison.standardWebhooks.name, 'standardWebhooks');
});

test('maxAttempts 1 delivers exactly when the outage is 0', (t) => {
  const schedule = policySchedule({ ...SERVER, maxAttempts: 1 });
  for (const variant of VARIANTS) {
    for (const { outageMs, jitter } of cases(1, 300)) {
      const o = simulateWebhook(schedule, outageMs, jitter, variant);
      t.is(o.attempts, 1);
      if (outageMs === 0) t.deepEqual([o.end, o.deliveredAt], ['delivered', 0]);
      else t.deepEqual([o.end, o.deliveredAt], ['dead', null]);
    }
  }
  const result = simulateSchedule(schedule, { n: N, seed: SEED, deadEndpointN: 5 });
  for (const perVariant of Object.values(result.outages)) {
    for (const r of Object.values(perVariant)) t.is(r.deliveredEventually, 0); // no sampled L is exactly 0
  }
});

test('a webhook is delivered by the first attempt at or after the recovery, never before', (t) => {
  for (const schedule of SCHEDULES) {
    for (const variant of VARIANTS) {
      for (const { outageMs, jitter } of cases(2, 200)) {
        const o = simulateWebhook(schedule, outageMs, jitter, variant);
        if (o.deliveredAt !== null) {
          t.true(o.deliveredAt >= outageMs);
          t.is(o.attempts, o.failedAttempts + 1);
        } else {
          t.is(o.attempts, o.failedAttempts);
        }
        if (!Number.isFinite(outageMs)) t.is(o.deliveredAt, null);
      }
    }
  }
});

test('the circuit variants never send more attempts during the outage than the plain variant', (t) => {
  for (const schedule of SCHEDULES) {
    for (const { outageMs, jitter } of cases(3, 300)) {
      const plain = simulateWebhook(schedule, outageMs, jitter, 'plain');
      for (const variant of ['circuit', 'circuitSharedProbe'] as const) {
        const o = simulateWebhook(schedule, outageMs, jitter, variant);
        t.true(o.failedAttempts <= plain.failedAttempts, `${schedule.name} ${variant} L=${outageMs}: ${o.failedAttempts} > ${plain.failedAttempts}`);
      }
    }
    const result = simulateSchedule(schedule, { n: N, seed: SEED, deadEndpointN: 20 });
    for (const perVariant of Object.values(result.outages)) {
      t.true(perVariant.circuit.meanAttemptsDuringOutage <= perVariant.plain.meanAttemptsDuringOutage);
      t.true(perVariant.circuitSharedProbe.meanAttemptsDuringOutage <= perVariant.plain.meanAttemptsDuringOutage);
    }
    t.true(result.deadEndpoint.circuit.meanAttemptsWithin24h <= result.deadEndpoint.plain.meanAttemptsWithin24h);
    t.true(result.deadEndpoint.circuitSharedProbe.meanAttemptsWithin24h <= result.deadEndpoint.plain.meanAttemptsWithin24h);
  }
});

test('with shared probes a webhook sends at most failureThreshold attempts into an outage', (t) => {
  for (const schedule of SCHEDULES) {
    for (const { outageMs, jitter } of cases(4, 200)) {
      const o = simulateWebhook(schedule, outageMs, jitter, 'circuitSharedProbe');
      t.true(o.failedAttempts <= DEFAULT_HEALTH_SETTINGS.failureThreshold);
    }
  }
});

/** Health settings that reach the rarer paths: the failure-rate trip, short cooldowns, disabling. */
const HEALTHS: HealthSettings[] = [
  DEFAULT_HEALTH_SETTINGS,
  { ...DEFAULT_HEALTH_SETTINGS, failureThreshold: 50, minRequests: 3, failureRate: 0.5, windowMs: 2_000 },
  { ...DEFAULT_HEALTH_SETTINGS, failureThreshold: 2, cooldownMs: 100, maxCooldownMs: 5_000, disableAfterMs: 3_600_000 },
];

test('the numeric circuit breaker gives exactly what the real admit/afterAttempt give', (t) => {
  for (const health of HEALTHS) {
    for (const schedule of SCHEDULES) {
      for (const variant of ['circuit', 'circuitSharedProbe'] as const) {
        for (const { outageMs, jitter } of cases(5, 60)) {
          t.deepEqual(
            simulateWebhook(schedule, outageMs, jitter, variant, health, false),
            simulateWebhook(schedule, outageMs, jitter, variant, health, true),
            `${schedule.name} ${variant} L=${outageMs}`,
          );
        }
      }
    }
  }
  t.deepEqual(simulate(SERVER, { n: 100, seed: SEED }), simulate(SERVER, { n: 100, seed: SEED, exact: true }));
});

test('the disable rule holds a webhook whose endpoint never recovers (circuit variants only)', (t) => {
  const health = { ...DEFAULT_HEALTH_SETTINGS, disableAfterMs: 3_600_000 };
  const schedule = policySchedule({ maxAttempts: 100, baseDelayMs: 60_000, maxDelayMs: 600_000, backoffFactor: 1 });
  const jitter = new Float64Array(100).fill(0.5);
  t.is(simulateWebhook(schedule, Number.POSITIVE_INFINITY, jitter, 'plain', health).end, 'dead');
  t.is(simulateWebhook(schedule, Number.POSITIVE_INFINITY, jitter, 'circuit', health).end, 'held');
  t.is(simulateWebhook(schedule, Number.POSITIVE_INFINITY, jitter, 'circuitSharedProbe', health).end, 'held');
});

test('plain attempts follow nextRetry: with random 0.5 they fall on the nominal schedule', (t) => {
  const jitter = new Float64Array(100).fill(0.5);
  for (const policy of POLICIES) {
    const o = simulateWebhook(policySchedule(policy), Number.POSITIVE_INFINITY, jitter, 'plain');
    t.is(o.attempts, policy.maxAttempts);
    // nextRetry rounds each delay to whole milliseconds.
    t.is(o.lastAttemptAt, nominalDelays(policySchedule(policy)).reduce((s, d) => s + Math.round(d), 0));
  }
});

test('the Standard Webhooks schedule is the spec table', (t) => {
  const result = simulateSchedule(STANDARD_WEBHOOKS, { n: 10, seed: SEED, deadEndpointN: 1 });
  t.deepEqual(result.nominalAttemptTimes, ['0s', '5s', '5m 5s', '35m 5s', '2h 35m 5s', '7h 35m 5s', '17h 35m 5s', '31h 35m 5s', '51h 35m 5s', '75h 35m 5s']);
  t.is(result.maxAttempts, 10);
});

test('parsePolicy takes four numbers within the API limits', (t) => {
  t.deepEqual(parsePolicy('33,30000,3600000,2'), { maxAttempts: 33, baseDelayMs: 30_000, maxDelayMs: 3_600_000, backoffFactor: 2 });
  t.deepEqual(parsePolicy(' 5, 100, 100, 1.5 '), { maxAttempts: 5, baseDelayMs: 100, maxDelayMs: 100, backoffFactor: 1.5 });
  for (const bad of ['', '30,5000,3600000', '0,5000,3600000,2', '101,5000,3600000,2', '30,99,3600000,2', '30,5000,604800001,2', '30,5000,3600000,0.5', '30,5000,3600000,11', '30,5000,1000,2', '2.5,5000,3600000,2', 'a,b,c,d']) {
    t.throws(() => parsePolicy(bad), undefined, bad);
  }
});

const CLI = fileURLToPath(new URL('../../bench/retry-sim.ts', import.meta.url));

test('the CLI prints one JSON object and refuses bad arguments', (t) => {
  const ok = spawnSync(process.execPath, [CLI, '--n', '200', '--seed', '3', '--policy', '33,30000,3600000,2'], { encoding: 'utf8' });
  t.is(ok.status, 0, ok.stderr);
  const report = JSON.parse(ok.stdout) as { n: number; seed: number; policy: RetryPolicy; pass: boolean };
  t.deepEqual([report.n, report.seed, report.policy], [200, 3, parsePolicy('33,30000,3600000,2')]);
  t.is(typeof report.pass, 'boolean');

  const bad = spawnSync(process.execPath, [CLI, '--policy', '0,1,2,3'], { encoding: 'utf8' });
  t.is(bad.status, 2);
  t.is(bad.stdout, '');
  t.regex(bad.stderr, /maxAttempts/);
});
