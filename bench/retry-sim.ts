/**
 * Retry-schedule simulation: does a retry policy deliver a webhook whose endpoint was down for
 * a while, and how soon after the endpoint came back, and how often does it knock on the door
 * of a dead endpoint meanwhile?
 *
 *   node bench/retry-sim.ts [--policy maxAttempts,baseDelayMs,maxDelayMs,factor] [--n 100000] [--seed 42] [--check] [--exact]
 *
 * Prints one JSON object on stdout. Without --policy the server default (HOOKRELAY_RETRY_*
 * defaults, as loadConfig reads them) is simulated. --check exits 1 when the policy misses the
 * success criterion (≥ 95% of webhooks delivered within 24 h on the uniform outage). --exact
 * drives the real circuit-breaker functions instead of their (tested) numeric transcription.
 *
 * The schedule comes from the real code: every delay is nextRetry(policy, attempt, random,
 * {statusCode: 500}, now) with `random` from a seeded PRNG, and the circuit breaker follows
 * admit/afterAttempt of src/endpoints/health.ts (through a numeric transcription that the tests
 * check against the real functions, or the real ones with --exact). docs/RETRY_SCHEDULE.md
 * explains the model and records results.
 */

import { loadConfig, RETRY_LIMITS, type RetryPolicy } from '../src/config.ts';
import { JITTER, nextRetry, nominalDelayMs } from '../src/delivery/retry-policy.ts';
import { admit, afterAttempt, cooldownFor, DEFAULT_HEALTH_SETTINGS, initialHealth, type HealthSettings, type HealthState } from '../src/endpoints/health.ts';

export const HOUR_MS = 3_600_000;
/** The success criterion: delivered within this long of the first attempt... */
export const HORIZON_MS = 24 * HOUR_MS;
/** ...for at least this fraction of webhooks whose endpoint recovers within HORIZON_MS. */
export const TARGET = 0.95;

// --- PRNG -------------------------------------------------------------------------------------

/** mulberry32: a small, fast, seedable 32-bit PRNG; values in [0, 1) like Math.random. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** An independent stream per purpose: the seed mixed with the FNV-1a hash of a label. */
function streamSeed(seed: number, label: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < label.length; i++) h = Math.imul(h ^ label.charCodeAt(i), 0x01000193);
  return (h ^ Math.imul(seed >>> 0, 0x9e3779b1)) >>> 0;
}

// --- Outage distributions ---------------------------------------------------------------------

export interface OutageDistribution {
  name: string;
  description: string;
  params: Record<string, number | string>;
  /** One outage length in ms, in [0, HORIZON_MS]: the endpoint recovers within 24 hours. */
  sample(random: () => number): number;
}

/** Standard normal by Box-Muller. */
function normal(random: () => number): number {
  const u = 1 - random(); // (0, 1]
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
}

/** Draws until a value falls in [0, HORIZON_MS]: the distribution conditioned on recovery within 24 h. */
function truncated(draw: (random: () => number) => number): (random: () => number) => number {
  return (random) => {
    for (;;) {
      const value = draw(random);
      if (value >= 0 && value <= HORIZON_MS) return value;
    }
  };
}

const LOGNORMAL_MEDIAN_MS = HOUR_MS;
const LOGNORMAL_SIGMA = 2;
const BLIP_MEAN_MS = 5 * 60_000;

const DISTRIBUTION_LIST: OutageDistribution[] = [
  {
    name: 'uniform',
    description: 'outage length uniform on [0, 24 h]',
    params: { minMs: 0, maxMs: HORIZON_MS },
    sample: (random) => random() * HORIZON_MS,
  },
  {
    name: 'logNormal',
    description: 'heavy-tailed: log-normal with median 1 h and sigma 2 (ln L ~ N(ln 1 h, 2^2)), conditioned on L <= 24 h (about 5.6% of the untruncated mass lies beyond 24 h)',
    params: { medianMs: LOGNORMAL_MEDIAN_MS, sigma: LOGNORMAL_SIGMA, truncateAtMs: HORIZON_MS },
    sample: truncated((random) => LOGNORMAL_MEDIAN_MS * Math.exp(LOGNORMAL_SIGMA * normal(random))),
  },
  {
    name: 'blip',
    description: 'short blip: exponential with mean 5 min, conditioned on L <= 24 h',
    params: { meanMs: BLIP_MEAN_MS, truncateAtMs: HORIZON_MS },
    sample: truncated((random) => -BLIP_MEAN_MS * Math.log(1 - random())),
  },
];
export const DISTRIBUTIONS: readonly OutageDistribution[] = Object.freeze(DISTRIBUTION_LIST);

