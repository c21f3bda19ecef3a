// Overview: the last hour per minute as a chart, the backlog, the oldest pending webhook,
// the success rate and the least healthy endpoints, from GET /api/v1/stats.
import { api, ApiError } from './api.js';
import { badge, duration, facts, h, link, svg, swap, table, time } from './dom.js';

const SERIES = [
  { key: 'accepted', label: 'Accepted', cls: 's-accepted' },
  { key: 'delivered', label: 'Delivered', cls: 's-delivered' },
  { key: 'failed', label: 'Failed attempts', cls: 's-failed' },
  { key: 'dead', label: 'Dead', cls: 's-dead' },
];

const OUTCOMES = { success: 'Success', http_3xx: 'HTTP 3xx (redirect)', http_4xx: 'HTTP 4xx', http_5xx: 'HTTP 5xx', timeout: 'Timeout', network: 'Network', blocked: 'Blocked destination' };

export function mount(root) {
  const body = h('div', { 'aria-busy': 'true' }, h('p', { class: 'muted' }, 'Loading…'));
  root.append(h('h1', {}, 'Overview'), body);
  return {
    async refresh() {
      try {
        const stats = await api('/stats');
        swap(body, render(stats));
      } catch (err) {
        if (err instanceof ApiError && err.status === 404) swap(body, await fallback());
        else swap(body, h('p', { class: 'error', role: 'alert' }, `Could not load the statistics: ${err.message}`));
      }
      body.removeAttribute('aria-busy');
    },
  };
}

const pct = (rate) => (rate === null || rate === undefined ? '—' : `${(rate * 100).toFixed(1)} %`);

function render(s) {
  const last = s.lastHour ?? {};
  return [
    h('div', { class: 'cards' },
      card('Pending', s.backlog?.pending, 'backlog'),
      card('Retrying', s.backlog?.retrying, 'backlog'),
      card('Held', s.backlog?.held, 'backlog (disabled endpoints)'),
      card('Oldest pending', s.oldestPendingAgeSeconds === null ? 'none' : duration(s.oldestPendingAgeSeconds), 'waiting for a first attempt'),
      card('Success rate', pct(last.successRate), 'of attempts, last hour'),
      card('Accepted', last.accepted, 'last hour'),
      card('Delivered', last.delivered, 'last hour'),
      card('Failed attempts', last.failedAttempts, 'last hour'),
      card('Dead', last.dead, 'last hour')),
    h('section', { 'aria-labelledby': 'chart-title' },
      h('h2', { id: 'chart-title' }, 'Last hour, per minute'),
      chart(s.perMinute ?? []),
      perMinuteTable(s.perMinute ?? [])),
    h('section', { 'aria-labelledby': 'outcomes-title' },
      h('h2', { id: 'outcomes-title' }, 'Attempts by outcome, last hour'),
      h('ul', { class: 'outcomes' }, Object.entries(s.attemptsByOutcome ?? {}).map(([k, v]) =>
        h('li', {}, h('span', { class: 'outcome-name' }, OUTCOMES[k] ?? k), ' ', h('strong', {}, String(v)))))),
    h('section', { 'aria-labelledby': 'worst-title' },
      h('h2', { id: 'worst-title' }, 'Least healthy endpoints'),
      table('Least healthy endpoints', ['Endpoint', 'Health score', 'Circuit', 'Consecutive failures', 'Enabled'],
        (s.worstEndpoints ?? []).map((e) => [
          link(`#/endpoints/${encodeURIComponent(e.endpointId)}`, e.url ?? e.endpointId, `worst-${e.endpointId}`),
          score(e.healthScore),
          badge(e.circuitState),
          String(e.consecutiveFailures ?? '—'),
          e.disabled ? badge('disabled') : 'yes',
        ]), 'No endpoints yet.')),
    h('p', { class: 'muted' }, 'Figures as of ', time(s.generatedAt), '.'),
  ];
}

function card(title, value, note) {
  return h('div', { class: 'card' }, h('div', { class: 'card-title' }, title), h('div', { class: 'card-value' }, value === undefined || value === null ? '—' : String(value)), h('div', { class: 'card-note muted' }, note));
}

