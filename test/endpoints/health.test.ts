import test from 'ava';
import { admit, afterAttempt, cooldownFor, DEFAULT_HEALTH_SETTINGS, initialHealth, type HealthSettings, type HealthState, PROBE_WAIT_MS } from '../../src/endpoints/health.ts';

/**
 * The circuit breaker is pure: tables of (state, event, now, settings) → state. No clocks, no
 * database; the worker's wiring is covered end to end in test/delivery/circuit.test.ts.
 */

const T0 = Date.parse('2025-01-01T00:00:00.000Z');
const at = (ms: number) => new Date(T0 + ms);

const SETTINGS: HealthSettings = Object.freeze({
  failureThreshold: 3,
  windowMs: 60_000,
  minRequests: 10,
  failureRate: 0.5,
  cooldownMs: 1_000,
  maxCooldownMs: 8_000,
  disableAfterMs: 3_600_000,
});

/** Settings under which only the failure rate can open the circuit. */
const RATE_ONLY: HealthSettings = Object.freeze({ ...SETTINGS, failureThreshold: 1_000 });

function fresh(over: Partial<HealthState> = {}): HealthState {
  return { ...initialHealth(at(0)), ...over };
}

/** Applies outcomes ('F' failure, 'S' success) one per `stepMs`, starting at `startMs`. */
function run(state: HealthState, outcomes: string, settings = SETTINGS, startMs = 1, stepMs = 1) {
  const steps: ReturnType<typeof afterAttempt>[] = [];
  let s = state;
  [...outcomes].forEach((o, i) => {
    const r = afterAttempt(s, o === 'S', at(startMs + i * stepMs), settings);
    steps.push(r);
    s = r.state;
  });
  return { state: s, steps, last: steps[steps.length - 1]! };
}

// --- admit ----------------------------------------------------------------------------------

const PROBE_TIMEOUT = 5_000;

test('admit: a closed circuit sends', (t) => {
  t.deepEqual(admit(fresh(), at(0), PROBE_TIMEOUT), { action: 'send' });
  // Whatever stale fields say.
  t.deepEqual(admit(fresh({ nextProbeAt: at(10_000), probeStartedAt: at(0) }), at(1), PROBE_TIMEOUT), { action: 'send' });
});

/** [what, state, now (ms after T0), expected admission] */
const ADMIT: Array<[string, HealthState, number, ReturnType<typeof admit>]> = [
  ['open, before the probe time: defer until it', fresh({ circuitState: 'open', openedAt: at(0), openCount: 1, nextProbeAt: at(1_000) }), 500,
    { action: 'defer', until: at(1_000), reason: 'circuit open' }],
  ['open, 1 ms before the probe time: still defer', fresh({ circuitState: 'open', openedAt: at(0), openCount: 1, nextProbeAt: at(1_000) }), 999,
    { action: 'defer', until: at(1_000), reason: 'circuit open' }],
  ['open, at the probe time: probe', fresh({ circuitState: 'open', openedAt: at(0), openCount: 1, nextProbeAt: at(1_000) }), 1_000, { action: 'probe' }],
  ['open, after the probe time: probe', fresh({ circuitState: 'open', openedAt: at(0), openCount: 1, nextProbeAt: at(1_000) }), 60_000, { action: 'probe' }],
  ['open without a probe time: probe', fresh({ circuitState: 'open', openedAt: at(0), openCount: 1 }), 0, { action: 'probe' }],
  ['half open, probe just started: defer, and look again within PROBE_WAIT_MS', fresh({ circuitState: 'half_open', probeStartedAt: at(1_000), nextProbeAt: at(1_000) }), 1_000,
    { action: 'defer', until: at(1_000 + PROBE_WAIT_MS), reason: 'probe in flight' }],
  ['half open, 1 ms before the probe times out: defer', fresh({ circuitState: 'half_open', probeStartedAt: at(1_000), nextProbeAt: at(1_000) }), 1_000 + PROBE_TIMEOUT - 1,
    { action: 'defer', until: at(1_000 + PROBE_TIMEOUT), reason: 'probe in flight' }],
  ['half open, the probe timed out: a new probe', fresh({ circuitState: 'half_open', probeStartedAt: at(1_000), nextProbeAt: at(1_000) }), 1_000 + PROBE_TIMEOUT + 1, { action: 'probe' }],
  ['half open, long after the probe: a new probe', fresh({ circuitState: 'half_open', probeStartedAt: at(1_000), nextProbeAt: at(1_000) }), 3_600_000, { action: 'probe' }],
  ['half open without a probe start: a new probe', fresh({ circuitState: 'half_open', nextProbeAt: at(0) }), 0, { action: 'probe' }],
];