// --- Schedules --------------------------------------------------------------------------------

/** What is simulated: a hookrelay retry policy (through nextRetry), or a fixed table of delays. */
export type Schedule =
  | { kind: 'policy'; name: string; policy: RetryPolicy }
  | { kind: 'fixed'; name: string; description: string; delaysMs: readonly number[] };

/** The example schedule of the Standard Webhooks spec (delays after each failed attempt, no jitter):
 * attempts at 0, 5 s, 5 min 5 s, 35 min 5 s, 2 h 35 min, 7 h 35 min, 17 h 35 min, 31 h 35 min, 51 h 35 min, 75 h 35 min. */
export const STANDARD_WEBHOOKS: Schedule = Object.freeze({
  kind: 'fixed',
  name: 'standardWebhooks',
  description: 'Standard Webhooks spec example: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h (each after the previous failure; no jitter)',
  delaysMs: Object.freeze([5_000, 5 * 60_000, 30 * 60_000, 2 * HOUR_MS, 5 * HOUR_MS, 10 * HOUR_MS, 14 * HOUR_MS, 20 * HOUR_MS, 24 * HOUR_MS]),
});

export function policySchedule(policy: RetryPolicy, name = 'policy'): Schedule {
  return { kind: 'policy', name, policy };
}

export function maxAttemptsOf(schedule: Schedule): number {
  return schedule.kind === 'policy' ? schedule.policy.maxAttempts : schedule.delaysMs.length + 1;
}

/** The delay after failed attempt `attempt` (1-based), or null when it was the last one. */
function delayAfter(schedule: Schedule, attempt: number, random: number, now: number): number | null {
  if (schedule.kind === 'fixed') return schedule.delaysMs[attempt - 1] ?? null;
  const decision = nextRetry(schedule.policy, attempt, random, { statusCode: 500 }, now);
  return decision.kind === 'retry' ? decision.delayMs : null;
}

/** Nominal delays (no jitter) between consecutive attempts. */
export function nominalDelays(schedule: Schedule): number[] {
  if (schedule.kind === 'fixed') return [...schedule.delaysMs];
  const delays: number[] = [];
  for (let attempt = 1; attempt < schedule.policy.maxAttempts; attempt++) delays.push(nominalDelayMs(schedule.policy, attempt));
  return delays;
}

// --- One webhook ------------------------------------------------------------------------------

/**
 * - `plain`: no circuit breaker; attempts at the times the schedule gives.
 * - `circuit`: the breaker with one webhook on the endpoint. After the 5th consecutive failure
 *   the circuit opens; a due attempt before the probe time is deferred to it without using an
 *   attempt; at the probe time the webhook's own attempt is the probe (as in the worker), so it
 *   uses an attempt; a failed probe reopens the circuit with a doubled cooldown.
 * - `circuitSharedProbe`: the same, but other traffic to the endpoint carries every probe, so
 *   once the circuit is open this webhook only waits (no attempts used) until a probe at a time
 *   >= L closes it; then it is sent (delivered).
 */
export type Variant = 'plain' | 'circuit' | 'circuitSharedProbe';
export const VARIANTS: readonly Variant[] = Object.freeze(['plain', 'circuit', 'circuitSharedProbe']);

export interface WebhookOutcome {
  /** ms after the first attempt, or null when never delivered. */
  deliveredAt: number | null;
  /** How it ended. */
  end: 'delivered' | 'dead' | 'held';
  /** Attempts this webhook sent, the delivering one included. */
  attempts: number;
  /** Attempts this webhook sent before the endpoint recovered (all of them failed). */
  failedAttempts: number;
  /** Times the open circuit deferred a due attempt (no attempt used). */
  deferrals: number;
  /** Probes sent by other traffic during the outage (circuitSharedProbe only). */
  foreignProbes: number;
  /** Time of the last attempt this webhook sent, ms after the first. */
  lastAttemptAt: number;
}

