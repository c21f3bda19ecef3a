import { readFileSync } from 'node:fs';
import test from 'ava';
import { startReceiver } from '../helpers/receiver.ts';
import { eventually, startTestService } from '../helpers/service.ts';

/** docs/grafana-dashboard.json: a valid dashboard whose queries name only metrics that /metrics has. */

const dashboard = JSON.parse(readFileSync(new URL('../../docs/grafana-dashboard.json', import.meta.url), 'utf8'));

const PROMQL_WORDS = new Set([
  'sum', 'max', 'min', 'avg', 'count', 'by', 'without', 'rate', 'irate', 'increase', 'histogram_quantile', 'on', 'ignoring',
  'group_left', 'group_right', 'and', 'or', 'unless', 'bool', 'offset', 'topk', 'bottomk', 'abs', 'clamp_min', 'clamp_max',
]);

/** The metric names a PromQL expression reads: label matchers, ranges, groupings and functions removed. */
function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring)\s*\([^)]*\)/g, ' ')
    .replace(/"[^"]*"/g, ' ');
  return [...bare.matchAll(/[A-Za-z_:][A-Za-z0-9_:]*/g)].map((m) => m[0]).filter((w) => !PROMQL_WORDS.has(w));
}

test('the dashboard is Grafana dashboard JSON: titled, uid, panels with ids, positions and Prometheus queries', (t) => {
  t.is(typeof dashboard.title, 'string');
  t.regex(dashboard.uid, /^[a-z0-9-]{1,40}$/);
  t.true(Number.isInteger(dashboard.schemaVersion));
  t.is(dashboard.templating.list[0].type, 'datasource');
  const ids = new Set<number>();
  let queries = 0;
  for (const p of dashboard.panels) {
    t.true(Number.isInteger(p.id) && !ids.has(p.id), `panel id ${p.id} unique`);
    ids.add(p.id);
    t.truthy(p.title);
    for (const k of ['h', 'w', 'x', 'y']) t.true(Number.isInteger(p.gridPos[k]), `${p.title} gridPos.${k}`);
    t.true(p.gridPos.x + p.gridPos.w <= 24, `${p.title} fits the 24-column grid`);
    if (p.type === 'row') continue;
    t.is(p.datasource.type, 'prometheus');
    t.true(p.targets.length > 0, `${p.title} has queries`);
    for (const target of p.targets) {
      t.is(typeof target.expr, 'string');
      t.true(metricNames(target.expr).length > 0, `${p.title}: ${target.expr} reads a metric`);
      queries += 1;
    }
  }
  t.true(queries >= 20);
});

test('every metric the dashboard queries is in the exposition of a running service', async (t) => {
  const svc = await startTestService(t);
  const rx = await startReceiver(t);
  t.is((await svc.api('/api/v1/webhooks/deliver', { method: 'POST', json: { url: `${rx.url}/d`, payload: 1 } })).status, 202);
  await rx.waitFor(1);
  const text = await eventually(async () => {
    const body = await (await svc.api('/metrics')).text();
    return /^hookrelay_deliveries_total 1$/m.test(body) ? body : undefined;
  });
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (m) types.set(m[1]!, m[2]!);
  }
  const series = (name: string) => {
    if (types.has(name)) return true;
    const base = name.replace(/_(bucket|count|sum)$/, '');
    return base !== name && (types.get(base) === 'histogram' || (types.get(base) === 'summary' && !name.endsWith('_bucket')));
  };
  const used = new Set<string>();
  for (const p of dashboard.panels) for (const target of p.targets ?? []) for (const name of metricNames(target.expr)) used.add(name);
  for (const name of used) t.true(series(name), `${name} is exposed`);
  // Every hookrelay_* family of the exposition is on the dashboard.
  for (const name of types.keys()) {
    if (!name.startsWith('hookrelay_')) continue;
    t.true([...used].some((u) => u === name || u.replace(/_(bucket|count|sum)$/, '') === name), `${name} is on the dashboard`);
  }
});