for (const [what, state, now, expected] of ADMIT) {
  test(`admit: ${what}`, (t) => {
    t.deepEqual(admit(state, at(now), PROBE_TIMEOUT), expected);
  });
}

test('admit: a deferral is never into the past and never later than needed', (t) => {
  const open = fresh({ circuitState: 'open', openedAt: at(0), openCount: 1, nextProbeAt: at(2_000) });
  const half = fresh({ circuitState: 'half_open', probeStartedAt: at(2_000), nextProbeAt: at(2_000) });
  for (let now = 0; now <= 10_000; now += 250) {
    for (const s of [open, half]) {
      const a = admit(s, at(now), PROBE_TIMEOUT);
      if (a.action === 'defer') {
        t.true(a.until.getTime() >= T0 + now, `${s.circuitState} at ${now}`);
        if (s.circuitState === 'open') {
          // At `until`, the open circuit admits its probe.
          t.is(admit(s, a.until, PROBE_TIMEOUT).action, 'probe', `open at ${now}`);
        } else {
          // While a probe is in flight, waiting attempts look again soon, and never later than
          // the moment the probe counts as lost.
          t.true(a.until.getTime() <= T0 + now + PROBE_WAIT_MS, `half open at ${now}`);
          t.true(a.until.getTime() <= T0 + 2_000 + PROBE_TIMEOUT, `half open at ${now}`);
        }
      } else {
        t.is(a.action, 'probe');
      }
    }
  }
});

// --- cooldownFor ----------------------------------------------------------------------------

/** [openCount, expected ms] with cooldown 1000, max 8000 */
const COOLDOWN: Array<[number, number]> = [
  [0, 1_000],
  [1, 1_000],
  [2, 2_000],
  [3, 4_000],
  [4, 8_000],
  [5, 8_000],
  [50, 8_000],
  [10_000, 8_000],
];

for (const [openCount, expected] of COOLDOWN) {
  test(`cooldownFor: opened ${openCount} time(s) → ${expected} ms`, (t) => {
    t.is(cooldownFor(openCount, SETTINGS), expected);
  });
}

test('cooldownFor: the defaults double from 30 s up to an hour', (t) => {
  t.is(cooldownFor(1, DEFAULT_HEALTH_SETTINGS), 30_000);
  t.is(cooldownFor(2, DEFAULT_HEALTH_SETTINGS), 60_000);
  t.is(cooldownFor(8, DEFAULT_HEALTH_SETTINGS), 3_600_000); // 30 s · 2^7 = 3840 s, capped
  t.is(cooldownFor(1_000, DEFAULT_HEALTH_SETTINGS), 3_600_000);
});

test('cooldownFor: a max below the first cooldown caps it too', (t) => {
  t.is(cooldownFor(1, { ...SETTINGS, cooldownMs: 5_000, maxCooldownMs: 2_000 }), 2_000);
});

// --- afterAttempt: opening on consecutive failures --------------------------------------------

test('afterAttempt: failures below the threshold keep the circuit closed and count', (t) => {
  const { steps } = run(fresh(), 'FF');
  t.deepEqual(steps.map((s) => [s.state.circuitState, s.state.consecutiveFailures, s.transition]), [
    ['closed', 1, null],
    ['closed', 2, null],
  ]);
});

test('afterAttempt: the threshold-th consecutive failure opens the circuit', (t) => {
  const { last, state } = run(fresh(), 'FFF', SETTINGS, 100, 100);
  t.is(last.transition, 'opened');
  t.is(state.circuitState, 'open');
  t.is(state.consecutiveFailures, 3);
  t.is(state.openCount, 1);
  t.deepEqual(state.openedAt, at(300));
  t.deepEqual(state.nextProbeAt, at(300 + SETTINGS.cooldownMs));
  t.deepEqual(state.lastFailureAt, at(300));
  t.deepEqual(state.failingSince, at(100));
  t.false(last.disable);
});