/**
 * The endpoint's circuit as the simulation needs it; times are ms after the first attempt.
 * Two implementations: `realBreaker` drives the real admit/afterAttempt of
 * src/endpoints/health.ts; `fastBreaker` is a numeric transcription of them for a failing
 * endpoint (8x faster: no Dates, no objects). test/bench/retry-sim.test.ts checks that both
 * give identical outcomes, so the fast one is what the CLI uses.
 */
interface Breaker {
  /** Whether an attempt may go out at `at`: send, probe (this attempt is the probe), or wait until. */
  admit(at: number): number;
  /** Records an attempt (or a foreign probe) at `at`; returns true when the endpoint is to be disabled. */
  record(ok: boolean, at: number, probe: boolean): boolean;
  isOpen(): boolean;
  nextProbe(): number;
}

/** admit() answers: these, or a time to wait until (>= 0 means defer). */
const SEND = -1;
const PROBE = -2;

/** An arbitrary epoch for the Dates the health functions take; only differences matter. */
const EPOCH = Date.UTC(2025, 0, 1);
/** The worker's probe timeout: the default delivery timeout (15 s) + 30 s. Never reached here. */
const PROBE_TIMEOUT_MS = 45_000;

const CLOSED: HealthState = Object.freeze(initialHealth(new Date(EPOCH)));

function realBreaker(health: HealthSettings): Breaker {
  let state: HealthState = CLOSED;
  return {
    admit(at) {
      const admission = admit(state, new Date(EPOCH + at), PROBE_TIMEOUT_MS);
      if (admission.action === 'send') return SEND;
      if (admission.action === 'probe') return PROBE;
      return admission.until.getTime() - EPOCH;
    },
    record(ok, at, probe) {
      const now = new Date(EPOCH + at);
      // A probe is claimed first (claimProbe: half_open, probe_started_at = now), then recorded.
      const before = probe ? { ...state, circuitState: 'half_open' as const, probeStartedAt: now } : state;
      const after = afterAttempt(before, ok, now, health, probe);
      state = after.state;
      return after.disable;
    },
    isOpen: () => state.circuitState === 'open',
    nextProbe: () => (state.nextProbeAt === null ? Number.POSITIVE_INFINITY : state.nextProbeAt.getTime() - EPOCH),
  };
}

/** admit/afterAttempt transcribed for numbers (the health score and timestamps nobody reads are left out). */
function fastBreaker(health: HealthSettings): Breaker {
  let open = false;
  let consecutive = 0;
  let windowStart = 0;
  let windowAttempts = 0;
  let windowFailures = 0;
  let openCount = 0;
  let nextProbe = Number.POSITIVE_INFINITY;
  let failingSince = Number.NaN;
  return {
    admit(at) {
      if (!open) return SEND;
      return nextProbe <= at ? PROBE : nextProbe;
    },
    record(ok, at, probe) {
      if (at - windowStart >= health.windowMs) {
        windowStart = at;
        windowAttempts = 0;
        windowFailures = 0;
      }
      windowAttempts++;
      if (ok) {
        // A recovery starts a fresh window.
        if (open) {
          windowStart = at;
          windowAttempts = 1;
          windowFailures = 0;
        }
        open = false;
        consecutive = 0;
        openCount = 0;
        nextProbe = Number.POSITIVE_INFINITY;
        failingSince = Number.NaN;
        return false;
      }
      windowFailures++;
      consecutive++;
      if (Number.isNaN(failingSince)) failingSince = at;
      const disable = at - failingSince >= health.disableAfterMs;
      const rateTrips = windowAttempts >= health.minRequests && windowFailures / windowAttempts >= health.failureRate;
      if (open) {
        // Only a failed probe reopens (longer); a straggler changes the counters only.
        if (probe) {
          openCount++;
          nextProbe = at + cooldownFor(openCount, health);
        }
      } else if (consecutive >= health.failureThreshold || rateTrips) {
        open = true;
        openCount = 1;
        nextProbe = at + cooldownFor(1, health);
      }
      return disable;
    },
    isOpen: () => open,
    nextProbe: () => nextProbe,
  };
}

