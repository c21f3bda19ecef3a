// The dashboard shell: sign-in, hash routes (#/webhooks/msg_…), and the refresh loop.
import { api, ApiError, session } from './api.js';
import { h } from './dom.js';
import * as overview from './overview.js';
import * as webhooks from './webhooks.js';
import * as endpoints from './endpoints.js';
import * as deadLetters from './dead-letters.js';

const VIEWS = { overview, webhooks, endpoints, 'dead-letters': deadLetters };
const TITLES = { overview: 'Overview', webhooks: 'Webhooks', endpoints: 'Endpoints', 'dead-letters': 'Dead letters' };
/** Views reload their data this often while the page is visible. */
const REFRESH_MS = 5000;

const $ = (id) => document.getElementById(id);
let current = null;
let refreshing = null;

/** Messages about what an action did, read out by screen readers. */
function flash(text, kind = 'ok') {
  const el = $('flash');
  el.className = `flash flash-${kind}`;
  el.textContent = text;
}

/** A modal yes/no question; resolves true only on the confirming button. */
function confirmAction(text, okLabel) {
  const dialog = $('confirm');
  $('confirm-text').textContent = text;
  $('confirm-ok').textContent = okLabel;
  dialog.returnValue = '';
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true });
    dialog.showModal();
    $('confirm-cancel').focus();
  });
}

const ctx = { flash, confirm: confirmAction };

function parseRoute() {
  const raw = location.hash.replace(/^#\/?/, '');
  const [path, query = ''] = raw.split('?');
  const [view, ...rest] = path.split('/');
  const name = VIEWS[view] ? view : 'overview';
  return { name, id: VIEWS[view] && rest.length ? decodeURIComponent(rest.join('/')) : undefined, params: new URLSearchParams(query) };
}

function showSignedIn(signedIn) {
  $('login').hidden = signedIn;
  $('nav').hidden = !signedIn;
  $('session').hidden = !signedIn;
  $('view').hidden = !signedIn;
}

/** After a navigation, keyboard and screen reader users start at the new content. */
async function routeAndFocus() {
  await route();
  if (session.token()) $('main').focus({ preventScroll: true });
}

async function route() {
  if (!session.token()) {
    current = null;
    $('view').replaceChildren();
    showSignedIn(false);
    $('token').focus();
    return;
  }
  showSignedIn(true);
  const r = parseRoute();
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.dataset.view === r.name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  document.title = `${TITLES[r.name]}${r.id ? ` ${r.id}` : ''} · hookrelay`;
  const root = h('div', { class: 'view', 'data-view': r.name });
  $('view').replaceChildren(root);
  current = VIEWS[r.name].mount(root, r, ctx);
  await refresh();
}

async function refresh() {
  if (!current) return;
  // One load at a time per view; a view just mounted does not wait for the one it replaced.
  if (refreshing && refreshing.view === current) return refreshing.done;
  const view = current;
  const done = (async () => {
    try {
      await view.refresh();
      $('updated').textContent = `Updated ${new Date().toLocaleTimeString()}`;
    } catch (err) {
      // Views show their own errors; this catches anything they let through.
      flash(err instanceof ApiError ? err.message : String(err), 'error');
    } finally {
      if (refreshing?.view === view) refreshing = null;
    }
  })();
  refreshing = { view, done };
  return done;
}

function tick() {
  if (document.visibilityState !== 'visible') return;
  if (!$('auto-refresh').checked || $('confirm').open) return;
  refresh();
}

$('login-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const input = $('token');
  const token = input.value.trim();
  if (!token) return;
  session.signIn(token);
  $('login-error').textContent = '';
  try {
    await api('/webhooks', { query: { limit: 1 } });
  } catch (err) {
    // A 403 is a valid token without webhooks:read: the views it can read still work.
    if (!(err instanceof ApiError) || err.status !== 403) {
      session.signOut();
      $('login-error').textContent = err instanceof ApiError && err.status === 401 ? 'That token is not valid (unknown, revoked or expired).' : `Could not sign in: ${err.message}`;
      return;
    }
  }
  input.value = '';
  flash('Signed in.');
  if (!location.hash) location.hash = '#/overview';
  else routeAndFocus();
});

$('sign-out').addEventListener('click', () => {
  session.signOut();
  flash('Signed out.');
  route();
});

window.addEventListener('hookrelay:unauthorized', () => {
  session.signOut();
  route();
  $('login-error').textContent = 'The token was refused (revoked or expired?). Sign in again.';
});
window.addEventListener('hashchange', () => {
  $('flash').textContent = '';
  routeAndFocus();
});
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible') tick();
});
setInterval(tick, REFRESH_MS);
route();
