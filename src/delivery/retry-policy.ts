import type { RetryPolicy } from '../config.ts';

/**
 * The retry decision is pure: a function of the policy, the attempt that just failed, and a
 * random number, so it is tested with tables of cases and simulated without clocks.
 */

/** Each delay is spread over ±JITTER of its nominal value, so retries of a burst of webhooks that
 * failed together do not all arrive together. */
export const JITTER = 0.2;

/** Nominal delay after failed attempt `attempt` (1-based): min(maxDelayMs, baseDelayMs * backoffFactor^(attempt-1)). */
export function nominalDelayMs(policy: RetryPolicy, attempt: number): number {
  const raw = policy.baseDelayMs * Math.pow(policy.backoffFactor, attempt - 1);
  return Math.min(policy.maxDelayMs, raw);
}

export type RetryDecision =
  | { kind: 'retry'; delayMs: number; nextAttempt: number }
  | { kind: 'dead'; reason: string };

/**
 * What to do after attempt `attempt` failed. `random` is in [0, 1). The jittered delay never
 * exceeds maxDelayMs, so a policy's ceiling is a promise, and never falls below 0.
 */
export function nextRetry(policy: RetryPolicy, attempt: number, random: number): RetryDecision {
  if (attempt >= policy.maxAttempts) {
    return { kind: 'dead', reason: `all ${policy.maxAttempts} attempts failed` };
  }
  const nominal = nominalDelayMs(policy, attempt);
  const jittered = nominal * (1 - JITTER + 2 * JITTER * random);
  const delayMs = Math.max(0, Math.min(policy.maxDelayMs, Math.round(jittered)));
  return { kind: 'retry', delayMs, nextAttempt: attempt + 1 };
}
