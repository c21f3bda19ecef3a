// Endpoints: the list with health score and circuit state, and one endpoint with its
// configuration, enable / disable, key rotation (with the grace period) and recent attempts.
import { api } from './api.js';
import { badge, code, duration, facts, field, h, link, onFilter, select, swap, table, time } from './dom.js';
import { score } from './overview.js';
import { pager } from './webhooks.js';

export function mount(root, route, ctx) {
  return route.id ? mountDetail(root, route.id, ctx) : mountList(root, route);
}

function mountList(root, route) {
  const filters = { enabled: route.params.get('enabled') ?? '', url: '', healthState: route.params.get('healthState') ?? '', limit: '50' };
  let cursors = [undefined];
  const form = h('form', { class: 'filters', 'aria-label': 'Filter endpoints' },
    field('Enabled', select('enabled', [['', 'any'], ['true', 'enabled'], ['false', 'disabled']], filters.enabled)),
    field('URL contains', h('input', { name: 'url', maxlength: 2048, spellcheck: 'false' })),
    field('Circuit', select('healthState', [['', 'any'], ['closed', 'closed'], ['half_open', 'half open'], ['open', 'open']], filters.healthState)),
    field('Per page', select('limit', [['25', '25'], ['50', '50'], ['100', '100'], ['200', '200']], filters.limit)),
    h('div', { class: 'field field-button' }, h('button', { type: 'submit' }, 'Apply filters')));
  const body = h('div', {});
  root.append(h('h1', {}, 'Endpoints'), form, body);

  const load = async () => {
    const page = cursors.length - 1;
    try {
      const data = await api('/endpoints', { query: { ...filters, url: filters.url.trim(), cursor: cursors[page] } });
      swap(body,
        table('Endpoints, oldest first', ['Endpoint', 'Enabled', 'Health score', 'Circuit', 'Consecutive failures', 'Description', 'Id'],
          data.data.map((e) => [
            link(`#/endpoints/${encodeURIComponent(e.id)}`, e.url, `ep-${e.id}`),
            e.enabled ? 'yes' : badge('disabled'),
            score(e.health?.healthScore),
            e.health ? badge(e.health.circuitState) : '—',
            String(e.health?.consecutiveFailures ?? '—'),
            e.description,
            code(e.id),
          ]), 'No endpoint matches.'),
        pager(page, Boolean(data.nextCursor), () => { cursors.pop(); load(); }, () => { cursors.push(data.nextCursor); load(); }));
    } catch (err) {
      swap(body, h('p', { class: 'error', role: 'alert' }, `Could not list endpoints: ${err.message}`));
    }
  };
  onFilter(form, filters, () => {
    cursors = [undefined];
    load();
  });
  return { refresh: load };
}

/** The last rotation per endpoint, kept while the page lives so a refresh does not hide it. */
const rotations = new Map();