/**
 * One webhook to an endpoint that fails from t = 0 (the first attempt) until t = outageMs and
 * succeeds from then on: an attempt at a time >= outageMs delivers. `jitter[k]` is the random
 * input of nextRetry after attempt k+1 (the same for all variants, so they are coupled).
 * `exact` drives the real health functions instead of their numeric transcription.
 */
export function simulateWebhook(schedule: Schedule, outageMs: number, jitter: ArrayLike<number>, variant: Variant, health: HealthSettings = DEFAULT_HEALTH_SETTINGS, exact = false): WebhookOutcome {
  const out: WebhookOutcome = { deliveredAt: null, end: 'dead', attempts: 0, failedAttempts: 0, deferrals: 0, foreignProbes: 0, lastAttemptAt: 0 };
  const breaker = variant === 'plain' ? null : exact ? realBreaker(health) : fastBreaker(health);
  const shared = variant === 'circuitSharedProbe';
  let due = 0;
  let attempt = 1;
  for (;;) {
    let probe = false;
    if (breaker) {
      // Probes carried by other traffic go out at their time (they win the probe claim).
      while (shared && breaker.isOpen() && breaker.nextProbe() <= due) {
        const at = breaker.nextProbe();
        const ok = at >= outageMs;
        if (!ok) out.foreignProbes++;
        if (breaker.record(ok, at, true)) { out.end = 'held'; return out; }
      }
      const admission = breaker.admit(due);
      if (admission >= 0) {
        out.deferrals++;
        due = admission;
        continue;
      }
      probe = admission === PROBE;
    }
    // The attempt goes out.
    out.attempts++;
    out.lastAttemptAt = due;
    const ok = due >= outageMs;
    const disable = breaker !== null && breaker.record(ok, due, probe);
    if (ok) {
      out.deliveredAt = due;
      out.end = 'delivered';
      return out;
    }
    out.failedAttempts++;
    const delay = delayAfter(schedule, attempt, jitter[attempt - 1] ?? 0.5, EPOCH + due);
    if (delay === null) { out.end = 'dead'; return out; }
    // The worker disables the endpoint in the transaction that records the attempt; the next
    // attempt then finds it disabled and holds the webhook.
    if (disable) { out.end = 'held'; return out; }
    due += delay;
    attempt++;
  }
}

// --- Many webhooks ----------------------------------------------------------------------------

export interface VariantResult {
  /** Delivered at most 24 h after the first attempt (the success criterion). */
  deliveredWithin24h: number;
  deliveredEventually: number;
  /** Among delivered webhooks: delivery time minus recovery time. */
  recoveryToDeliveryMs: { median: number; p95: number; max: number };
  /** Attempts sent to the endpoint while it was down (all failed): the hammering measure. */
  meanAttemptsDuringOutage: number;
  /** Attempts sent in all, the delivering one included. */
  meanAttempts: number;
  /** Fraction that ran out of attempts (dead) or were held by the endpoint being disabled. */
  dead: number;
  held: number;
  /** Circuit variants: mean deferrals by the open circuit, and probes by other traffic during the outage. */
  meanDeferrals?: number;
  meanForeignProbesDuringOutage?: number;
}

export interface DeadEndpointResult {
  /** A permanently failing endpoint: attempts this webhook sends in the first 24 h and in all. */
  meanAttemptsWithin24h: number;
  meanAttempts: number;
  /** When the last attempt went out, ms after the first (mean): the retry span actually realised. */
  meanLastAttemptAtMs: number;
  end: { dead: number; held: number };
}

export interface ScheduleResult {
  name: string;
  policy?: RetryPolicy;
  description?: string;
  maxAttempts: number;
  /** Sum of the nominal delays: how long a webhook is retried for (jitter moves it by up to ±20%). */
  nominalSpanMs: number;
  nominalSpan: string;
  /** Nominal attempt times after the first attempt. */
  nominalAttemptTimes: string[];
  outages: Record<string, Record<Variant, VariantResult>>;
  deadEndpoint: Record<Variant, DeadEndpointResult>;
  /** uniform, plain: deliveredWithin24h >= 0.95 */
  pass: boolean;
  /** logNormal, plain: deliveredWithin24h >= 0.95 */
  passHeavyTailed: boolean;
}

