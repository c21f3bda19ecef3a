import type { CircuitState } from '../db/schema.ts';

/**
 * Endpoint health and the circuit breaker, as pure functions of (state, event, now,
 * settings). The worker asks `admit` before an attempt and applies `afterAttempt` in the same
 * transaction that records it.
 *
 *   closed ──(N consecutive failures, or failure rate ≥ R over ≥ M attempts in the window)──▶ open
 *   open ──(next_probe_at reached; one worker claims the probe)──▶ half_open
 *   half_open ──(probe succeeds)──▶ closed        half_open ──(probe fails)──▶ open (longer cooldown)
 *
 * While open, due attempts wait for the probe time without using an attempt, so a dead
 * endpoint is not hammered and its webhooks do not burn their retry budget.
 */

export interface HealthSettings {
  /** Consecutive failures that open the circuit. */
  failureThreshold: number;
  /** Length of the failure-rate window, ms. */
  windowMs: number;
  /** Attempts the window needs before its failure rate counts. */
  minRequests: number;
  /** Failure rate (0-1) over the window that opens the circuit. */
  failureRate: number;
  /** First cooldown before a probe, ms; doubles each time the circuit opens again, up to maxCooldownMs. */
  cooldownMs: number;
  maxCooldownMs: number;
  /** An endpoint failing without a single success for this long is disabled, ms. */
  disableAfterMs: number;
}

export const DEFAULT_HEALTH_SETTINGS: HealthSettings = Object.freeze({
  failureThreshold: 5,
  windowMs: 5 * 60_000,
  minRequests: 20,
  failureRate: 0.5,
  cooldownMs: 30_000,
  maxCooldownMs: 3_600_000,
  disableAfterMs: 5 * 24 * 3_600_000,
});

export interface HealthState {
  circuitState: CircuitState;
  consecutiveFailures: number;
  windowStartedAt: Date;
  windowAttempts: number;
  windowFailures: number;
  openedAt: Date | null;
  openCount: number;
  nextProbeAt: Date | null;
  probeStartedAt: Date | null;
  lastSuccessAt: Date | null;
  lastFailureAt: Date | null;
  failingSince: Date | null;
  healthScore: number;
}

/** A new endpoint's health (the database defaults of endpoint_health), as of `since`. */
export function initialHealth(since: Date): HealthState {
  return {
    circuitState: 'closed',
    consecutiveFailures: 0,
    windowStartedAt: since,
    windowAttempts: 0,
    windowFailures: 0,
    openedAt: null,
    openCount: 0,
    nextProbeAt: null,
    probeStartedAt: null,
    lastSuccessAt: null,
    lastFailureAt: null,
    failingSince: null,
    healthScore: 100,
  };
}

export type Admission =
  | { action: 'send' }
  /** Send as the half-open probe; the caller must win the claim in the database first. */
  | { action: 'probe' }
  | { action: 'defer'; until: Date; reason: string };

/** While a probe is in flight, waiting attempts look again this often, so they follow a
 * successful probe within seconds instead of waiting out the probe's timeout. */
export const PROBE_WAIT_MS = 2_000;

/**
 * Whether an attempt may go out now. A probe whose worker vanished (claimed more than
 * `probeTimeoutMs` ago) may be claimed again.
 */
export function admit(state: HealthState, now: Date, probeTimeoutMs: number): Admission {
  if (state.circuitState === 'closed') return { action: 'send' };
  if (state.circuitState === 'open') {
    const at = state.nextProbeAt ?? now;
    return at <= now ? { action: 'probe' } : { action: 'defer', until: at, reason: 'circuit open' };
  }
  const started = state.probeStartedAt?.getTime() ?? 0;
  if (now.getTime() - started > probeTimeoutMs) return { action: 'probe' };
  return { action: 'defer', until: new Date(Math.min(started + probeTimeoutMs, now.getTime() + PROBE_WAIT_MS)), reason: 'probe in flight' };
}

