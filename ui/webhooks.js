// Webhooks: the list with the API's filters and cursor paging, and one webhook with its
// attempt timeline, the headers it is sent with, and a retry button.
import { api } from './api.js';
import { badge, code, facts, field, h, link, onFilter, localToIso, millis, select, swap, table, time } from './dom.js';

const STATUSES = [['', 'any'], ['pending', 'pending'], ['retrying', 'retrying'], ['delivered', 'delivered'], ['dead', 'dead'], ['held', 'held']];

export function mount(root, route, ctx) {
  return route.id ? mountDetail(root, route.id, ctx) : mountList(root, route);
}

function mountList(root, route) {
  const filters = { status: route.params.get('status') ?? '', endpointId: route.params.get('endpointId') ?? '', createdAfter: '', createdBefore: '', limit: '25' };
  // cursors[i] is the cursor of page i (page 0 has none).
  let cursors = [undefined];
  const form = h('form', { class: 'filters', 'aria-label': 'Filter webhooks' },
    field('Status', select('status', STATUSES, filters.status)),
    field('Endpoint id', h('input', { name: 'endpointId', value: filters.endpointId, maxlength: 64, spellcheck: 'false' })),
    field('Created after', h('input', { name: 'createdAfter', type: 'datetime-local', step: 1 }), 'local time'),
    field('Created before', h('input', { name: 'createdBefore', type: 'datetime-local', step: 1 }), 'local time'),
    field('Per page', select('limit', [['10', '10'], ['25', '25'], ['50', '50'], ['100', '100'], ['200', '200']], filters.limit)),
    h('div', { class: 'field field-button' }, h('button', { type: 'submit' }, 'Apply filters')));
  const body = h('div', { 'aria-live': 'off' });
  root.append(h('h1', {}, 'Webhooks'), form, body);

  const load = async () => {
    const page = cursors.length - 1;
    try {
      const data = await api('/webhooks', {
        query: { status: filters.status, endpointId: filters.endpointId.trim(), createdAfter: localToIso(filters.createdAfter), createdBefore: localToIso(filters.createdBefore), limit: filters.limit, cursor: cursors[page] },
      });
      swap(body,
        table('Webhooks, newest first', ['Webhook', 'Status', 'URL', 'Attempts', 'Created', 'Last attempt', 'Next attempt', 'Error'],
          data.data.map((w) => [
            link(`#/webhooks/${encodeURIComponent(w.id)}`, w.id, `wh-${w.id}`),
            badge(w.status),
            h('span', { class: 'url' }, w.url),
            String(w.attempts),
            time(w.createdAt),
            time(w.lastAttemptAt),
            time(w.nextAttemptAt),
            w.error ? h('span', { class: 'error-text' }, w.error) : '',
          ]), 'No webhook matches.'),
        pager(page, Boolean(data.nextCursor), () => { cursors.pop(); load(); }, () => { cursors.push(data.nextCursor); load(); }));
    } catch (err) {
      swap(body, h('p', { class: 'error', role: 'alert' }, `Could not list webhooks: ${err.message}`));
    }
  };
  onFilter(form, filters, () => {
    cursors = [undefined];
    load();
  });
  return { refresh: load };
}

/** Previous / next buttons over cursor pages. */
export function pager(page, hasNext, onPrev, onNext) {
  return h('nav', { class: 'pager', 'aria-label': 'Pages' },
    h('button', { type: 'button', class: 'secondary', disabled: page === 0, onclick: onPrev, 'data-key': 'prev' }, '← Newer'),
    h('span', { class: 'muted' }, `Page ${page + 1}`),
    h('button', { type: 'button', class: 'secondary', disabled: !hasNext, onclick: onNext, 'data-key': 'next' }, 'Older →'));
}

/** What hookrelay itself sets on every attempt (a user header can never replace these). */
const OWN_HEADERS = ['webhook-id', 'webhook-timestamp', 'webhook-signature', 'x-webhook-id', 'x-webhook-timestamp', 'x-webhook-signature', 'content-type: application/json', 'user-agent'];

/**
 * The headers an attempt carries, as the worker builds them: the endpoint's, the webhook's
 * own over them (names compared without case), then hookrelay's own.
 */
function sentHeaders(webhookHeaders, endpointHeaders) {
  const merged = new Map();
  for (const [k, v] of Object.entries(endpointHeaders ?? {})) merged.set(k.toLowerCase(), { name: k, value: v, from: 'endpoint' });
  for (const [k, v] of Object.entries(webhookHeaders ?? {})) merged.set(k.toLowerCase(), { name: k, value: v, from: 'webhook' });
  return [...merged.values()];
}

