import type { RetryPolicy } from '../config.ts';

/**
 * The retry decision is pure: a function of the policy, the attempt that just failed, the
 * receiver's answer, the time and a random number, so it is tested with tables of cases and
 * simulated (bench/retry-sim.ts) without clocks.
 */

/** Each delay is spread over ±JITTER of its nominal value, so retries of a burst of webhooks that
 * failed together do not all arrive together. */
export const JITTER = 0.2;

/** Nominal delay after failed attempt `attempt` (1-based): min(maxDelayMs, baseDelayMs * backoffFactor^(attempt-1)). */
export function nominalDelayMs(policy: RetryPolicy, attempt: number): number {
  const raw = policy.baseDelayMs * Math.pow(policy.backoffFactor, attempt - 1);
  return Math.min(policy.maxDelayMs, raw);
}

/** What the receiver said, as far as the retry decision cares. */
export interface AttemptAnswer {
  statusCode: number | null;
  /** The raw Retry-After header, if any. */
  retryAfter?: string | undefined;
}

export type RetryDecision =
  | { kind: 'retry'; delayMs: number; nextAttempt: number; honouredRetryAfter: boolean }
  | { kind: 'dead'; reason: 'attempts_exhausted' | 'gone'; detail: string };

/** Retry-After values beyond this many digits are garbage, not a plan. */
const MAX_SECONDS_DIGITS = 10;

/**
 * Retry-After as milliseconds from `now`: delta-seconds or an HTTP-date (RFC 9110 §10.2.3).
 * Anything else, including negative numbers and dates that do not parse, is undefined: the
 * policy's own delay applies.
 */
export function parseRetryAfter(value: string | undefined, now: number): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return text.length > MAX_SECONDS_DIGITS ? undefined : Number(text) * 1000;
  // IMF-fixdate, and the two obsolete forms recipients must still accept (RFC 9110 §5.6.7):
  // RFC 850 ("Sunday, 06-Nov-94 08:49:37 GMT") and asctime ("Sun Nov  6 08:49:37 1994").
  const imf = /^[A-Za-z]{3}, \d{2} [A-Za-z]{3} \d{4} \d{2}:\d{2}:\d{2} GMT$/;
  const rfc850 = /^[A-Za-z]{6,9}, \d{2}-[A-Za-z]{3}-\d{2} \d{2}:\d{2}:\d{2} GMT$/;
  const asctime = /^[A-Za-z]{3} [A-Za-z]{3} [ \d]\d \d{2}:\d{2}:\d{2} \d{4}$/;
  if (!imf.test(text) && !rfc850.test(text) && !asctime.test(text)) return undefined;
  if (asctime.test(text)) {
    // asctime carries no zone; it is GMT by definition, which Date.parse would not assume.
    const at = Date.parse(`${text} GMT`);
    return Number.isNaN(at) ? undefined : Math.max(0, at - now);
  }
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/**
 * What to do after attempt `attempt` (counted within the current budget, 1-based) failed.
 * `random` is in [0, 1).
 *
 * - 410 Gone: the receiver asks us to stop; the webhook is dead (and the caller disables the
 *   endpoint).
 * - 429 and 503 with a usable Retry-After: that delay, kept within [baseDelayMs, maxDelayMs],
 *   so a receiver can slow us down but cannot stall a webhook beyond the policy's ceiling.
 * - Otherwise the nominal exponential delay with ±20% jitter, never above maxDelayMs.
 */
export function nextRetry(policy: RetryPolicy, attempt: number, random: number, answer: AttemptAnswer = { statusCode: null }, now = 0): RetryDecision {
  if (answer.statusCode === 410) return { kind: 'dead', reason: 'gone', detail: 'the receiver answered 410 Gone' };
  if (attempt >= policy.maxAttempts) {
    return { kind: 'dead', reason: 'attempts_exhausted', detail: `all ${policy.maxAttempts} attempts failed` };
  }
  if (answer.statusCode === 429 || answer.statusCode === 503) {
    const asked = parseRetryAfter(answer.retryAfter, now);
    if (asked !== undefined) {
      const delayMs = Math.min(policy.maxDelayMs, Math.max(policy.baseDelayMs, asked));
      return { kind: 'retry', delayMs, nextAttempt: attempt + 1, honouredRetryAfter: true };
    }
  }
  const nominal = nominalDelayMs(policy, attempt);
  const jittered = nominal * (1 - JITTER + 2 * JITTER * random);
  const delayMs = Math.max(0, Math.min(policy.maxDelayMs, Math.round(jittered)));
  return { kind: 'retry', delayMs, nextAttempt: attempt + 1, honouredRetryAfter: false };
}
