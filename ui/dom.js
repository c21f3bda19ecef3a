// Small DOM helpers. Every text goes in as a text node (never as HTML), so webhook payloads,
// URLs and receiver answers shown on these pages can never become markup or script.

/** An element: h('a', { href: '#/x', class: 'c', onclick: fn }, 'text', child, [more]) */
export function h(tag, attrs = {}, ...children) {
  return build(document.createElement(tag), attrs, children);
}

const SVG_NS = 'http://www.w3.org/2000/svg';

/** An SVG element, same arguments as h(). */
export function svg(tag, attrs = {}, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

function build(el, attrs, children) {
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (key === 'class') el.setAttribute('class', value);
    else if (key === 'value' && 'value' in el) el.value = value;
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/**
 * Replaces a region's content, keeping keyboard focus on the element with the same data-key
 * and keeping open the <details> with the same data-key (a refresh must not throw a keyboard
 * user back to the top of the page, nor close what the operator opened).
 */
export function swap(region, ...children) {
  const active = document.activeElement;
  const key = active && region.contains(active) ? active.getAttribute('data-key') : null;
  const open = [...region.querySelectorAll('details[open][data-key]')].map((d) => d.getAttribute('data-key'));
  region.replaceChildren();
  append(region, children);
  for (const k of open) {
    const details = region.querySelector(`details[data-key="${CSS.escape(k)}"]`);
    if (details) details.open = true;
  }
  if (key) region.querySelector(`[data-key="${CSS.escape(key)}"]`)?.focus();
}

/** "2026-11-28 19:46:24" in local time, in a <time> with the exact instant. */
export function time(iso) {
  if (!iso) return h('span', { class: 'muted' }, '—');
  const d = new Date(iso);
  const pad = (n) => String(n).padStart(2, '0');
  const text = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  return h('time', { datetime: iso, title: iso }, text);
}

/** 42 s, 5 min 3 s, 2 h 5 min, 3 d 4 h */
export function duration(seconds) {
  if (seconds === null || seconds === undefined) return '—';
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min${s % 60 ? ` ${s % 60} s` : ''}`;
  if (s < 86400) return `${Math.floor(s / 3600)} h${Math.floor((s % 3600) / 60) ? ` ${Math.floor((s % 3600) / 60)} min` : ''}`;
  return `${Math.floor(s / 86400)} d${Math.floor((s % 86400) / 3600) ? ` ${Math.floor((s % 86400) / 3600)} h` : ''}`;
}

/** 250 ms, 30 s, 1 h */
export function millis(ms) {
  return ms < 1000 ? `${ms} ms` : duration(ms / 1000);
}

export function badge(value) {
  return h('span', { class: `badge badge-${String(value).replace(/[^a-z_]/g, '')}` }, String(value).replace('_', ' '));
}

/** A table in a scrollable, keyboard-focusable region (wide tables scroll on narrow screens). */
export function table(caption, headings, rows, empty = 'Nothing to show.') {
  if (rows.length === 0) return h('p', { class: 'empty' }, empty);
  return h('div', { class: 'scroll', role: 'region', 'aria-label': caption, tabindex: 0 },
    h('table', {},
      h('caption', { class: 'visually-hidden' }, caption),
      h('thead', {}, h('tr', {}, headings.map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, rows.map((cells) => h('tr', {}, cells.map((c) => h('td', {}, c)))))));
}

/** A <dl> from [term, value] pairs. */
export function facts(pairs) {
  return h('dl', { class: 'facts' }, pairs.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v ?? h('span', { class: 'muted' }, '—'))]));
}

export function code(text) {
  return h('code', {}, text);
}

export function link(href, text, key) {
  return h('a', { href, 'data-key': key }, text);
}

/** `<input type=datetime-local>` value (local time) → ISO instant, or undefined. */
export function localToIso(value) {
  if (!value) return undefined;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString();
}

/** A labelled form field. */
export function field(label, control, hint) {
  const id = control.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  control.id = id;
  return h('div', { class: 'field' }, h('label', { for: id }, label), control, hint ? h('small', { class: 'muted' }, hint) : null);
}

export function select(name, options, value) {
  return h('select', { name }, options.map(([v, text]) => h('option', { value: v, selected: v === value }, text)));
}

/** A filter form: on submit, its fields (by the keys of `filters`) go into `filters`, then `apply` runs. */
export function onFilter(form, filters, apply) {
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const f = new FormData(form);
    for (const key of Object.keys(filters)) filters[key] = String(f.get(key) ?? '');
    apply();
  });
}