export type Transition = 'opened' | 'reopened' | 'closed' | null;

export interface AfterAttempt {
  state: HealthState;
  transition: Transition;
  /** The endpoint has failed without a success for disableAfterMs: disable it. */
  disable: boolean;
}

/** Weight of the newest attempt in the health score. */
const SCORE_WEIGHT = 0.2;

/** The weighted average, moved at least one point toward the target so rounding cannot stall it short of 0 or 100. */
export function nextScore(prev: number, ok: boolean): number {
  const target = ok ? 100 : 0;
  const next = Math.round((1 - SCORE_WEIGHT) * prev + SCORE_WEIGHT * target);
  if (next !== prev || prev === target) return next;
  return prev + Math.sign(target - prev);
}

export function cooldownFor(openCount: number, settings: HealthSettings): number {
  return Math.min(settings.maxCooldownMs, settings.cooldownMs * Math.pow(2, Math.max(0, openCount - 1)));
}

/**
 * The health after an attempt. `probe` says whether this attempt was the half-open probe:
 * only a failed probe reopens the circuit (with a doubled cooldown). Attempts that were
 * already in flight when the circuit opened and fail later change the counters only; one
 * that succeeds closes the circuit, since the endpoint evidently answers.
 */
export function afterAttempt(prev: HealthState, ok: boolean, now: Date, settings: HealthSettings, probe = false): AfterAttempt {
  const windowExpired = now.getTime() - prev.windowStartedAt.getTime() >= settings.windowMs;
  const state: HealthState = {
    ...prev,
    windowStartedAt: windowExpired ? now : prev.windowStartedAt,
    windowAttempts: (windowExpired ? 0 : prev.windowAttempts) + 1,
    windowFailures: (windowExpired ? 0 : prev.windowFailures) + (ok ? 0 : 1),
    healthScore: nextScore(prev.healthScore, ok),
  };
  if (ok) {
    const wasOpen = prev.circuitState !== 'closed';
    if (wasOpen) {
      // A recovered endpoint starts a fresh window: failures from the outage must not reopen
      // the circuit at the first hiccup after recovery.
      Object.assign(state, { windowStartedAt: now, windowAttempts: 1, windowFailures: 0 });
    }
    Object.assign(state, {
      circuitState: 'closed',
      consecutiveFailures: 0,
      lastSuccessAt: now,
      failingSince: null,
      nextProbeAt: null,
      probeStartedAt: null,
      openedAt: null,
      openCount: 0,
    } satisfies Partial<HealthState>);
    return { state, transition: wasOpen ? 'closed' : null, disable: false };
  }
  state.consecutiveFailures = prev.consecutiveFailures + 1;
  state.lastFailureAt = now;
  state.failingSince = prev.failingSince ?? now;
  const disable = now.getTime() - state.failingSince.getTime() >= settings.disableAfterMs;

  let transition: Transition = null;
  const rateTrips = state.windowAttempts >= settings.minRequests && state.windowFailures / state.windowAttempts >= settings.failureRate;
  if (prev.circuitState !== 'closed' && !probe) {
    // A straggler that left before the circuit opened: the circuit stays as it is.
  } else if (prev.circuitState !== 'closed') {
    // The probe failed: open again, with a longer cooldown.
    state.circuitState = 'open';
    state.openCount = prev.openCount + 1;
    state.openedAt = now;
    state.probeStartedAt = null;
    state.nextProbeAt = new Date(now.getTime() + cooldownFor(state.openCount, settings));
    transition = 'reopened';
  } else if (state.consecutiveFailures >= settings.failureThreshold || rateTrips) {
    state.circuitState = 'open';
    state.openCount = 1;
    state.openedAt = now;
    state.nextProbeAt = new Date(now.getTime() + cooldownFor(1, settings));
    transition = 'opened';
  }
  return { state, transition, disable };
}