export interface SimulationOptions {
  n: number;
  seed: number;
  distributions?: readonly OutageDistribution[];
  variants?: readonly Variant[];
  health?: HealthSettings;
  /** Samples for the dead-endpoint figures; default min(n, 2000) (they vary only by jitter). */
  deadEndpointN?: number;
  /** Drive the real admit/afterAttempt instead of their numeric transcription (same results, slower). */
  exact?: boolean;
}

/** Nearest-rank percentile of sorted values. */
function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1));
  return sorted[rank] ?? Number.NaN;
}

const round = (x: number, digits = 4): number => Number(x.toFixed(digits));

export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return String(ms);
  const s = Math.round(ms / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  const parts: string[] = [];
  if (h) parts.push(`${h}h`);
  if (m) parts.push(`${m}m`);
  if (sec || parts.length === 0) parts.push(`${sec}s`);
  return parts.join(' ');
}

export function simulateSchedule(schedule: Schedule, options: SimulationOptions): ScheduleResult {
  const { n, seed } = options;
  const distributions = options.distributions ?? DISTRIBUTIONS;
  const variants = options.variants ?? VARIANTS;
  const health = options.health ?? DEFAULT_HEALTH_SETTINGS;
  const exact = options.exact ?? false;
  const maxAttempts = maxAttemptsOf(schedule);
  const jitter = new Float64Array(Math.max(1, maxAttempts));

  const outages: Record<string, Record<Variant, VariantResult>> = {};
  for (const dist of distributions) {
    // Separate streams: the outage lengths are the same whatever the schedule simulated.
    const outageRandom = mulberry32(streamSeed(seed, `${dist.name}:outage`));
    const jitterRandom = mulberry32(streamSeed(seed, `${dist.name}:jitter`));
    const acc = variants.map(() => ({
      within: 0, delivered: 0, attempts: 0, failed: 0, dead: 0, held: 0, deferrals: 0, probes: 0,
      lags: new Float64Array(n), lagCount: 0,
    }));
    for (let i = 0; i < n; i++) {
      const outageMs = dist.sample(outageRandom);
      for (let k = 0; k < jitter.length; k++) jitter[k] = jitterRandom();
      variants.forEach((variant, v) => {
        const a = acc[v]!;
        const o = simulateWebhook(schedule, outageMs, jitter, variant, health, exact);
        a.attempts += o.attempts;
        a.failed += o.failedAttempts;
        a.deferrals += o.deferrals;
        a.probes += o.foreignProbes;
        if (o.end === 'dead') a.dead++;
        if (o.end === 'held') a.held++;
        if (o.deliveredAt !== null) {
          a.delivered++;
          if (o.deliveredAt <= HORIZON_MS) a.within++;
          a.lags[a.lagCount++] = o.deliveredAt - outageMs;
        }
      });
    }
    const perVariant = {} as Record<Variant, VariantResult>;
    variants.forEach((variant, v) => {
      const a = acc[v]!;
      const lags = a.lags.subarray(0, a.lagCount).sort();
      const result: VariantResult = {
        deliveredWithin24h: round(a.within / n),
        deliveredEventually: round(a.delivered / n),
        recoveryToDeliveryMs: { median: Math.round(percentile(lags, 0.5)), p95: Math.round(percentile(lags, 0.95)), max: Math.round(lags[lags.length - 1] ?? Number.NaN) },
        meanAttemptsDuringOutage: round(a.failed / n, 2),
        meanAttempts: round(a.attempts / n, 2),
        dead: round(a.dead / n),
        held: round(a.held / n),
      };
      if (variant !== 'plain') result.meanDeferrals = round(a.deferrals / n, 2);
      if (variant === 'circuitSharedProbe') result.meanForeignProbesDuringOutage = round(a.probes / n, 2);
      perVariant[variant] = result;
    });
    outages[dist.name] = perVariant;
  }

  // A permanently failing endpoint (never recovers): how much knocking, for how long.
  const deadN = options.deadEndpointN ?? Math.min(n, 2000);
  const deadRandom = mulberry32(streamSeed(seed, 'dead:jitter'));
  const deadAcc = variants.map(() => ({ within: 0, attempts: 0, last: 0, dead: 0, held: 0 }));
  for (let i = 0; i < deadN; i++) {
    for (let k = 0; k < jitter.length; k++) jitter[k] = deadRandom();
    variants.forEach((variant, v) => {
      const a = deadAcc[v]!;
      const o = simulateWebhook(schedule, Number.POSITIVE_INFINITY, jitter, variant, health, exact);
      a.attempts += o.attempts;
      a.last += o.lastAttemptAt;
      if (o.end === 'dead') a.dead++; else a.held++;
      // The attempts a dead endpoint gets in 24 h are those made before a recovery at 24 h.
      a.within += simulateWebhook(schedule, HORIZON_MS, jitter, variant, health, exact).failedAttempts;
    });
  }
  const deadEndpoint = {} as Record<Variant, DeadEndpointResult>;
  variants.forEach((variant, v) => {
    const a = deadAcc[v]!;
    deadEndpoint[variant] = {
      meanAttemptsWithin24h: round(a.within / deadN, 2),
      meanAttempts: round(a.attempts / deadN, 2),
      meanLastAttemptAtMs: Math.round(a.last / deadN),
      end: { dead: round(a.dead / deadN), held: round(a.held / deadN) },
    };
  });

  const delays = nominalDelays(schedule);
  const times: string[] = [];
  let t = 0;
  for (const d of delays) times.push(formatDuration((t += d)));
  const nominalSpanMs = delays.reduce((s, d) => s + d, 0);
  const uniformPlain = outages['uniform']?.plain;
  const heavyPlain = outages['logNormal']?.plain;
  return {
    name: schedule.name,
    ...(schedule.kind === 'policy' ? { policy: schedule.policy } : { description: schedule.description }),
    maxAttempts,
    nominalSpanMs,
    nominalSpan: formatDuration(nominalSpanMs),
    nominalAttemptTimes: ['0s', ...times],
    outages,
    deadEndpoint,
    pass: uniformPlain !== undefined && uniformPlain.deliveredWithin24h >= TARGET,
    passHeavyTailed: heavyPlain !== undefined && heavyPlain.deliveredWithin24h >= TARGET,
  };
}