test('afterAttempt: threshold 1 opens on the first failure', (t) => {
  const r = afterAttempt(fresh(), false, at(5), { ...SETTINGS, failureThreshold: 1 });
  t.is(r.transition, 'opened');
  t.is(r.state.circuitState, 'open');
});

test('afterAttempt: a success resets the run of failures, so interleaved failures never open', (t) => {
  const { steps, state } = run(fresh(), 'FFSFFSFFSFF', { ...SETTINGS, minRequests: 1_000 });
  t.true(steps.every((s) => s.state.circuitState === 'closed' && s.transition === null));
  t.is(state.consecutiveFailures, 2);
});

// --- afterAttempt: opening on the failure rate -------------------------------------------------

test('afterAttempt: a failure rate ≥ R over ≥ minRequests attempts opens the circuit', (t) => {
  // S F S F … : never two failures in a row, 5 of 10 failed (0.5 ≥ 0.5) at the 10th attempt.
  const { steps, state, last } = run(fresh(), 'SFSFSFSFSF', RATE_ONLY);
  t.true(steps.slice(0, 9).every((s) => s.state.circuitState === 'closed'));
  t.is(last.transition, 'opened');
  t.is(state.circuitState, 'open');
  t.is(state.windowAttempts, 10);
  t.is(state.windowFailures, 5);
  t.is(state.consecutiveFailures, 1);
});

test('afterAttempt: below minRequests even a 100% failure rate does not open', (t) => {
  const { steps } = run(fresh(), 'FFFFFFFFF', RATE_ONLY); // 9 < 10
  t.true(steps.every((s) => s.state.circuitState === 'closed' && s.transition === null));
  t.is(steps[8]!.state.windowFailures, 9);
  // The 10th failure reaches minRequests.
  const tenth = afterAttempt(steps[8]!.state, false, at(100), RATE_ONLY);
  t.is(tenth.transition, 'opened');
});

test('afterAttempt: a failure rate below R does not open', (t) => {
  // 4 of 10 failed, then 5 of 11 (0.45): closed; 6 of 12 (0.5): open.
  const { steps } = run(fresh(), 'SSSSSSFFFFFF', RATE_ONLY);
  t.true(steps.slice(0, 11).every((s) => s.state.circuitState === 'closed'), JSON.stringify(steps.map((s) => s.state.circuitState)));
  t.is(steps[11]!.transition, 'opened');
  t.is(steps[11]!.state.windowAttempts, 12);
  t.is(steps[11]!.state.windowFailures, 6);
});

test('afterAttempt: the rate R is a setting (0.8 needs 8 of 10)', (t) => {
  const settings = { ...RATE_ONLY, failureRate: 0.8 };
  t.is(run(fresh(), 'SSSFFFFFFF', settings).state.circuitState, 'closed'); // 7/10
  t.is(run(fresh(), 'SSFFFFFFFF', settings).state.circuitState, 'open'); // 8/10
});

test('afterAttempt: the window resets after windowMs', (t) => {
  // 9 failures inside the window…
  const nine = run(fresh(), 'FFFFFFFFF', RATE_ONLY, 1, 1).state;
  t.is(nine.windowAttempts, 9);
  // …then the 10th lands when the window is over: a new window with 1 attempt, still closed.
  const late = afterAttempt(nine, false, at(RATE_ONLY.windowMs), RATE_ONLY);
  t.is(late.state.circuitState, 'closed');
  t.is(late.transition, null);
  t.deepEqual(late.state.windowStartedAt, at(RATE_ONLY.windowMs));
  t.is(late.state.windowAttempts, 1);
  t.is(late.state.windowFailures, 1);
  // Just inside the window, the same 10th failure opens it.
  const inside = afterAttempt(nine, false, at(RATE_ONLY.windowMs - 1), RATE_ONLY);
  t.is(inside.transition, 'opened');
  t.is(inside.state.windowAttempts, 10);
});

