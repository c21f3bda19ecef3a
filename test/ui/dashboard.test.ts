import { existsSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import test, { type ExecutionContext } from 'ava';
import { chromium, type Browser, type Locator, type Page } from 'playwright-core';
import { startReceiver } from '../helpers/receiver.ts';
import { eventually, startTestService, type TestService } from '../helpers/service.ts';

/**
 * The dashboard in a real browser (Debian's Chromium, headless) against a live service that
 * delivers to a loopback receiver. Each scenario writes screenshots of the views it passes
 * through to docs/screenshots/ (the README shows them), overwriting the previous run's.
 */

const CHROMIUM = '/usr/bin/chromium';
const SHOTS = fileURLToPath(new URL('../../docs/screenshots/', import.meta.url));
const WIDE = { width: 1280, height: 860 };

let browser: Browser | undefined;

if (!existsSync(CHROMIUM)) {
  // Only this: CI installs the package (.ci/run), so there the scenarios always run.
  test.skip(`dashboard browser tests skipped: ${CHROMIUM} is absent (apt-get install chromium)`, () => {});
} else {
  test.before(async () => {
    mkdirSync(SHOTS, { recursive: true });
    // launch() starts from a fresh temporary profile each time; nothing is fetched from the network.
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  });
  test.after.always(async () => {
    await browser?.close();
  });
  registerScenarios();
}

interface Dashboard {
  page: Page;
  /** Script errors and console errors other than failed API answers (CSP violations land here). */
  problems: string[];
  /** Every /api/v1 request the page made: its URL and Authorization header. */
  apiRequests: { url: string; authorization: string | undefined }[];
}

async function openDashboard(t: ExecutionContext, svc: TestService, viewport = WIDE): Promise<Dashboard> {
  const context = await browser!.newContext({ viewport, baseURL: svc.url });
  t.teardown(() => context.close());
  const page = await context.newPage();
  page.setDefaultTimeout(20_000);
  const problems: string[] = [];
  const apiRequests: Dashboard['apiRequests'] = [];
  page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error' && !msg.text().startsWith('Failed to load resource')) problems.push(`console: ${msg.text()}`);
  });
  page.on('request', (req) => {
    if (new URL(req.url()).pathname.startsWith('/api/v1/')) apiRequests.push({ url: req.url(), authorization: req.headers()['authorization'] });
  });
  return { page, problems, apiRequests };
}

async function signIn(page: Page, token: string): Promise<void> {
  await page.goto('/ui');
  await page.getByLabel('API token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('navigation', { name: 'Views' }).waitFor();
}

/** Waits until the locator's text matches (the views refresh themselves every 5 s). */
async function waitForText(locator: Locator, pattern: RegExp, timeoutMs = 30_000): Promise<string> {
  return eventually(async () => {
    const text = await locator.first().textContent({ timeout: 1_000 }).catch(() => null);
    return text !== null && pattern.test(text) ? text : undefined;
  }, timeoutMs, 100);
}

async function loaded(page: Page): Promise<void> {
  await page.locator('#view h1').first().waitFor();
  await eventually(async () => ((await page.getByText('Loading…').count()) === 0 ? true : undefined), 20_000, 50);
}

async function shoot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: `${SHOTS}${name}.png`, fullPage: true });
}

async function deliver(svc: TestService, body: object): Promise<{ id: string; endpointId: string; status: string }> {
  const res = await svc.api('/api/v1/webhooks/deliver', { method: 'POST', json: body });
  if (res.status !== 202) throw new Error(`deliver answered ${res.status}: ${await res.text()}`);
  return (await res.json()) as { id: string; endpointId: string; status: string };
}

async function createEndpoint(svc: TestService, body: object): Promise<string> {
  const res = await svc.api('/api/v1/endpoints', { method: 'POST', json: body });
  if (res.status !== 201) throw new Error(`endpoint create answered ${res.status}: ${await res.text()}`);
  return ((await res.json()) as { id: string }).id;
}

async function webhookStatus(svc: TestService, id: string): Promise<string> {
  return ((await (await svc.api(`/api/v1/webhooks/${id}/status`)).json()) as { status: string }).status;
}

function until(svc: TestService, id: string, wanted: string, timeoutMs = 30_000): Promise<true> {
  return eventually(async () => ((await webhookStatus(svc, id)) === wanted ? true : undefined), timeoutMs, 100);
}