export const MODEL = [
  'One endpoint, one webhook. The endpoint fails every attempt (answer 500) from t = 0, when the webhook\'s first attempt is made, until it recovers at t = L; an attempt at t >= L is delivered.',
  'Delays: the real nextRetry(policy, attempt, random, {statusCode: 500}, now) with random from a seeded mulberry32 stream (±20% jitter); the Standard Webhooks table has no jitter.',
  'plain: no circuit breaker. circuit: the breaker of src/endpoints/health.ts, admit/afterAttempt with the default settings (5 consecutive failures open it; cooldown 30 s doubling to 1 h); deferred attempts use no attempt, but with one webhook per endpoint the probe is the webhook\'s own attempt (as in the worker), so it uses one.',
  'circuitSharedProbe: as circuit, but other traffic to the endpoint carries every probe, so once open this webhook only waits and is sent when a probe at t >= L closes the circuit.',
  'Simplifications: one webhook per endpoint (the circuit opens on this webhook\'s failures only; the failure-rate trip never fires); attempts take no time; workers pick due jobs instantly; Retry-After is never sent; disabling after 5 days of failure holds the webhook (circuit variants only).',
  'deliveredWithin24h counts deliveries at most 24 h after the first attempt; all outages end within 24 h (distributions conditioned on L <= 24 h).',
].join(' ');

export interface SimulationReport {
  model: string;
  n: number;
  seed: number;
  horizonMs: number;
  target: number;
  jitter: number;
  circuit: Pick<HealthSettings, 'failureThreshold' | 'cooldownMs' | 'maxCooldownMs' | 'disableAfterMs'>;
  distributions: Array<Pick<OutageDistribution, 'name' | 'description' | 'params'>>;
  policy: RetryPolicy;
  nominalSpanMs: number;
  nominalSpan: string;
  pass: boolean;
  passHeavyTailed: boolean;
  result: ScheduleResult;
  comparison: { standardWebhooks: ScheduleResult };
}