test('afterAttempt: a success in a fresh window counts in the new window only', (t) => {
  const s = fresh({ windowAttempts: 7, windowFailures: 7, windowStartedAt: at(0), consecutiveFailures: 0 });
  const r = afterAttempt(s, true, at(SETTINGS.windowMs + 5), SETTINGS);
  t.is(r.state.windowAttempts, 1);
  t.is(r.state.windowFailures, 0);
  t.deepEqual(r.state.windowStartedAt, at(SETTINGS.windowMs + 5));
});

test('afterAttempt: windowFailures never exceeds windowAttempts', (t) => {
  const { steps } = run(fresh(), 'FSFFSSFFFSFFFFSFSFSSSFFF', { ...SETTINGS, windowMs: 5 }, 1, 2);
  for (const s of steps) t.true(s.state.windowFailures >= 0 && s.state.windowFailures <= s.state.windowAttempts);
});

// --- afterAttempt: probes, reopening and closing ------------------------------------------------

function openedAt(ms: number, openCount = 1): HealthState {
  return fresh({
    circuitState: 'open', consecutiveFailures: 3, openedAt: at(ms), openCount,
    nextProbeAt: at(ms + cooldownFor(openCount, SETTINGS)), failingSince: at(ms - 10), lastFailureAt: at(ms), healthScore: 40,
  });
}

test('afterAttempt: a failed probe reopens with a doubled cooldown', (t) => {
  const probing: HealthState = { ...openedAt(0), circuitState: 'half_open', probeStartedAt: at(1_000) };
  const r = afterAttempt(probing, false, at(1_050), SETTINGS, true);
  t.is(r.transition, 'reopened');
  t.is(r.state.circuitState, 'open');
  t.is(r.state.openCount, 2);
  t.deepEqual(r.state.openedAt, at(1_050));
  t.deepEqual(r.state.nextProbeAt, at(1_050 + 2_000));
  t.is(r.state.probeStartedAt, null);
  t.is(r.state.consecutiveFailures, 4);
});

test('afterAttempt: repeated failed probes double the cooldown up to maxCooldown', (t) => {
  let s = openedAt(0);
  let now = 0;
  const cooldowns: number[] = [];
  for (let i = 0; i < 7; i++) {
    now = s.nextProbeAt!.getTime() - T0;
    t.is(admit(s, at(now), PROBE_TIMEOUT).action, 'probe');
    s = { ...s, circuitState: 'half_open', probeStartedAt: at(now) };
    const r = afterAttempt(s, false, at(now + 10), SETTINGS, true);
    t.is(r.transition, 'reopened');
    cooldowns.push(r.state.nextProbeAt!.getTime() - (T0 + now + 10));
    s = r.state;
  }
  t.deepEqual(cooldowns, [2_000, 4_000, 8_000, 8_000, 8_000, 8_000, 8_000]);
});

test('afterAttempt: a straggler failing while open changes the counters, not the circuit', (t) => {
  const before = openedAt(0);
  const r = afterAttempt(before, false, at(200), SETTINGS);
  t.is(r.transition, null);
  t.is(r.state.circuitState, 'open');
  t.is(r.state.openCount, before.openCount);
  t.deepEqual(r.state.nextProbeAt, before.nextProbeAt);
  t.is(r.state.consecutiveFailures, before.consecutiveFailures + 1);
});

test('afterAttempt: a straggler failing while a probe is in flight leaves the probe alone', (t) => {
  const probing: HealthState = { ...openedAt(0), circuitState: 'half_open', probeStartedAt: at(1_000) };
  const r = afterAttempt(probing, false, at(1_010), SETTINGS, false);
  t.is(r.transition, null);
  t.is(r.state.circuitState, 'half_open');
  t.deepEqual(r.state.probeStartedAt, at(1_000));
});

test('afterAttempt: a recovery starts a fresh failure-rate window', (t) => {
  const probing: HealthState = { ...openedAt(0), circuitState: 'half_open', probeStartedAt: at(1_000), windowAttempts: 30, windowFailures: 30 };
  const r = afterAttempt(probing, true, at(1_010), SETTINGS, true);
  t.is(r.transition, 'closed');
  t.is(r.state.windowAttempts, 1);
  t.is(r.state.windowFailures, 0);
  t.deepEqual(r.state.windowStartedAt, at(1_010));
});