export function score(value) {
  if (value === undefined || value === null) return h('span', { class: 'muted' }, '—');
  value = Math.round(value);
  const level = value >= 80 ? 'good' : value >= 50 ? 'fair' : 'poor';
  return h('span', { class: `score score-${level}` }, h('meter', { min: 0, max: 100, low: 50, high: 80, optimum: 100, value, 'aria-hidden': 'true' }), ` ${value}`);
}

/**
 * A line per series over the minutes. The drawing stretches to the width; the axis labels
 * are HTML around it so they keep their size. The table below carries the same numbers.
 */
function chart(minutes) {
  const W = 600;
  const H = 200;
  const max = Math.max(1, ...minutes.flatMap((m) => SERIES.map((s) => m[s.key] ?? 0)));
  const n = Math.max(minutes.length, 2);
  const x = (i) => (i * W) / (n - 1);
  const y = (v) => 4 + (H - 8) * (1 - v / max);
  const grid = [0, 0.5, 1].map((f) => svg('line', { x1: 0, x2: W, y1: y(max * f), y2: y(max * f), class: 'grid' }));
  const lines = SERIES.map((s) => svg('polyline', {
    class: `line ${s.cls}`,
    points: minutes.map((m, i) => `${x(i).toFixed(1)},${y(m[s.key] ?? 0).toFixed(1)}`).join(' '),
  }));
  const total = (key) => minutes.reduce((sum, m) => sum + (m[key] ?? 0), 0);
  return h('figure', { class: 'chart' },
    h('div', { class: 'chart-plot' },
      h('div', { class: 'y-axis', 'aria-hidden': 'true' }, h('span', {}, String(max)), h('span', {}, String(Math.round(max / 2) === max / 2 ? max / 2 : '')), h('span', {}, '0')),
      svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-labelledby': 'chart-svg-title', preserveAspectRatio: 'none' },
        svg('title', { id: 'chart-svg-title' }, `Per minute over the last hour: ${SERIES.map((s) => `${s.label.toLowerCase()} ${total(s.key)}`).join(', ')}`),
        grid, lines)),
    h('div', { class: 'x-axis', 'aria-hidden': 'true' }, h('span', {}, '60 min ago'), h('span', {}, '30 min ago'), h('span', {}, 'now')),
    h('figcaption', { class: 'legend' }, SERIES.map((s) => h('span', { class: 'legend-item' }, h('span', { class: `swatch ${s.cls}`, 'aria-hidden': 'true' }), `${s.label} (${total(s.key)})`))));
}

function perMinuteTable(minutes) {
  const rows = minutes.filter((m) => SERIES.some((s) => m[s.key])).reverse();
  return h('details', { 'data-key': 'per-minute' }, h('summary', { 'data-key': 'per-minute-summary' }, 'The same figures as a table'),
    table('Per minute, newest first', ['Minute', ...SERIES.map((s) => s.label)],
      rows.map((m) => [time(m.minute), ...SERIES.map((s) => String(m[s.key] ?? 0))]), 'Nothing happened in the last hour.'));
}

/** Without /api/v1/stats (an older server): what the lists can tell. */
async function fallback() {
  const count = async (status) => {
    const page = await api('/webhooks', { query: { status, limit: 200 } });
    return page.nextCursor ? `${page.data.length}+` : String(page.data.length);
  };
  const [pending, retrying, held, eps] = await Promise.all([count('pending'), count('retrying'), count('held'), api('/endpoints', { query: { limit: 200 } })]);
  const worst = eps.data.filter((e) => e.health).sort((a, b) => a.health.healthScore - b.health.healthScore).slice(0, 10);
  return [
    h('p', { class: 'notice' }, 'This server has no statistics endpoint (GET /api/v1/stats); showing what the lists tell.'),
    facts([['Pending', pending], ['Retrying', retrying], ['Held', held]]),
    h('h2', {}, 'Least healthy endpoints'),
    table('Least healthy endpoints', ['Endpoint', 'Health score', 'Circuit'], worst.map((e) => [
      link(`#/endpoints/${encodeURIComponent(e.id)}`, e.url, `worst-${e.id}`), score(e.health.healthScore), badge(e.health.circuitState),
    ]), 'No endpoints yet.'),
  ];
}