async function deadLetterOf(svc: TestService, webhookId: string): Promise<string> {
  const list = (await (await svc.api('/api/v1/dead-letters')).json()) as { data: { id: string; webhookId: string }[] };
  const letter = list.data.find((d) => d.webhookId === webhookId);
  if (!letter) throw new Error(`no dead letter for ${webhookId}`);
  return letter.id;
}

function registerScenarios(): void {
  test.serial('sign in; a delivered webhook with its attempt timeline and the headers it was sent with', async (t) => {
    const svc = await startTestService(t);
    const rx = await startReceiver(t);
    rx.script({ status: 503, body: 'busy, try later' });
    const { id } = await deliver(svc, {
      url: `${rx.url}/orders`,
      payload: { type: 'order.paid', orderId: 42 },
      headers: { 'X-Tenant': 'acme' },
      retryPolicy: { maxAttempts: 3, baseDelayMs: 100, maxDelayMs: 100 },
    });
    await rx.waitFor(2);
    await until(svc, id, 'delivered');

    const { page, problems, apiRequests } = await openDashboard(t, svc);
    await page.goto('/ui');
    await page.getByLabel('API token').fill('not-a-token');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByText('That token is not valid').waitFor();
    t.is(await page.evaluate(() => sessionStorage.getItem('hookrelay.token')), null);
    t.true(await page.getByRole('navigation', { name: 'Views' }).isHidden());

    await page.getByLabel('API token').fill(svc.token);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('navigation', { name: 'Views' }).waitFor();
    t.is(await page.evaluate(() => sessionStorage.getItem('hookrelay.token')), svc.token);

    // Overview: the stats when the server has them, otherwise what the lists tell.
    await loaded(page);
    const hasStats = (await svc.api('/api/v1/stats')).status === 200;
    if (hasStats) {
      await page.locator('figure.chart svg').waitFor();
      t.is(await page.locator('figure.chart polyline').count(), 4);
      await waitForText(page.locator('.card', { hasText: 'Delivered' }).locator('.card-value'), /^[1-9]/);
    } else {
      await page.getByText('This server has no statistics endpoint').waitFor();
    }
    await shoot(page, 'overview');

    await page.getByRole('link', { name: 'Webhooks', exact: true }).click();
    const row = page.getByRole('row', { name: new RegExp(id) });
    await row.waitFor();
    t.regex((await row.textContent()) ?? '', /delivered/);
    await shoot(page, 'webhooks');
    // The list refreshes itself: a webhook accepted meanwhile shows up without a click.
    const later = await deliver(svc, { url: `${rx.url}/orders`, payload: { type: 'order.shipped', orderId: 42 } });
    await page.getByRole('row', { name: new RegExp(later.id) }).waitFor({ timeout: 30_000 });

    await page.getByRole('link', { name: id }).click();
    await waitForText(page.getByTestId('webhook-status'), /delivered/);
    const attempts = page.locator('.timeline > li');
    t.is(await attempts.count(), 2);
    // Newest first: the success, then the 503 with its response excerpt.
    t.regex((await attempts.nth(0).textContent()) ?? '', /#2\s*success\s*HTTP 200/);
    t.regex((await attempts.nth(1).textContent()) ?? '', /#1\s*failure\s*HTTP 503/);
    await attempts.nth(1).getByText('Response excerpt').click();
    await attempts.nth(1).getByText('busy, try later').waitFor();
    // What the operator opened stays open through the next refresh.
    await page.evaluate(`document.getElementById('updated').textContent = ''`);
    await waitForText(page.locator('#updated'), /Updated/);
    t.true(await page.locator('.timeline > li').nth(1).getByText('busy, try later').isVisible());
    const headerRow = page.getByRole('region', { name: 'Headers sent with each attempt' }).getByRole('row', { name: /X-Tenant/ });
    t.regex((await headerRow.textContent()) ?? '', /X-Tenant\s*acme\s*webhook/);
    t.regex((await page.locator('pre.block').last().textContent()) ?? '', /"orderId": 42/);
    t.false(page.url().includes(svc.token));
    await shoot(page, 'webhook');

    // The token travels in the header only: never in a URL.
    const signedIn = apiRequests.filter((r) => r.authorization === `Bearer ${svc.token}`);
    t.true(signedIn.length >= 3);
    t.true(apiRequests.every((r) => !r.url.includes(svc.token) && (r.authorization === `Bearer ${svc.token}` || r.authorization === 'Bearer not-a-token')));
    t.deepEqual(problems, []);
  });

  test.serial('replay a dead letter and watch it become delivered; replay all matching after seeing the count', async (t) => {
    const svc = await startTestService(t);
    const rx = await startReceiver(t);
    rx.fallback = { status: 500, body: 'down for maintenance' };
    const endpointId = await createEndpoint(svc, { url: `${rx.url}/billing`, description: 'Billing' });
    const a = await deliver(svc, { endpointId, payload: { invoice: 1 }, retryPolicy: { maxAttempts: 1 } });
    const b = await deliver(svc, { endpointId, payload: { invoice: 2 }, retryPolicy: { maxAttempts: 1 } });
    await until(svc, a.id, 'dead');
    await until(svc, b.id, 'dead');
    const letterA = await deadLetterOf(svc, a.id);

    const { page, problems } = await openDashboard(t, svc);
    await signIn(page, svc.token);
    await page.getByRole('link', { name: 'Dead letters' }).click();
    const replayButtons = page.getByRole('button', { name: /^Replay dl_/ });
    await eventually(async () => ((await replayButtons.count()) === 2 ? true : undefined));
    t.regex((await page.getByRole('row', { name: new RegExp(letterA) }).textContent()) ?? '', /attempts exhausted\s*HTTP 500: receiver answered 500/);

    // The filters are the API's: a reason nothing died of lists nothing.
    await page.getByLabel('Reason').selectOption('gone');
    await page.getByRole('button', { name: 'Apply filters' }).click();
    await page.getByText('No dead letter matches.').waitFor();
    await page.getByLabel('Reason').selectOption('');
    await page.getByLabel('Endpoint id').fill(endpointId);
    await page.getByRole('button', { name: 'Apply filters' }).click();
    await eventually(async () => ((await replayButtons.count()) === 2 ? true : undefined));
    await shoot(page, 'dead-letters');

    rx.fallback = { status: 200, body: 'ok' };
    await page.getByRole('button', { name: `Replay ${letterA}` }).click();
    await waitForText(page.locator('#flash'), new RegExp(`Replayed ${letterA}: webhook ${a.id} is pending again`));
    await page.getByRole('row', { name: new RegExp(letterA) }).getByRole('link', { name: a.id }).click();
    // The page refreshes itself until the replay is delivered.
    await waitForText(page.getByTestId('webhook-status'), /delivered/);
    t.is(await page.locator('.timeline > li').count(), 2);
    t.is(await webhookStatus(svc, a.id), 'delivered');

    // Replay all: the count comes first; cancelling replays nothing.
    await page.getByRole('link', { name: 'Dead letters' }).click();
    await page.getByRole('button', { name: 'Replay all matching…' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.waitFor();
    t.regex((await dialog.textContent()) ?? '', /1 dead letter not yet replayed match \(no filter: every dead letter\)/);
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    await waitForText(page.locator('#flash'), /Nothing was replayed/);
    t.is(await webhookStatus(svc, b.id), 'dead');

    await page.getByRole('button', { name: 'Replay all matching…' }).click();
    await dialog.getByRole('button', { name: 'Replay 1' }).click();
    await waitForText(page.locator('#flash'), /Replayed 1 dead letter\./);
    await until(svc, b.id, 'delivered');
    await eventually(async () => ((await replayButtons.count()) === 0 ? true : undefined));
    t.is(rx.received.filter((r) => r.path === '/billing').length, 4);
    t.deepEqual(problems, []);
  });

  test.serial('the webhook list pages with cursors and filters by status and endpoint', async (t) => {
    const svc = await startTestService(t);
    const rx = await startReceiver(t);
    const delivered: string[] = [];
    for (let i = 0; i < 12; i++) delivered.push((await deliver(svc, { url: `${rx.url}/many`, payload: { i } })).id);
    for (const id of delivered) await until(svc, id, 'delivered');
    rx.fallback = { status: 500 };
    const dead = await deliver(svc, { url: `${rx.url}/other`, payload: { i: 'dead' }, retryPolicy: { maxAttempts: 1 } });
    await until(svc, dead.id, 'dead');

    const { page, problems } = await openDashboard(t, svc);
    await signIn(page, svc.token);
    await page.getByRole('link', { name: 'Webhooks', exact: true }).click();
    await page.getByLabel('Per page').selectOption('10');
    await page.getByRole('button', { name: 'Apply filters' }).click();
    const rows = page.getByRole('region', { name: 'Webhooks, newest first' }).locator('tbody tr');
    // Newest first: the dead one, then the delivered ones from the last.
    await eventually(async () => ((await rows.count()) === 10 ? true : undefined));
    t.regex((await rows.first().textContent()) ?? '', new RegExp(dead.id));
    await page.getByRole('button', { name: 'Older →' }).click();
    await waitForText(page.getByText(/^Page \d$/), /Page 2/);
    await eventually(async () => ((await rows.count()) === 3 ? true : undefined));
    t.regex((await rows.last().textContent()) ?? '', new RegExp(delivered[0]!));
    t.true(await page.getByRole('button', { name: 'Older →' }).isDisabled());
    await page.getByRole('button', { name: '← Newer' }).click();
    await waitForText(page.getByText(/^Page \d$/), /Page 1/);

    await page.getByLabel('Status').selectOption('dead');
    await page.getByRole('button', { name: 'Apply filters' }).click();
    await eventually(async () => ((await rows.count()) === 1 ? true : undefined));
    t.regex((await rows.first().textContent()) ?? '', new RegExp(dead.id));
    // The endpoint filter, as linked from an endpoint's page.
    const endpointOfMany = ((await (await svc.api(`/api/v1/webhooks/${delivered[0]}`)).json()) as { endpointId: string }).endpointId;
    await page.evaluate(`location.hash = ${JSON.stringify(`#/webhooks?endpointId=${endpointOfMany}`)}`);
    await eventually(async () => ((await rows.count()) === 12 ? true : undefined));
    t.is(await page.getByLabel('Endpoint id').inputValue(), endpointOfMany);
    t.deepEqual(problems, []);
  });

  test.serial('a retrying webhook is attempted at once with its retry button', async (t) => {
    const svc = await startTestService(t);
    const rx = await startReceiver(t);
    rx.fallback = { status: 502, body: 'bad gateway' };
    // The next attempt would be an hour away.
    const { id } = await deliver(svc, { url: `${rx.url}/slow`, payload: { n: 1 }, retryPolicy: { maxAttempts: 5, baseDelayMs: 3_600_000 } });
    await until(svc, id, 'retrying');

    const { page, problems } = await openDashboard(t, svc);
    await signIn(page, svc.token);
    await page.evaluate(`location.hash = ${JSON.stringify(`#/webhooks/${id}`)}`);
    await waitForText(page.getByTestId('webhook-status'), /retrying/);
    rx.fallback = { status: 204 };
    await page.getByRole('button', { name: 'Retry now' }).click();
    await waitForText(page.locator('#flash'), /Re-queued for an attempt now/);
    await waitForText(page.getByTestId('webhook-status'), /delivered/);
    t.is(await page.locator('.timeline > li').count(), 2);
    t.is(rx.received.length, 2);
    t.is(await page.getByRole('button', { name: /Retry/ }).count(), 0);
    t.deepEqual(problems, []);
  });

  test.serial('rotate an endpoint\'s key with a grace period; disable it, then enable it again', async (t) => {
    const svc = await startTestService(t);
    const rx = await startReceiver(t);
    const endpointId = await createEndpoint(svc, { url: `${rx.url}/crm`, description: 'CRM sync', headers: { 'X-Env': 'test' } });
    const first = await deliver(svc, { endpointId, payload: { n: 1 } });
    await until(svc, first.id, 'delivered');

    const { page, problems } = await openDashboard(t, svc);
    await signIn(page, svc.token);
    await page.getByRole('link', { name: 'Endpoints' }).click();
    const row = page.getByRole('row', { name: new RegExp(`${rx.url}/crm`) });
    await row.waitFor();
    t.regex((await row.textContent()) ?? '', /yes.*closed.*CRM sync/);
    await shoot(page, 'endpoints');

    await row.getByRole('link').first().click();
    await page.getByRole('heading', { name: `Endpoint ${endpointId}` }).waitFor();
    // Recent attempts: the delivered webhook's.
    await page.getByRole('region', { name: 'Recent attempts, newest first' }).getByRole('link', { name: first.id }).waitFor();

    await page.getByLabel('Grace period of the old key (seconds)').fill('3600');
    await page.getByRole('button', { name: 'Rotate signing key' }).click();
    const rotation = await waitForText(page.getByTestId('rotation'), /keeps signing until/);
    t.regex(rotation, /New current key key_\S+ since .*\. The previous key key_\S+ keeps signing until .* \(grace period 1 h\)/);
    // Within the grace period a delivery carries a signature per key.
    const second = await deliver(svc, { endpointId, payload: { n: 2 } });
    await until(svc, second.id, 'delivered');
    const signature = rx.received.at(-1)!.headers['webhook-signature'] ?? '';
    t.is(signature.split(' ').filter((s) => s.startsWith('v1,')).length, 2);

    await page.getByRole('button', { name: 'Disable endpoint' }).click();
    await page.getByRole('button', { name: 'Enable endpoint' }).waitFor();
    await waitForText(page.locator('#flash'), /Endpoint disabled/);
    const disabled = (await (await svc.api(`/api/v1/endpoints/${endpointId}`)).json()) as { enabled: boolean };
    t.false(disabled.enabled);
    const held = await deliver(svc, { endpointId, payload: { n: 3 } });
    t.is(held.status, 'held');

    await page.getByRole('button', { name: 'Enable endpoint' }).click();
    await page.getByRole('button', { name: 'Disable endpoint' }).waitFor();
    const enabled = (await (await svc.api(`/api/v1/endpoints/${endpointId}`)).json()) as { enabled: boolean };
    t.true(enabled.enabled);
    await until(svc, held.id, 'delivered');
    await page.getByRole('region', { name: 'Recent attempts, newest first' }).getByRole('link', { name: held.id }).waitFor();
    await shoot(page, 'endpoint');
    t.deepEqual(problems, []);
  });

  test.serial('at 360 px every view fits the width, and the keyboard alone gets around', async (t) => {
    const svc = await startTestService(t);
    const rx = await startReceiver(t);
    rx.script({ status: 200 });
    rx.fallback = { status: 500, body: 'no' };
    const ok = await deliver(svc, { url: `${rx.url}/a-rather-long-path/that/keeps/going/for/a/while?with=query&and=more`, payload: { ok: true }, retryPolicy: { maxAttempts: 1 } });
    await until(svc, ok.id, 'delivered');
    const dead = await deliver(svc, { endpointId: ok.endpointId, payload: { ok: false }, retryPolicy: { maxAttempts: 1 } });
    await until(svc, dead.id, 'dead');

    const { page, problems } = await openDashboard(t, svc, { width: 360, height: 780 });
    await page.goto('/ui');
    // The token field has the focus; Enter signs in.
    t.is(await page.evaluate('document.activeElement?.id'), 'token');
    await page.keyboard.type(svc.token);
    await page.keyboard.press('Enter');
    await page.getByRole('navigation', { name: 'Views' }).waitFor();
    await loaded(page);
    // Signing in puts the focus on the content; going back: Sign out, the refresh switch,
    // Dead letters, Endpoints, Webhooks. The focused link shows an outline.
    t.is(await page.evaluate('document.activeElement?.id'), 'main');
    for (let i = 0; i < 5; i++) await page.keyboard.press('Shift+Tab');
    t.is(await page.evaluate('document.activeElement?.textContent'), 'Webhooks');
    t.is(await page.evaluate('getComputedStyle(document.activeElement).outlineStyle'), 'solid');
    await page.keyboard.press('Enter');
    await page.getByRole('row', { name: new RegExp(ok.id) }).waitFor();

    for (const hash of ['#/overview', '#/webhooks', `#/webhooks/${ok.id}`, '#/endpoints', `#/endpoints/${ok.endpointId}`, '#/dead-letters']) {
      await page.evaluate(`location.hash = ${JSON.stringify(hash)}`);
      await loaded(page);
      const width = await page.evaluate<number>('document.documentElement.scrollWidth');
      t.true(width <= 360, `${hash} is ${width} px wide`);
      if (hash === '#/overview') await shoot(page, 'mobile-overview');
      if (hash === `#/webhooks/${ok.id}`) await shoot(page, 'mobile-webhook');
    }
    t.deepEqual(problems, []);
  });
}