test('afterAttempt: a successful probe closes the circuit and resets it', (t) => {
  const probing: HealthState = { ...openedAt(0, 3), circuitState: 'half_open', probeStartedAt: at(4_000), windowAttempts: 3, windowFailures: 3 };
  const r = afterAttempt(probing, true, at(4_020), SETTINGS);
  t.is(r.transition, 'closed');
  t.false(r.disable);
  t.like(r.state, {
    circuitState: 'closed',
    consecutiveFailures: 0,
    openCount: 0,
    openedAt: null,
    nextProbeAt: null,
    probeStartedAt: null,
    failingSince: null,
  });
  t.deepEqual(r.state.lastSuccessAt, at(4_020));
  t.deepEqual(r.state.lastFailureAt, at(0)); // history kept
  t.is(admit(r.state, at(4_021), PROBE_TIMEOUT).action, 'send');
  // Reset: the next opening starts over at the first cooldown.
  const again = run(r.state, 'FFF', SETTINGS, 5_000, 1);
  t.is(again.last.transition, 'opened');
  t.is(again.state.openCount, 1);
  t.deepEqual(again.state.nextProbeAt, at(5_002 + SETTINGS.cooldownMs));
});

test('afterAttempt: a success while closed is no transition', (t) => {
  const r = afterAttempt(fresh({ consecutiveFailures: 2, failingSince: at(0) }), true, at(10), SETTINGS);
  t.is(r.transition, null);
  t.is(r.state.consecutiveFailures, 0);
  t.is(r.state.failingSince, null);
});

test('afterAttempt: a success that arrives while open (a straggler) closes the circuit', (t) => {
  const r = afterAttempt(openedAt(0), true, at(100), SETTINGS);
  t.is(r.transition, 'closed');
  t.is(r.state.circuitState, 'closed');
});

test('afterAttempt: a whole life cycle, step by step', (t) => {
  let s = fresh();
  const trace: string[] = [];
  const step = (ok: boolean, ms: number, probe = false) => {
    const r = afterAttempt(s, ok, at(ms), SETTINGS, probe);
    s = r.state;
    trace.push(`${ok ? 'S' : 'F'}→${s.circuitState}${r.transition ? `(${r.transition})` : ''}`);
  };
  step(true, 1);
  step(false, 2);
  step(false, 3);
  step(false, 4); // opens, probe at 1004
  t.is(admit(s, at(500), PROBE_TIMEOUT).action, 'defer');
  t.is(admit(s, at(1_004), PROBE_TIMEOUT).action, 'probe');
  s = { ...s, circuitState: 'half_open', probeStartedAt: at(1_004) };
  t.is(admit(s, at(1_005), PROBE_TIMEOUT).action, 'defer');
  step(false, 1_010, true); // the probe fails: reopens, probe at 3010
  t.is(admit(s, at(3_009), PROBE_TIMEOUT).action, 'defer');
  t.is(admit(s, at(3_010), PROBE_TIMEOUT).action, 'probe');
  s = { ...s, circuitState: 'half_open', probeStartedAt: at(3_010) };
  step(true, 3_020, true);
  t.deepEqual(trace, ['S→closed', 'F→closed', 'F→closed', 'F→open(opened)', 'F→open(reopened)', 'S→closed(closed)']);
});

// --- afterAttempt: disabling after a long run of failures -------------------------------------

test('afterAttempt: disable once failing without a success for disableAfterMs', (t) => {
  const settings = { ...SETTINGS, failureThreshold: 1_000, minRequests: 1_000_000, disableAfterMs: 10_000 };
  let s = fresh();
  const disables: Array<[number, boolean]> = [];
  for (const ms of [0, 1_000, 5_000, 9_999, 10_000, 20_000]) {
    const r = afterAttempt(s, false, at(ms), settings);
    disables.push([ms, r.disable]);
    s = r.state;
  }
  t.deepEqual(disables, [[0, false], [1_000, false], [5_000, false], [9_999, false], [10_000, true], [20_000, true]]);
  t.deepEqual(s.failingSince, at(0));
});