/** The whole report for one policy, with the Standard Webhooks example schedule for comparison. */
export function simulate(policy: RetryPolicy, options: SimulationOptions): SimulationReport {
  const health = options.health ?? DEFAULT_HEALTH_SETTINGS;
  const distributions = options.distributions ?? DISTRIBUTIONS;
  const result = simulateSchedule(policySchedule(policy), options);
  return {
    model: MODEL,
    n: options.n,
    seed: options.seed,
    horizonMs: HORIZON_MS,
    target: TARGET,
    jitter: JITTER,
    circuit: { failureThreshold: health.failureThreshold, cooldownMs: health.cooldownMs, maxCooldownMs: health.maxCooldownMs, disableAfterMs: health.disableAfterMs },
    distributions: distributions.map(({ name, description, params }) => ({ name, description, params })),
    policy,
    nominalSpanMs: result.nominalSpanMs,
    nominalSpan: result.nominalSpan,
    pass: result.pass,
    passHeavyTailed: result.passHeavyTailed,
    result,
    comparison: { standardWebhooks: simulateSchedule(STANDARD_WEBHOOKS, options) },
  };
}

// --- CLI --------------------------------------------------------------------------------------

export function parsePolicy(text: string): RetryPolicy {
  const parts = text.split(',').map((p) => p.trim());
  if (parts.length !== 4 || parts.some((p) => p === '' || !Number.isFinite(Number(p)))) {
    throw new Error(`--policy wants maxAttempts,baseDelayMs,maxDelayMs,factor (got ${JSON.stringify(text)})`);
  }
  const [maxAttempts, baseDelayMs, maxDelayMs, backoffFactor] = parts.map(Number) as [number, number, number, number];
  const policy: RetryPolicy = { maxAttempts, baseDelayMs, maxDelayMs, backoffFactor };
  const L = RETRY_LIMITS;
  const check = (name: keyof RetryPolicy, integer: boolean) => {
    const value = policy[name];
    const { min, max } = L[name];
    if ((integer && !Number.isInteger(value)) || value < min || value > max) throw new Error(`--policy: ${name} must be ${integer ? 'a whole number ' : ''}from ${min} to ${max} (got ${value})`);
  };
  check('maxAttempts', true);
  check('baseDelayMs', true);
  check('maxDelayMs', true);
  check('backoffFactor', false);
  if (maxDelayMs < baseDelayMs) throw new Error('--policy: maxDelayMs must not be less than baseDelayMs');
  return policy;
}

function parseArgs(argv: readonly string[]): { policy: RetryPolicy; n: number; seed: number; check: boolean; exact: boolean } {
  let policy: RetryPolicy | undefined;
  let n = 100_000;
  let seed = 42;
  let check = false;
  let exact = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${arg} needs a value`);
      return v;
    };
    if (arg === '--policy') policy = parsePolicy(value());
    else if (arg === '--n') n = Number(value());
    else if (arg === '--seed') seed = Number(value());
    else if (arg === '--check') check = true;
    else if (arg === '--exact') exact = true;
    else throw new Error(`unknown argument ${JSON.stringify(arg)}; usage: node bench/retry-sim.ts [--policy maxAttempts,baseDelayMs,maxDelayMs,factor] [--n 100000] [--seed 42] [--check] [--exact]`);
  }
  if (!Number.isInteger(n) || n < 1 || n > 10_000_000) throw new Error('--n must be a whole number from 1 to 10000000');
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new Error('--seed must be a whole number from 0 to 4294967295');
  return { policy: policy ?? { ...loadConfig({}).retry }, n, seed, check, exact };
}

if (import.meta.main) {
  try {
    const args = parseArgs(process.argv.slice(2));
    const report = simulate(args.policy, { n: args.n, seed: args.seed, exact: args.exact });
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    if (args.check && !report.pass) process.exitCode = 1;
  } catch (err) {
    process.stderr.write(`retry-sim: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 2;
  }
}