function mountDetail(root, id, ctx) {
  const body = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  const rotation = h('div', { 'aria-live': 'polite' });
  const grace = h('input', { name: 'graceSeconds', type: 'number', min: 0, max: 604800, step: 1, value: '86400', required: true });
  const rotateForm = h('form', { class: 'filters', 'aria-labelledby': 'rotate-title' },
    field('Grace period of the old key (seconds)', grace, '86400 = 24 h; 0 retires the old key at once'),
    h('div', { class: 'field field-button' }, h('button', { type: 'submit' }, 'Rotate signing key')));
  const attempts = h('div', {});
  root.append(
    h('p', {}, link('#/endpoints', '← All endpoints')),
    h('h1', {}, 'Endpoint ', code(id)),
    body,
    h('section', { 'aria-labelledby': 'rotate-title' }, h('h2', { id: 'rotate-title' }, 'Signing key'), rotateForm, rotation),
    h('section', { 'aria-labelledby': 'recent-title' }, h('h2', { id: 'recent-title' }, 'Recent attempts'), attempts));

  const showRotation = () => {
    const r = rotations.get(id);
    if (!r) return swap(rotation);
    swap(rotation, h('div', { class: 'notice', 'data-testid': 'rotation' },
      h('p', {}, 'New current key ', code(r.keyId), ' since ', time(r.at), '. '),
      r.previousKeyId
        ? h('p', {}, 'The previous key ', code(r.previousKeyId), r.previousKeyExpiresAt && Date.parse(r.previousKeyExpiresAt) > Date.parse(r.at)
          ? [' keeps signing until ', time(r.previousKeyExpiresAt), ` (grace period ${duration(r.graceSeconds)}): receivers accept either secret meanwhile.`]
          : ' was retired at once (no grace period).')
        : null,
      r.publicKey ? h('p', {}, 'Public key: ', code(r.publicKey)) : null));
  };
  rotateForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    const graceSeconds = Number(grace.value);
    try {
      const r = await api(`/endpoints/${encodeURIComponent(id)}/secret/rotate`, { method: 'POST', body: { graceSeconds } });
      rotations.set(id, { ...r, graceSeconds, at: new Date().toISOString() });
      ctx.flash(`Signing key rotated; the old key keeps signing for ${duration(graceSeconds)}.`);
      showRotation();
    } catch (err) {
      ctx.flash(`Rotation failed: ${err.message}`, 'error');
    }
  });

  const setEnabled = async (enabled) => {
    try {
      await api(`/endpoints/${encodeURIComponent(id)}`, { method: 'PATCH', body: { enabled } });
      ctx.flash(enabled ? 'Endpoint enabled: held webhooks are delivered again.' : 'Endpoint disabled: its webhooks are held until it is enabled.');
    } catch (err) {
      ctx.flash(`Could not ${enabled ? 'enable' : 'disable'} the endpoint: ${err.message}`, 'error');
    }
    await refresh();
  };

  const refresh = async () => {
    let e;
    try {
      e = await api(`/endpoints/${encodeURIComponent(id)}`);
    } catch (err) {
      swap(body, h('p', { class: 'error', role: 'alert' }, `Could not load the endpoint: ${err.message}`));
      return;
    }
    const hl = e.health;
    const policy = e.retryPolicy ? Object.entries(e.retryPolicy).map(([k, v]) => `${k} ${v}`).join(', ') : 'server defaults';
    swap(body,
      h('div', { class: 'toolbar' },
        h('span', { class: 'status-line' }, e.deletedAt ? badge('deleted') : e.enabled ? badge('enabled') : badge('disabled'),
          !e.enabled && e.disabledReason ? h('span', { class: 'muted' }, ` ${e.disabledReason}`) : null),
        e.deletedAt ? null : e.enabled
          ? h('button', { type: 'button', class: 'danger', 'data-key': 'toggle', onclick: () => setEnabled(false) }, 'Disable endpoint')
          : h('button', { type: 'button', 'data-key': 'toggle', onclick: () => setEnabled(true) }, 'Enable endpoint'),
        link(`#/webhooks?endpointId=${encodeURIComponent(id)}`, 'Its webhooks', 'its-webhooks'),
        link(`#/dead-letters?endpointId=${encodeURIComponent(id)}`, 'Its dead letters', 'its-dead')),
      h('section', { 'aria-labelledby': 'config-title' },
        h('h2', { id: 'config-title' }, 'Configuration'),
        facts([
          ['URL', h('span', { class: 'url' }, e.url)],
          ['Description', e.description || null],
          ['Signature', e.signature.algorithm],
          ['Timeout', e.timeoutMs === null ? 'server default' : `${e.timeoutMs} ms`],
          ['Retry policy', policy],
          ['Headers', Object.keys(e.headers).length ? h('ul', { class: 'plain' }, Object.entries(e.headers).map(([k, v]) => h('li', {}, code(k), ': ', h('span', { class: 'url' }, v)))) : null],
          ['Metadata', Object.keys(e.metadata).length ? h('pre', { class: 'block' }, JSON.stringify(e.metadata, null, 2)) : null],
          ['Created', time(e.createdAt)],
          ['Updated', time(e.updatedAt)],
          ['Deleted', e.deletedAt ? time(e.deletedAt) : null],
        ])),
      hl ? h('section', { 'aria-labelledby': 'health-title' },
        h('h2', { id: 'health-title' }, 'Health'),
        facts([
          ['Health score', score(hl.healthScore)],
          ['Circuit', badge(hl.circuitState)],
          ['Consecutive failures', String(hl.consecutiveFailures)],
          ['Failure rate (window)', `${(hl.failureRate * 100).toFixed(0)} % of ${hl.windowAttempts}`],
          ['Failing since', time(hl.failingSince)],
          ['Next probe', time(hl.nextProbeAt)],
          ['Last success', time(hl.lastSuccessAt)],
          ['Last failure', time(hl.lastFailureAt)],
        ])) : null);
    showRotation();
    await loadAttempts();
  };

  /** The attempts of the endpoint's latest webhooks, newest first (the API lists attempts per webhook). */
  const loadAttempts = async () => {
    try {
      const list = await api('/webhooks', { query: { endpointId: id, limit: 10 } });
      const details = await Promise.all(list.data.filter((w) => w.attempts > 0).map((w) => api(`/webhooks/${encodeURIComponent(w.id)}`)));
      const rows = details.flatMap((w) => w.attempts.map((a) => ({ w, a })))
        .sort((x, y) => Date.parse(y.a.startedAt) - Date.parse(x.a.startedAt)).slice(0, 20);
      swap(attempts, table('Recent attempts, newest first', ['Started', 'Webhook', 'Attempt', 'Outcome', 'HTTP', 'Duration', 'Error'],
        rows.map(({ w, a }) => [
          time(a.startedAt),
          link(`#/webhooks/${encodeURIComponent(w.id)}`, w.id, `att-${w.id}-${a.number}`),
          `#${a.number}`,
          badge(a.outcome),
          a.statusCode === null ? '—' : String(a.statusCode),
          `${a.durationMs} ms`,
          a.error ? h('span', { class: 'error-text' }, a.errorClass ? `${a.errorClass}: ${a.error}` : a.error) : '',
        ]), 'No attempts yet.'));
    } catch (err) {
      swap(attempts, h('p', { class: 'error', role: 'alert' }, `Could not load recent attempts: ${err.message}`));
    }
  };
  return { refresh };
}