test('afterAttempt: a success restarts the failing run, so it does not disable', (t) => {
  const settings = { ...SETTINGS, failureThreshold: 1_000, minRequests: 1_000_000, disableAfterMs: 10_000 };
  let s = afterAttempt(fresh(), false, at(0), settings).state;
  s = afterAttempt(s, false, at(6_000), settings).state;
  const ok = afterAttempt(s, true, at(7_000), settings);
  t.false(ok.disable);
  t.is(ok.state.failingSince, null);
  const next = afterAttempt(ok.state, false, at(12_000), settings);
  t.false(next.disable); // failing since 12 000 only
  t.deepEqual(next.state.failingSince, at(12_000));
  t.true(afterAttempt(next.state, false, at(22_000), settings).disable);
});

test('afterAttempt: disabling is independent of the circuit (a failed probe can disable)', (t) => {
  const settings = { ...SETTINGS, disableAfterMs: 10_000 };
  const probing: HealthState = { ...openedAt(0), failingSince: at(0), circuitState: 'half_open', probeStartedAt: at(10_000) };
  const r = afterAttempt(probing, false, at(10_001), settings, true);
  t.true(r.disable);
  t.is(r.transition, 'reopened');
});

test('afterAttempt: a success never disables', (t) => {
  const r = afterAttempt(fresh({ failingSince: at(0), consecutiveFailures: 50 }), true, at(10 * SETTINGS.disableAfterMs), SETTINGS);
  t.false(r.disable);
});

// --- health score ---------------------------------------------------------------------------

test('health score: failures move it down, successes up, always within 0..100', (t) => {
  let s = fresh();
  const scores: number[] = [s.healthScore];
  let ms = 1;
  for (const o of 'FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSFSFSFSFSFSFS') {
    const prev = s.healthScore;
    s = afterAttempt(s, o === 'S', at(ms++), { ...SETTINGS, failureThreshold: 1_000, minRequests: 1_000_000 }).state;
    t.true(Number.isInteger(s.healthScore));
    t.true(s.healthScore >= 0 && s.healthScore <= 100, String(s.healthScore));
    if (o === 'F') t.true(s.healthScore <= prev, `failure raised ${prev} → ${s.healthScore}`);
    else t.true(s.healthScore >= prev, `success lowered ${prev} → ${s.healthScore}`);
    scores.push(s.healthScore);
  }
  // Clearly down after failures, clearly up after successes.
  t.true(scores[5]! < scores[0]!);
  t.true(scores[30]! <= 5, `after 30 failures: ${scores[30]}`);
  t.true(scores[60]! >= 95, `after 30 successes: ${scores[60]}`);
});

test('health score: the first failure from 100 and the first success from 0 each move it', (t) => {
  t.true(afterAttempt(fresh({ healthScore: 100 }), false, at(1), SETTINGS).state.healthScore < 100);
  t.true(afterAttempt(fresh({ healthScore: 0 }), true, at(1), SETTINGS).state.healthScore > 0);
  t.is(afterAttempt(fresh({ healthScore: 100 }), true, at(1), SETTINGS).state.healthScore, 100);
  t.is(afterAttempt(fresh({ healthScore: 0 }), false, at(1), SETTINGS).state.healthScore, 0);
});

test('health score: a long run of failures reaches 0 and a long run of successes reaches 100', (t) => {
  // "100 = every recent attempt succeeded" (migration 0002); an EWMA of weight 0.2 is within
  // 0.5 of its target after ~25 equal outcomes.
  const settings = { ...SETTINGS, failureThreshold: 1_000, minRequests: 1_000_000 };
  const down = run(fresh({ healthScore: 100 }), 'F'.repeat(50), settings).state.healthScore;
  const up = run(fresh({ healthScore: 0 }), 'S'.repeat(50), settings).state.healthScore;
  t.is(down, 0, `after 50 failures the score is ${down}`);
  t.is(up, 100, `after 50 successes the score is ${up}`);
});

test('afterAttempt is pure: the previous state is not changed', (t) => {
  const prev = Object.freeze(openedAt(0));
  const copy = { ...prev };
  afterAttempt(prev, false, at(10), SETTINGS);
  afterAttempt(prev, true, at(10), SETTINGS);
  t.deepEqual(prev, copy);
  t.deepEqual(afterAttempt(prev, false, at(10), SETTINGS), afterAttempt(prev, false, at(10), SETTINGS));
});
