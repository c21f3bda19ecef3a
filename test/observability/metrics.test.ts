import test, { type ExecutionContext } from 'ava';
import parsePrometheusTextFormat, { type PromFamily } from 'parse-prometheus-text-format';
import { createToken } from '../../src/api/tokens.ts';
import { query } from '../helpers/db.ts';
import { startReceiver } from '../helpers/receiver.ts';
import { eventually, startTestService, type TestService } from '../helpers/service.ts';

/**
 * A scripted run against a real service and receiver (successes, a retry that succeeds,
 * failures that end dead, a held webhook), then every figure of GET /metrics and
 * GET /api/v1/stats is checked against the rows in PostgreSQL.
 */

type Family = PromFamily;

async function scrape(svc: TestService): Promise<{ text: string; families: Map<string, Family> }> {
  const res = await svc.api('/metrics');
  if (res.status !== 200) throw new Error(`GET /metrics: ${res.status} ${await res.text()}`);
  const text = await res.text();
  const parsed = parsePrometheusTextFormat(text);
  lastText = text;
  return { text, families: new Map(parsed.map((f) => [f.name, f])) };
}

/**
 * Counters and gauges through the parser. parse-prometheus-text-format folds a histogram's
 * series into one sample and drops their labels, so histogram counts per label set are read
 * from the `_count` lines of the text instead.
 */
let lastText = '';
function histogramCounts(name: string): { labels: Record<string, string>; count: number }[] {
  const out = [];
  for (const line of lastText.split('\n')) {
    const m = new RegExp(`^${name}_count(?:\\{(.*)\\})? (\\S+)$`).exec(line);
    if (!m) continue;
    const labels = Object.fromEntries([...(m[1] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1]!, l[2]!]));
    out.push({ labels, count: Number(m[2]) });
  }
  return out;
}