function mountDetail(root, id, ctx) {
  const body = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  root.append(h('p', {}, link('#/webhooks', '← All webhooks')), h('h1', {}, 'Webhook ', code(id)), body);

  const retry = async (w) => {
    try {
      // Exactly this webhook: a dead one is replayed through its dead letter, a retrying one
      // is attempted now.
      const r = await api(`/webhooks/${encodeURIComponent(w.id)}/retry`, { method: 'POST' });
      ctx.flash(r.status === 'retrying' ? 'Re-queued for an attempt now.' : `Replayed: the webhook is ${r.status} again.`);
    } catch (err) {
      ctx.flash(`Retry failed: ${err.message}`, 'error');
    }
    await refresh();
  };

  const refresh = async () => {
    let w;
    try {
      w = await api(`/webhooks/${encodeURIComponent(id)}`);
    } catch (err) {
      swap(body, h('p', { class: 'error', role: 'alert' }, `Could not load the webhook: ${err.message}`));
      return;
    }
    const canRetry = w.status === 'dead' || w.status === 'retrying';
    // The endpoint's headers go out too; a token without endpoints:read shows the webhook's only.
    const endpoint = await api(`/endpoints/${encodeURIComponent(w.endpointId)}`).catch(() => null);
    const headers = sentHeaders(w.headers, endpoint?.headers);
    swap(body,
      h('div', { class: 'toolbar' },
        h('span', { class: 'status-line' }, 'Status ', h('span', { 'data-testid': 'webhook-status' }, badge(w.status))),
        canRetry ? h('button', { type: 'button', 'data-key': 'retry', onclick: () => retry(w) }, w.status === 'dead' ? 'Retry (replay)' : 'Retry now') : null),
      facts([
        ['URL', h('span', { class: 'url' }, w.url)],
        ['Endpoint', link(`#/endpoints/${encodeURIComponent(w.endpointId)}`, w.endpointId, 'endpoint')],
        ['Attempts', String(w.attemptCount)],
        ['Created', time(w.createdAt)],
        ['Last attempt', time(w.lastAttemptAt)],
        ['Next attempt', time(w.nextAttemptAt)],
        ['Delivered', time(w.deliveredAt)],
        ['Error', w.error ? h('span', { class: 'error-text' }, w.error) : null],
        ['Idempotency key', w.idempotencyKey ? code(w.idempotencyKey) : null],
        ['Retry policy', `${w.retryPolicy.maxAttempts} attempt${w.retryPolicy.maxAttempts === 1 ? '' : 's'}; delays from ${millis(w.retryPolicy.baseDelayMs)}, ×${w.retryPolicy.backoffFactor}, at most ${millis(w.retryPolicy.maxDelayMs)}`],
      ]),
      h('section', { 'aria-labelledby': 'attempts-title' },
        h('h2', { id: 'attempts-title' }, `Attempts (${w.attempts.length})`),
        w.attempts.length === 0
          ? h('p', { class: 'empty' }, 'No attempt yet.')
          : h('ol', { class: 'timeline' }, [...w.attempts].reverse().map(attemptItem))),
      h('section', { 'aria-labelledby': 'headers-title' },
        h('h2', { id: 'headers-title' }, 'Headers sent'),
        headers.length ? table('Headers sent with each attempt', ['Name', 'Value', 'From'], headers.map((x) => [code(x.name), h('span', { class: 'url' }, x.value), x.from])) : h('p', { class: 'empty' }, 'No headers of the webhook\u2019s or its endpoint\u2019s own.'),
        h('p', { class: 'muted' }, endpoint ? '' : 'The endpoint\u2019s headers could not be read with this token. ', 'Set by hookrelay on every attempt: ', OWN_HEADERS.map((n, i) => [i ? ', ' : '', code(n)]), '.')),
      h('section', { 'aria-labelledby': 'payload-title' },
        h('h2', { id: 'payload-title' }, 'Payload'),
        h('pre', { class: 'block', tabindex: 0 }, JSON.stringify(w.payload, null, 2))));
  };
  return { refresh };
}

function attemptItem(a) {
  return h('li', { class: `attempt attempt-${a.outcome}` },
    h('div', { class: 'attempt-head' },
      h('strong', {}, `#${a.number}`), ' ', badge(a.outcome), ' ',
      a.statusCode !== null ? h('span', {}, `HTTP ${a.statusCode}`) : h('span', { class: 'muted' }, 'no response'), ' · ',
      `${a.durationMs} ms`, ' · ', time(a.startedAt)),
    a.error ? h('p', { class: 'error-text' }, a.errorClass ? `${a.errorClass}: ` : '', a.error) : null,
    a.responseBody ? h('details', { 'data-key': `excerpt-${a.number}` }, h('summary', { 'data-key': `excerpt-summary-${a.number}` }, 'Response excerpt'), h('pre', { class: 'block' }, a.responseBody)) : null);
}
