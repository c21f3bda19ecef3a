// Dead letters: the list with filters, replay one, and replay all that match a filter (the
// count is shown first and must be confirmed).
import { api } from './api.js';
import { badge, code, field, h, link, onFilter, localToIso, select, swap, table, time } from './dom.js';
import { pager } from './webhooks.js';

const REASONS = [['', 'any'], ['attempts_exhausted', 'attempts exhausted'], ['gone', 'gone (410)'], ['endpoint_deleted', 'endpoint deleted']];
/** Counting pages through the list stops here: beyond it the count is "at least". */
const COUNT_PAGES = 25;

export function mount(root, route, ctx) {
  const filters = { endpointId: route.params.get('endpointId') ?? '', reason: '', deadAfter: '', deadBefore: '', replayed: '', limit: '50' };
  let cursors = [undefined];
  const form = h('form', { class: 'filters', 'aria-label': 'Filter dead letters' },
    field('Endpoint id', h('input', { name: 'endpointId', value: filters.endpointId, maxlength: 64, spellcheck: 'false' })),
    field('Reason', select('reason', REASONS, filters.reason)),
    field('Dead after', h('input', { name: 'deadAfter', type: 'datetime-local', step: 1 }), 'local time'),
    field('Dead before', h('input', { name: 'deadBefore', type: 'datetime-local', step: 1 }), 'local time'),
    field('Replayed', select('replayed', [['', 'any'], ['false', 'not yet'], ['true', 'already']], filters.replayed)),
    field('Per page', select('limit', [['25', '25'], ['50', '50'], ['100', '100'], ['200', '200']], filters.limit)),
    h('div', { class: 'field field-button' }, h('button', { type: 'submit' }, 'Apply filters')));
  const replayAll = h('button', { type: 'button', class: 'danger' }, 'Replay all matching…');
  const body = h('div', {});
  root.append(h('h1', {}, 'Dead letters'), form,
    h('div', { class: 'toolbar' }, replayAll, h('span', { class: 'muted' }, 'Replays every not yet replayed dead letter matching the endpoint, reason and time filters.')),
    body);

  /** The filter as the bulk replay takes it (it always leaves replayed ones out). */
  const bulkFilter = () => {
    const f = { endpointId: filters.endpointId.trim() || undefined, reason: filters.reason || undefined, deadAfter: localToIso(filters.deadAfter), deadBefore: localToIso(filters.deadBefore) };
    return Object.fromEntries(Object.entries(f).filter(([, v]) => v !== undefined));
  };

  const replayOne = async (d) => {
    try {
      const r = await api(`/dead-letters/${encodeURIComponent(d.id)}/replay`, { method: 'POST' });
      ctx.flash(`Replayed ${d.id}: webhook ${r.webhookId} is ${r.status} again.`);
    } catch (err) {
      ctx.flash(`Replay of ${d.id} failed: ${err.message}`, 'error');
    }
    await load();
  };

  replayAll.addEventListener('click', async () => {
    const filter = bulkFilter();
    replayAll.disabled = true;
    try {
      // Count first: the operator sees how many webhooks will be sent again before agreeing.
      let count = 0;
      let cursor;
      let pages = 0;
      do {
        const page = await api('/dead-letters', { query: { ...filter, replayed: false, limit: 200, cursor } });
        count += page.data.length;
        cursor = page.nextCursor;
      } while (cursor && ++pages < COUNT_PAGES);
      const what = `${cursor ? 'At least ' : ''}${count} dead letter${count === 1 ? '' : 's'}`;
      const described = Object.entries(filter).map(([k, v]) => `${k} ${v}`).join(', ') || 'no filter: every dead letter';
      if (count === 0) {
        ctx.flash(`No dead letter waits for a replay with this filter (${described}).`);
        return;
      }
      const ok = await ctx.confirm(`${what} not yet replayed match (${described}). Replay them all now? Each webhook is sent again with its id and a fresh attempt budget.`, `Replay ${cursor ? 'all' : count}`);
      if (!ok) {
        ctx.flash('Nothing was replayed.');
        return;
      }
      const r = await api('/dead-letters/replay', { method: 'POST', body: filter });
      ctx.flash(`Replayed ${r.requeued} dead letter${r.requeued === 1 ? '' : 's'}.`);
    } catch (err) {
      ctx.flash(`Bulk replay failed: ${err.message}`, 'error');
    } finally {
      replayAll.disabled = false;
    }
    await load();
  });

  const load = async () => {
    const page = cursors.length - 1;
    try {
      const data = await api('/dead-letters', { query: { ...bulkFilter(), replayed: filters.replayed, limit: filters.limit, cursor: cursors[page] } });
      swap(body,
        table('Dead letters, newest first', ['Replay', 'Webhook', 'Reason', 'Last error', 'Attempts', 'Dead at', 'Endpoint', 'Dead letter'],
          data.data.map((d) => [
            d.replayedAt
              ? h('span', { class: 'replayed' }, 'replayed ', time(d.replayedAt), d.replayedBy ? h('small', { class: 'muted' }, ` by ${d.replayedBy}`) : null)
              : h('button', { type: 'button', 'data-key': `replay-${d.id}`, 'aria-label': `Replay ${d.id}`, onclick: () => replayOne(d) }, 'Replay'),
            link(`#/webhooks/${encodeURIComponent(d.webhookId)}`, d.webhookId, `dl-wh-${d.id}`),
            badge(d.reason),
            h('span', { class: 'error-text' }, d.lastStatusCode === null ? '' : `HTTP ${d.lastStatusCode}: `, d.lastError ?? ''),
            String(d.attempts),
            time(d.deadAt),
            link(`#/endpoints/${encodeURIComponent(d.endpointId)}`, d.endpointId, `dl-ep-${d.id}`),
            code(d.id),
          ]), 'No dead letter matches.'),
        pager(page, Boolean(data.nextCursor), () => { cursors.pop(); load(); }, () => { cursors.push(data.nextCursor); load(); }));
    } catch (err) {
      swap(body, h('p', { class: 'error', role: 'alert' }, `Could not list dead letters: ${err.message}`));
    }
  };
  onFilter(form, filters, () => {
    cursors = [undefined];
    load();
  });
  return { refresh: load };
}
