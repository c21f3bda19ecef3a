import test from 'ava';
import { ERROR_CLASS } from '../../src/delivery/send.ts';
import { createMetrics } from '../../src/observability/metrics.ts';
import { ATTEMPT_OUTCOMES, attemptOutcome, readStats, worstEndpoints } from '../../src/observability/stats.ts';
import { freshDb, query } from '../helpers/db.ts';

/**
 * The outcome of an attempt is computed twice: in the worker's process for
 * hookrelay_attempts_total, and in SQL over hookrelay.attempts for /api/v1/stats. Both must
 * classify every recorded kind of attempt alike.
 */

const CASES: { ok: boolean; statusCode: number | null; errorClass: string | null; expected: string }[] = [
  { ok: true, statusCode: 200, errorClass: null, expected: 'success' },
  { ok: true, statusCode: 204, errorClass: null, expected: 'success' },
  { ok: false, statusCode: 301, errorClass: ERROR_CLASS.redirect, expected: 'http_3xx' },
  { ok: false, statusCode: 400, errorClass: ERROR_CLASS.httpStatus, expected: 'http_4xx' },
  { ok: false, statusCode: 429, errorClass: ERROR_CLASS.httpStatus, expected: 'http_4xx' },
  { ok: false, statusCode: 500, errorClass: ERROR_CLASS.httpStatus, expected: 'http_5xx' },
  { ok: false, statusCode: 503, errorClass: ERROR_CLASS.httpStatus, expected: 'http_5xx' },
  { ok: false, statusCode: null, errorClass: ERROR_CLASS.timeout, expected: 'timeout' },
  { ok: false, statusCode: null, errorClass: ERROR_CLASS.blocked, expected: 'blocked' },
  { ok: false, statusCode: null, errorClass: ERROR_CLASS.connectionRefused, expected: 'network' },
  { ok: false, statusCode: null, errorClass: ERROR_CLASS.connectionReset, expected: 'network' },
  { ok: false, statusCode: null, errorClass: ERROR_CLASS.dns, expected: 'network' },
  { ok: false, statusCode: null, errorClass: ERROR_CLASS.tls, expected: 'network' },
  { ok: false, statusCode: null, errorClass: ERROR_CLASS.invalidResponse, expected: 'network' },
  { ok: false, statusCode: null, errorClass: ERROR_CLASS.network, expected: 'network' },
];

test('every error class has a case here', (t) => {
  const covered = new Set(CASES.map((c) => c.errorClass));
  for (const cls of Object.values(ERROR_CLASS)) t.true(covered.has(cls), cls);
});

test('attempt outcomes: the metrics counter and the SQL of /api/v1/stats agree on every kind of attempt', async (t) => {
  const { url, handle } = await freshDb(t);
  await query(url, `INSERT INTO hookrelay.endpoints (id, url) VALUES ('ep_1', 'https://a.example.com/'), ('ep_2', 'https://b.example.com/')`);
  await query(url, `INSERT INTO hookrelay.webhooks (id, endpoint_id, url, body, retry_policy, status, attempts, next_attempt_at, updated_at)
    VALUES ('msg_1', 'ep_1', 'https://a.example.com/', '{}', '{}', 'retrying', $1, now(), now())`, [CASES.length]);
  const metrics = createMetrics({ db: handle.db, processMetrics: false });
  for (const [i, c] of CASES.entries()) {
    t.is(attemptOutcome(c.ok, c.statusCode, c.errorClass) as string, c.expected, JSON.stringify(c));
    await query(url, `INSERT INTO hookrelay.attempts (webhook_id, attempt, endpoint_id, started_at, duration_ms, status_code, outcome, error_class)
      VALUES ('msg_1', $1, 'ep_1', now(), 5, $2, $3, $4)`, [i + 1, c.statusCode, c.ok ? 'success' : 'failure', c.errorClass]);
    metrics.attemptMade({ ok: c.ok, statusCode: c.statusCode, errorClass: c.errorClass, durationMs: 5 });
  }
  const stats = await readStats(handle.db);
  const text = await metrics.render();
  for (const outcome of ATTEMPT_OUTCOMES) {
    const expected = CASES.filter((c) => c.expected === outcome).length;
    t.is(stats.attemptsByOutcome[outcome], expected, `stats ${outcome}`);
    t.regex(text, new RegExp(`^hookrelay_attempts_total\\{outcome="${outcome}"\\} ${expected}$`, 'm'), `metrics ${outcome}`);
  }
  t.is(stats.lastHour.attempts, CASES.length);
  t.is(stats.lastHour.failedAttempts, CASES.filter((c) => !c.ok).length);
  t.is(stats.backlog.retrying, 1);
  t.true(stats.oldestPendingAgeSeconds! >= 0);
  t.regex(text, /^hookrelay_backlog\{state="retrying"\} 1$/m);
});

test('worst endpoints: disabled first, then open, half-open and closed circuits, lowest score first; at most 10; deleted ones left out', async (t) => {
  const { url, handle } = await freshDb(t);
  await query(url, `INSERT INTO hookrelay.endpoints (id, url, enabled, deleted_at)
    SELECT 'ep_' || lpad(i::text, 2, '0'), 'https://e' || i || '.example.com/', i <> 14, CASE WHEN i = 13 THEN now() END FROM generate_series(1, 14) i`);
  await query(url, `UPDATE hookrelay.endpoint_health SET health_score = 100 - substr(endpoint_id, 4)::int * 5`);
  await query(url, `UPDATE hookrelay.endpoint_health SET circuit_state = 'open', next_probe_at = now() WHERE endpoint_id = 'ep_01'`);
  await query(url, `UPDATE hookrelay.endpoint_health SET circuit_state = 'half_open', next_probe_at = now() WHERE endpoint_id = 'ep_02'`);
  const worst = await worstEndpoints(handle.db);
  t.is(worst.length, 10);
  t.deepEqual(worst.slice(0, 3).map((e) => [e.endpointId, e.disabled, e.circuitState]), [['ep_14', true, 'closed'], ['ep_01', false, 'open'], ['ep_02', false, 'half_open']]);
  // The closed ones by score, lowest (highest number) first; the deleted ep_13 is not listed.
  t.deepEqual(worst.slice(3).map((e) => e.endpointId), ['ep_12', 'ep_11', 'ep_10', 'ep_09', 'ep_08', 'ep_07', 'ep_06']);
  t.false(worst.some((e) => e.endpointId === 'ep_13'));
  // The gauges label exactly these endpoints.
  const text = await createMetrics({ db: handle.db, processMetrics: false }).render();
  const labelled = [...text.matchAll(/^hookrelay_endpoint_health_score\{endpoint_id="([^"]+)"\}/gm)].map((m) => m[1]);
  t.deepEqual(labelled.sort(), worst.map((e) => e.endpointId).sort());
});