function value(families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number | undefined {
  const matches = (l: Record<string, string> | undefined) => Object.entries(labels).every(([k, v]) => l?.[k] === v);
  if (families.get(name)?.type === 'HISTOGRAM') return histogramCounts(name).find((h) => matches(h.labels))?.count;
  const sample = families.get(name)?.metrics.find((m) => matches(m.labels));
  return sample ? Number(sample.value) : undefined;
}

function sum(families: Map<string, Family>, name: string): number {
  if (families.get(name)?.type === 'HISTOGRAM') return histogramCounts(name).reduce((s, h) => s + h.count, 0);
  return (families.get(name)?.metrics ?? []).reduce((s, m) => s + Number(m.value ?? 0), 0);
}

const OUTCOME_SQL = `CASE WHEN outcome = 'success' THEN 'success' WHEN status_code >= 500 THEN 'http_5xx' WHEN status_code >= 400 THEN 'http_4xx'
  WHEN status_code IS NOT NULL THEN 'http_3xx' WHEN error_class = 'timeout' THEN 'timeout' WHEN error_class = 'blocked' THEN 'blocked' ELSE 'network' END`;

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const TRACEPARENT = `00-${TRACE_ID}-00f067aa0ba902b7-01`;
const FAST = { maxAttempts: 2, baseDelayMs: 100, maxDelayMs: 100 };

async function scriptedRun(t: ExecutionContext, svc: TestService) {
  const rx = await startReceiver(t);
  let flaky = 0;
  rx.fallback = (req, res) => {
    const path = req.url ?? '/';
    const status = path.startsWith('/fail') ? 500 : path.startsWith('/bad') ? 404 : path.startsWith('/flaky') && flaky++ === 0 ? 503 : 200;
    res.writeHead(status).end(String(status));
  };
  const submit = async (url: string, headers: Record<string, string> = {}, retryPolicy = FAST) => {
    const res = await svc.api('/api/v1/webhooks/deliver', { method: 'POST', json: { url, payload: { url }, retryPolicy }, headers });
    t.is(res.status, 202, await res.clone().text());
    return { ...((await res.json()) as { id: string; endpointId: string }), requestId: res.headers.get('x-request-id') };
  };
  const ok = [];
  for (let i = 0; i < 4; i++) ok.push(await submit(`${rx.url}/ok`));
  const traced = await submit(`${rx.url}/flaky`, { traceparent: TRACEPARENT, 'x-request-id': 'req-traced-1' }, { maxAttempts: 3, baseDelayMs: 100, maxDelayMs: 100 });
  const untraced = await submit(`${rx.url}/ok`, { traceparent: 'not-a-traceparent' });
  const dead = [await submit(`${rx.url}/fail`), await submit(`${rx.url}/fail`), await submit(`${rx.url}/bad`)];
  // A disabled endpoint: its webhook is accepted and held (backlog state "held").
  const created = await svc.api('/api/v1/endpoints', { method: 'POST', json: { url: `${rx.url}/disabled`, enabled: false } });
  t.is(created.status, 201);
  const held = await submit(`${rx.url}/disabled`);
  await eventually(async () => {
    const [r] = await query(svc.dbUrl, `SELECT count(*)::int AS n FROM hookrelay.webhooks WHERE status IN ('pending', 'retrying')`);
    return r!.n === 0 ? true : undefined;
  }, 30_000, 100);
  // One GET of a webhook by id: its route label must be the template, not the id.
  t.is((await svc.api(`/api/v1/webhooks/${ok[0]!.id}`)).status, 200);
  return { rx, ok, traced, untraced, dead, held, submitted: 4 + 1 + 1 + 3 + 1 };
}

test('after a scripted run, every figure of /metrics matches PostgreSQL, and the whole exposition parses', async (t) => {
  const svc = await startTestService(t);
  const run = await scriptedRun(t, svc);

  // The counters move right after the commit that the poll above saw: wait for the last one.
  const attemptRows = (await query<{ n: number }>(svc.dbUrl, 'SELECT count(*)::int AS n FROM hookrelay.attempts'))[0]!.n;
  const { text, families } = await eventually(async () => {
    const s = await scrape(svc);
    return sum(s.families, 'hookrelay_attempts_total') === attemptRows ? s : undefined;
  }, 10_000, 100);

  // The exposition as a whole: every family parsed, typed and documented; every sample a number.
  t.true(families.size >= 20, `${families.size} families`);
  for (const f of families.values()) {
    t.truthy(f.help, `${f.name} has HELP`);
    t.true(['COUNTER', 'GAUGE', 'HISTOGRAM', 'SUMMARY', 'UNTYPED'].includes(f.type), `${f.name} type ${f.type}`);
    for (const m of f.metrics) {
      const values = m.buckets ? Object.values(m.buckets) : [m.value];
      for (const v of values) t.false(Number.isNaN(Number(v)), `${f.name} ${JSON.stringify(m.labels)}: ${v} is a number`);
    }
  }
  const familyLines = text.split('\n').filter((l) => l.startsWith('# TYPE ')).length;
  t.is(families.size, familyLines, 'every # TYPE line became a family');

  const [w] = await query(svc.dbUrl, `SELECT count(*)::int AS total, count(*) FILTER (WHERE status = 'delivered')::int AS delivered,
    count(*) FILTER (WHERE status = 'dead')::int AS dead, count(*) FILTER (WHERE status = 'held')::int AS held FROM hookrelay.webhooks`);
  t.is(w!.total, run.submitted);
  t.is(value(families, 'hookrelay_webhooks_accepted_total'), w!.total);
  t.is(value(families, 'hookrelay_deliveries_total'), w!.delivered);
  t.is(w!.delivered, 6);
  t.is(w!.dead, 3);

  const byOutcome = await query<{ outcome: string; n: number }>(svc.dbUrl, `SELECT ${OUTCOME_SQL} AS outcome, count(*)::int AS n FROM hookrelay.attempts GROUP BY 1`);
  const expected = Object.fromEntries(['success', 'http_3xx', 'http_4xx', 'http_5xx', 'timeout', 'network', 'blocked'].map((o) => [o, 0]));
  for (const r of byOutcome) expected[r.outcome] = r.n;
  for (const [outcome, n] of Object.entries(expected)) t.is(value(families, 'hookrelay_attempts_total', { outcome }), n, `attempts ${outcome}`);
  t.true(expected.http_5xx! >= 5 && expected.http_4xx! >= 1 && expected.success === 6, JSON.stringify(expected));
  t.is(sum(families, 'hookrelay_attempt_duration_seconds'), attemptRows, 'one duration observation per attempt');
  t.is(sum(families, 'hookrelay_queue_latency_seconds'), attemptRows, 'one queue latency observation per attempt');

  const letters = await query<{ reason: string; n: number }>(svc.dbUrl, 'SELECT reason, count(*)::int AS n FROM hookrelay.dead_letters GROUP BY 1');
  t.is(sum(families, 'hookrelay_dead_letters_total'), letters.reduce((s, r) => s + r.n, 0));
  for (const r of letters) t.is(value(families, 'hookrelay_dead_letters_total', { reason: r.reason }), r.n);
  // Every failed attempt either scheduled a retry or ended its webhook.
  const failed = (await query<{ n: number }>(svc.dbUrl, `SELECT count(*)::int AS n FROM hookrelay.attempts WHERE outcome = 'failure'`))[0]!.n;
  t.is(value(families, 'hookrelay_retries_scheduled_total'), failed - w!.dead);
  t.is(sum(families, 'hookrelay_retry_delay_seconds'), failed - w!.dead);

  // Database-backed gauges.
  const backlog = await query<{ status: string; n: number }>(svc.dbUrl, 'SELECT status, count(*)::int AS n FROM hookrelay.webhooks GROUP BY 1');
  const inState = (s: string) => backlog.find((r) => r.status === s)?.n ?? 0;
  for (const state of ['pending', 'retrying', 'held']) t.is(value(families, 'hookrelay_backlog', { state }), inState(state), `backlog ${state}`);
  t.is(value(families, 'hookrelay_backlog', { state: 'held' }), 1);
  t.is(value(families, 'hookrelay_oldest_pending_age_seconds'), 0);
  const health = await query<{ endpoint_id: string; health_score: number; circuit_state: string; consecutive_failures: number }>(svc.dbUrl,
    'SELECT h.endpoint_id, h.health_score, h.circuit_state, h.consecutive_failures FROM hookrelay.endpoint_health h JOIN hookrelay.endpoints e ON e.id = h.endpoint_id WHERE e.deleted_at IS NULL');
  t.is(families.get('hookrelay_endpoint_health_score')!.metrics.length, Math.min(10, health.length));
  for (const h of health) {
    t.is(value(families, 'hookrelay_endpoint_health_score', { endpoint_id: h.endpoint_id }), h.health_score, `score of ${h.endpoint_id}`);
    t.is(value(families, 'hookrelay_endpoint_consecutive_failures', { endpoint_id: h.endpoint_id }), h.consecutive_failures);
    t.is(value(families, 'hookrelay_endpoint_circuit_state', { endpoint_id: h.endpoint_id, state: h.circuit_state }), 1);
  }
  t.true(health.some((h) => h.health_score < 100), 'the failing endpoints lost health');
  const [e] = await query(svc.dbUrl, `SELECT count(*) FILTER (WHERE NOT e.enabled)::int AS disabled, count(*) FILTER (WHERE e.enabled AND h.circuit_state = 'closed')::int AS closed
    FROM hookrelay.endpoints e JOIN hookrelay.endpoint_health h ON h.endpoint_id = e.id WHERE e.deleted_at IS NULL`);
  t.is(value(families, 'hookrelay_endpoints', { state: 'disabled' }), e!.disabled);
  t.is(value(families, 'hookrelay_endpoints', { state: 'closed' }), e!.closed);

  // API requests by route template and status; never a raw id.
  t.is(value(families, 'hookrelay_http_request_duration_seconds', { method: 'POST', route: '/api/v1/webhooks/deliver', status: '202' }), run.submitted);
  t.is(value(families, 'hookrelay_http_request_duration_seconds', { method: 'GET', route: '/api/v1/webhooks/{id}', status: '200' }), 1);
  const routes = histogramCounts('hookrelay_http_request_duration_seconds').map((h) => h.labels.route!);
  t.true(routes.length >= 3);
  for (const route of routes) t.notRegex(route, /msg_|ep_/);
  // Pool usage and process metrics.
  t.true(value(families, 'hookrelay_db_pool_connections')! >= 1);
  t.true(value(families, 'hookrelay_db_pool_idle_connections')! >= 0);
  t.true(value(families, 'hookrelay_db_pool_waiting_requests')! >= 0);
  t.true(value(families, 'process_cpu_user_seconds_total')! > 0);
  t.truthy(families.get('nodejs_eventloop_lag_seconds'));
});

test('GET /api/v1/stats: the same figures as JSON, matching PostgreSQL', async (t) => {
  const svc = await startTestService(t);
  const run = await scriptedRun(t, svc);
  const res = await svc.api('/api/v1/stats');
  t.is(res.status, 200);
  const stats = (await res.json()) as any;

  t.deepEqual(stats.backlog, { pending: 0, retrying: 0, held: 1 });
  t.is(stats.oldestPendingAgeSeconds, null);
  const [w] = await query(svc.dbUrl, `SELECT count(*)::int AS total, count(*) FILTER (WHERE status = 'delivered')::int AS delivered FROM hookrelay.webhooks`);
  const [a] = await query(svc.dbUrl, `SELECT count(*)::int AS total, count(*) FILTER (WHERE outcome = 'failure')::int AS failed, count(*) FILTER (WHERE outcome = 'success')::int AS ok FROM hookrelay.attempts`);
  const [d] = await query(svc.dbUrl, 'SELECT count(*)::int AS n FROM hookrelay.dead_letters');
  t.deepEqual(stats.lastHour, {
    accepted: w!.total, delivered: w!.delivered, failedAttempts: a!.failed, dead: d!.n, attempts: a!.total, successRate: a!.ok / a!.total,
  });
  t.is(stats.lastHour.accepted, run.submitted);
  t.is(stats.perMinute.length, 60);
  const minutes = stats.perMinute.map((m: { minute: string }) => Date.parse(m.minute));
  for (let i = 1; i < 60; i++) t.is(minutes[i] - minutes[i - 1], 60_000);
  for (const key of ['accepted', 'delivered', 'failed', 'dead'] as const) {
    const total = stats.perMinute.reduce((s: number, m: Record<string, number>) => s + m[key]!, 0);
    t.is(total, { accepted: w!.total, delivered: w!.delivered, failed: a!.failed, dead: d!.n }[key], `perMinute ${key}`);
  }
  const byOutcome = await query<{ outcome: string; n: number }>(svc.dbUrl, `SELECT ${OUTCOME_SQL} AS outcome, count(*)::int AS n FROM hookrelay.attempts GROUP BY 1`);
  const expected = Object.fromEntries(['success', 'http_3xx', 'http_4xx', 'http_5xx', 'timeout', 'network', 'blocked'].map((o) => [o, 0]));
  for (const r of byOutcome) expected[r.outcome] = r.n;
  t.deepEqual(stats.attemptsByOutcome, expected);

  const health = await query(svc.dbUrl, `SELECT e.id, e.url, e.enabled, h.health_score, h.circuit_state, h.consecutive_failures
    FROM hookrelay.endpoints e JOIN hookrelay.endpoint_health h ON h.endpoint_id = e.id WHERE e.deleted_at IS NULL`);
  t.is(stats.worstEndpoints.length, health.length);
  for (const e of stats.worstEndpoints) {
    const row = health.find((h) => h.id === e.endpointId)!;
    t.deepEqual(e, { endpointId: row.id, url: row.url, healthScore: row.health_score, circuitState: row.circuit_state, consecutiveFailures: row.consecutive_failures, disabled: !row.enabled });
  }
  // Worst first: the disabled endpoint, then the lowest scores.
  t.true(stats.worstEndpoints[0].disabled);
  const enabled = stats.worstEndpoints.filter((e: { disabled: boolean }) => !e.disabled);
  for (let i = 1; i < enabled.length; i++) t.true(enabled[i - 1].healthScore <= enabled[i].healthScore || enabled[i - 1].circuitState !== 'closed');
  t.is(enabled.at(-1).healthScore, 100);

  // The same backlog through the metrics.
  const { families } = await scrape(svc);
  t.is(value(families, 'hookrelay_backlog', { state: 'held' }), stats.backlog.held);
});

test('correlation: X-Request-Id is stored and on every log line about the webhook; traceparent continues on each attempt', async (t) => {
  const svc = await startTestService(t);
  const run = await scriptedRun(t, svc);
  const [row] = await query(svc.dbUrl, 'SELECT request_id, traceparent FROM hookrelay.webhooks WHERE id = $1', [run.traced.id]);
  t.is(row!.request_id, 'req-traced-1');
  t.is(row!.traceparent, TRACEPARENT);
  const [plain] = await query(svc.dbUrl, 'SELECT request_id, traceparent FROM hookrelay.webhooks WHERE id = $1', [run.untraced.id]);
  t.is(plain!.traceparent, null, 'an invalid traceparent is ignored');
  t.is(plain!.request_id, run.untraced.requestId);

  // Two attempts (503, then 200) of the traced webhook: same trace, a new span each, flags kept.
  const got = run.rx.received.filter((r) => r.headers['webhook-id'] === run.traced.id);
  t.is(got.length, 2);
  const spans = got.map((r) => {
    const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/.exec(r.headers.traceparent ?? '');
    t.truthy(m, `traceparent ${r.headers.traceparent}`);
    t.is(m![1], TRACE_ID);
    t.is(m![3], '01');
    return m![2];
  });
  t.not(spans[0], '00f067aa0ba902b7');
  t.not(spans[1], '00f067aa0ba902b7');
  t.not(spans[0], spans[1]);
  // Without a traceparent on the submission none is sent (no SDK installed here).
  for (const r of run.rx.received.filter((x) => x.headers['webhook-id'] !== run.traced.id)) t.is(r.headers.traceparent, undefined);

  // Every log line about the traced webhook carries its request id; each decision is logged.
  const lines = svc.logs.filter((l) => l.webhookId === run.traced.id);
  t.true(lines.length >= 3);
  for (const l of lines) t.is(l.requestId, 'req-traced-1', JSON.stringify(l));
  const messages = lines.map((l) => l.msg ?? l.message);
  t.true(messages.includes('webhook accepted'), messages.join(' | '));
  const retry = lines.find((l) => /retry scheduled/.test(l.msg ?? l.message));
  t.truthy(retry);
  t.is(typeof retry!.delayMs, 'number');
  t.is(retry!.endpointId, run.traced.endpointId);
  t.truthy(lines.find((l) => (l.msg ?? l.message) === 'delivered'));
  for (const d of run.dead) {
    const dying = svc.logs.find((l) => l.webhookId === d.id && /webhook is dead/.test(l.msg ?? l.message));
    t.truthy(dying, `dead letter of ${d.id} logged`);
    t.is(dying!.requestId, d.requestId);
    t.is(dying!.endpointId, d.endpointId);
  }
});

test('GET /metrics: 401 without a token, 403 without the admin scope, 200 with an admin token', async (t) => {
  const svc = await startTestService(t);
  const none = await svc.api('/metrics', { auth: false });
  t.is(none.status, 401);
  t.regex(none.headers.get('content-type')!, /^application\/problem\+json/);
  const { token } = await createToken(svc.service.db.db, 'reader', { scopes: ['webhooks:read', 'endpoints:read'] });
  const reader = await svc.api('/metrics', { headers: { authorization: `Bearer ${token}` } });
  t.is(reader.status, 403);
  t.is(((await reader.json()) as { code: string }).code, 'insufficient_scope');
  const stats = await svc.api('/api/v1/stats', { headers: { authorization: `Bearer ${token}` } });
  t.is(stats.status, 200, 'stats need only webhooks:read');
  t.is((await svc.api('/api/v1/stats', { auth: false })).status, 401);
  const admin = await svc.api('/metrics');
  t.is(admin.status, 200);
  t.regex(admin.headers.get('content-type')!, /^text\/plain; version=0\.0\.4/);
});

test('HOOKRELAY_METRICS_PUBLIC=true: GET /metrics needs no token; the rest of the API still does', async (t) => {
  const svc = await startTestService(t, { HOOKRELAY_METRICS_PUBLIC: 'true' });
  const res = await svc.api('/metrics', { auth: false });
  t.is(res.status, 200);
  t.regex(await res.text(), /^# HELP /m);
  t.is((await svc.api('/api/v1/stats', { auth: false })).status, 401);
});

test('two services in one process keep separate registries', async (t) => {
  const [a, b] = await Promise.all([startTestService(t), startTestService(t)]);
  const rx = await startReceiver(t);
  t.is((await a.api('/api/v1/webhooks/deliver', { method: 'POST', json: { url: `${rx.url}/a`, payload: 1 } })).status, 202);
  const ta = await (await a.api('/metrics')).text();
  const tb = await (await b.api('/metrics')).text();
  t.regex(ta, /^hookrelay_webhooks_accepted_total 1$/m);
  t.regex(tb, /^hookrelay_webhooks_accepted_total 0$/m);
});

test('circuit changes and a disabled endpoint: one log line each with the ids, and counted', async (t) => {
  const svc = await startTestService(t, { HOOKRELAY_CIRCUIT_FAILURE_THRESHOLD: '1', HOOKRELAY_CIRCUIT_COOLDOWN_MS: '100' });
  const rx = await startReceiver(t);
  let flaky = 0;
  rx.fallback = (req, res) => {
    const status = req.url === '/gone' ? 410 : flaky++ === 0 ? 503 : 200;
    res.writeHead(status).end();
  };
  const submit = async (path: string, requestId: string) => {
    const res = await svc.api('/api/v1/webhooks/deliver', { method: 'POST', headers: { 'x-request-id': requestId }, json: { url: `${rx.url}${path}`, payload: 1, retryPolicy: FAST } });
    t.is(res.status, 202);
    return (await res.json()) as { id: string; endpointId: string };
  };
  const flakyHook = await submit('/flaky', 'req-circuit');
  const goneHook = await submit('/gone', 'req-gone');
  await eventually(async () => {
    const rows = await query(svc.dbUrl, `SELECT status FROM hookrelay.webhooks WHERE status IN ('pending', 'retrying')`);
    return rows.length === 0 ? true : undefined;
  }, 30_000, 100);
  const line = (webhookId: string, msg: string) => svc.logs.find((l) => l.webhookId === webhookId && (l.msg ?? l.message) === msg);
  for (const msg of ['circuit opened', 'circuit closed']) {
    const l = line(flakyHook.id, msg);
    t.truthy(l, msg);
    t.is(l?.requestId, 'req-circuit');
    t.is(l?.endpointId, flakyHook.endpointId);
  }
  const disabled = line(goneHook.id, 'endpoint disabled');
  t.truthy(disabled);
  t.is(disabled?.requestId, 'req-gone');
  t.is(disabled?.endpointId, goneHook.endpointId);
  t.truthy(disabled?.reason);

  const { families } = await eventually(async () => {
    const s = await scrape(svc);
    return value(s.families, 'hookrelay_circuit_transitions_total', { transition: 'closed' }) === 1 ? s : undefined;
  }, 10_000, 100);
  // Threshold 1: the first failure opens each endpoint's circuit (the 410 one's too).
  t.is(value(families, 'hookrelay_circuit_transitions_total', { transition: 'opened' }), 2);
  t.is(value(families, 'hookrelay_endpoints_disabled_total'), 1);
  t.is(value(families, 'hookrelay_dead_letters_total', { reason: 'gone' }), 1);
  t.is(value(families, 'hookrelay_endpoints', { state: 'disabled' }), 1);
  const [row] = await query(svc.dbUrl, `SELECT count(*)::int AS n FROM hookrelay.dead_letters WHERE reason = 'gone'`);
  t.is(row!.n, 1);
});
