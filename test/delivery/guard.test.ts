import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import test, { type ExecutionContext } from 'ava';
import { Agent, buildConnector, request } from 'undici';
import { SETTINGS, loadConfig } from '../../src/config.ts';
import { parseAllowList } from '../../src/delivery/address-policy.ts';
import { checkedAddresses, createGuardedConnector, type Resolver } from '../../src/delivery/guard.ts';
import { createSender, ERROR_CLASS, type SendRequest } from '../../src/delivery/send.ts';
import { createLogger } from '../../src/log.ts';
import { startService } from '../../src/main.ts';
import { query } from '../helpers/db.ts';
import { startReceiver } from '../helpers/receiver.ts';
import { eventually, startTestService, TEST_MASTER_KEY, type TestService } from '../helpers/service.ts';

/**
 * The SSRF guard over real sockets. Nothing here connects anywhere but 127.0.0.1: "public"
 * addresses only appear in injected resolvers, and a connect to them is intercepted.
 */

const MAIN = fileURLToPath(new URL('../../src/main.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const LOOPBACK = parseAllowList('127.0.0.0/8,::1/128');
/** TEST-NET-3: used as a "public" answer of an injected resolver; any connect to it is intercepted. */
const FAKE_PUBLIC = '203.0.113.7';
const FAKE_PUBLIC_ALLOW = parseAllowList('203.0.113.0/24');

const req = (url: string): SendRequest => ({ url, headers: { 'content-type': 'application/json' }, body: '{}', timeoutMs: 5_000, maxResponseBytes: 1024 });

function sender(t: ExecutionContext, options: Parameters<typeof createSender>[0]) {
  const s = createSender(options);
  t.teardown(() => s.close());
  return s;
}

test('a receiver on 127.0.0.1 is refused without the allow list and reached with it', async (t) => {
  const rx = await startReceiver(t);
  const refused = await sender(t, {}).send(req(`${rx.url}/hook`));
  t.false(refused.ok);
  t.is(refused.errorClass, ERROR_CLASS.blocked);
  t.is(refused.error, 'destination not allowed');
  t.is(refused.statusCode, null);
  t.is(refused.responseBody.length, 0);
  t.is(rx.received.length, 0, 'the receiver got nothing');

  const allowed = await sender(t, { allowNetworks: LOOPBACK }).send(req(`${rx.url}/hook`));
  t.true(allowed.ok, allowed.error ?? '');
  t.is(rx.received.length, 1);
});

test('IPv4 notations and IPv6 forms of loopback are refused at connect time', async (t) => {
  const rx = await startReceiver(t);
  const port = new URL(rx.url).port;
  const s = sender(t, {});
  for (const host of ['127.0.0.1', '2130706433', '0x7f000001', '0177.0.0.1', '127.1', '[::1]', '[::ffff:127.0.0.1]', '[::ffff:7f00:1]', '0.0.0.0']) {
    const r = await s.send(req(`http://${host}:${port}/`));
    t.is(r.errorClass, ERROR_CLASS.blocked, host);
    t.is(r.error, 'destination not allowed', host);
  }
  t.is(rx.received.length, 0);
});

test('localhost names are refused by name, even with loopback allowed', async (t) => {
  const rx = await startReceiver(t);
  const port = new URL(rx.url).port;
  let lookups = 0;
  const s = sender(t, { allowNetworks: LOOPBACK, resolve: async () => { lookups++; return [{ address: '127.0.0.1', family: 4 }]; } });
  for (const host of ['localhost', 'LOCALHOST', 'localhost.', 'api.localhost', 'ip6-localhost', 'localhost.localdomain']) {
    const r = await s.send(req(`http://${host}:${port}/`));
    t.is(r.errorClass, ERROR_CLASS.blocked, host);
  }
  t.is(lookups, 0, 'refused before any lookup');
  t.is(rx.received.length, 0);
});

test('a name resolving to 127.0.0.1 is refused; with the allow list it is reached at the checked address, Host kept', async (t) => {
  const rx = await startReceiver(t);
  const port = new URL(rx.url).port;
  const resolve: Resolver = async () => [{ address: '127.0.0.1', family: 4 }];
  const refused = await sender(t, { resolve }).send(req(`http://hooks.internal.test:${port}/`));
  t.is(refused.errorClass, ERROR_CLASS.blocked);
  t.is(refused.error, 'destination not allowed');
  t.false(JSON.stringify(refused).includes('127.0.0.1'), 'nothing about the resolved address');
  t.is(rx.received.length, 0);

  const allowed = await sender(t, { resolve, allowNetworks: LOOPBACK }).send(req(`http://hooks.internal.test:${port}/x`));
  t.true(allowed.ok, allowed.error ?? '');
  t.is(rx.received[0]!.headers.host, `hooks.internal.test:${port}`);
});

test('a name resolving to [public, 127.0.0.1] is refused: one refused address refuses the delivery', async (t) => {
  const rx = await startReceiver(t);
  const port = new URL(rx.url).port;
  const connects: string[] = [];
  let lookups = 0;
  const connector = createGuardedConnector({
    allow: FAKE_PUBLIC_ALLOW,
    resolve: async () => { lookups++; return [{ address: FAKE_PUBLIC, family: 4 }, { address: '127.0.0.1', family: 4 }]; },
    connect: (opts, cb) => { connects.push(opts.hostname); cb(Object.assign(new Error('intercepted'), { code: 'ECONNREFUSED' }), null); },
  });
  const agent = new Agent({ connect: connector });
  t.teardown(() => agent.destroy());
  const err = await request(`http://mixed.test:${port}/`, { dispatcher: agent, method: 'POST', body: '{}' }).then(() => undefined, (e: unknown) => e as { code?: string });
  t.is(err?.code, 'HOOKRELAY_DESTINATION_BLOCKED');
  t.is(lookups, 1);
  t.deepEqual(connects, [], 'no connection at all');
  t.is(rx.received.length, 0);

  await t.throwsAsync(checkedAddresses('mixed.test', FAKE_PUBLIC_ALLOW, async () => [{ address: '::1', family: 6 }, { address: FAKE_PUBLIC, family: 4 }]), { message: 'destination not allowed' });
  t.deepEqual(await checkedAddresses('ok.test', FAKE_PUBLIC_ALLOW, async () => [{ address: FAKE_PUBLIC, family: 4 }, { address: FAKE_PUBLIC, family: 4 }]), [FAKE_PUBLIC]);
});

test('DNS rebinding: the name is resolved once per connection and the checked address is the one connected', async (t) => {
  const rx = await startReceiver(t);
  const port = new URL(rx.url).port;
  // First answer "public", every later one 127.0.0.1: a guard that resolved again to connect
  // would reach the receiver.
  let lookups = 0;
  const rebinding: Resolver = async () => (++lookups === 1 ? [{ address: FAKE_PUBLIC, family: 4 }] : [{ address: '127.0.0.1', family: 4 }]);
  // The real connector, resolving names through the same rebinding resolver (as the system would).
  const real = buildConnector({
    lookup: (hostname, options, cb) => {
      void rebinding(hostname).then((as) => (options.all ? cb(null, as) : cb(null, as[0]!.address, as[0]!.family)), (e: Error) => cb(e, '', 0));
    },
  });
  const connects: string[] = [];
  const connector = createGuardedConnector({
    allow: FAKE_PUBLIC_ALLOW,
    resolve: rebinding,
    connect: (opts, cb) => {
      connects.push(opts.hostname);
      // Never any traffic to the "public" address.
      if (opts.hostname === FAKE_PUBLIC) return cb(Object.assign(new Error('intercepted'), { code: 'ECONNREFUSED' }), null);
      return real(opts, cb);
    },
  });
  const agent = new Agent({ connect: connector });
  t.teardown(() => agent.destroy());
  const post = () => request(`http://rebind.test:${port}/`, { dispatcher: agent, method: 'POST', body: '{}' }).then(() => undefined, (e: unknown) => e as { code?: string });

  const first = await post();
  t.is(first?.code, 'ECONNREFUSED', 'the checked public address was the one connected (intercepted)');
  t.is(lookups, 1, 'one lookup for the connection');
  t.deepEqual(connects, [FAKE_PUBLIC]);

  const second = await post();
  t.is(second?.code, 'HOOKRELAY_DESTINATION_BLOCKED', 'the new answer is checked before connecting');
  t.is(lookups, 2);
  t.deepEqual(connects, [FAKE_PUBLIC], 'never a connect to 127.0.0.1');
  t.is(rx.received.length, 0);
});

test('an attempt past its deadline cancels the pending connection: no connect after a late lookup', async (t) => {
  let answer!: (a: { address: string; family: number }[]) => void;
  const late = new Promise<{ address: string; family: number }[]>((r) => { answer = r; });
  const connects: string[] = [];
  const connector = createGuardedConnector({
    allow: FAKE_PUBLIC_ALLOW,
    resolve: () => late,
    connect: (opts, cb) => { connects.push(opts.hostname); cb(Object.assign(new Error('intercepted'), { code: 'ECONNREFUSED' }), null); },
  });
  const agent = new Agent({ connect: connector });
  t.teardown(() => agent.destroy());
  const err = await request('http://slow-dns.test/', { dispatcher: agent, method: 'POST', body: '{}', signal: AbortSignal.timeout(100) })
    .then(() => undefined, (e: unknown) => e as Error);
  t.truthy(err);
  answer([{ address: FAKE_PUBLIC, family: 4 }]);
  await new Promise((r) => setTimeout(r, 50));
  t.deepEqual(connects, [], 'the cancelled attempt never connects');
});

test('a lookup failure stays a dns error; nothing is leaked', async (t) => {
  const r = await sender(t, { resolve: async () => { throw Object.assign(new Error('getaddrinfo ENOTFOUND nowhere.test'), { code: 'ENOTFOUND' }); } })
    .send(req('http://nowhere.test/'));
  t.is(r.errorClass, ERROR_CLASS.dns);
});

// --- the API: URLs that can never be allowed are refused at submission and registration ---

async function expectRefused(t: ExecutionContext, res: Response, what: string) {
  t.is(res.status, 400, what);
  t.regex(res.headers.get('content-type') ?? '', /application\/problem\+json/, what);
  const problem = (await res.json()) as { code: string; errors: { field: string }[] };
  t.is(problem.code, 'destination_not_allowed', what);
  t.deepEqual(problem.errors.map((e) => e.field), ['url'], what);
}

async function counts(svc: TestService) {
  const [row] = await query(svc.dbUrl, `SELECT (SELECT count(*) FROM hookrelay.webhooks)::int AS webhooks, (SELECT count(*) FROM hookrelay.endpoints)::int AS endpoints`);
  return row;
}

test('submission and endpoint registration refuse never-allowed URLs; nothing is stored', async (t) => {
  const svc = await startTestService(t, { HOOKRELAY_ALLOW_NETWORKS: '' });
  const rx = await startReceiver(t);
  const urls = [rx.url, 'http://127.0.0.1/', 'http://[::ffff:127.0.0.1]/', 'http://0x7f000001/', 'http://2130706433/', 'http://127.1/', 'http://0177.0.0.1/',
    'http://169.254.169.254/latest/meta-data/', 'http://[::1]:8080/', 'http://10.0.0.5/', 'http://localhost/', 'http://localhost./', 'http://x.localhost/',
    'http://[fd00:ec2::254]/', 'http://[64:ff9b::7f00:1]/', 'http://[2002:7f00:1::]/', 'http://100.100.100.200/'];
  for (const url of urls) {
    await expectRefused(t, await svc.api('/api/v1/webhooks/deliver', { method: 'POST', json: { url, payload: {} } }), `deliver ${url}`);
    await expectRefused(t, await svc.api('/api/v1/endpoints', { method: 'POST', json: { url } }), `create ${url}`);
  }
  t.deepEqual(await counts(svc), { webhooks: 0, endpoints: 0 });

  const created = await svc.api('/api/v1/endpoints', { method: 'POST', json: { url: 'https://hooks.example.com/in' } });
  t.is(created.status, 201);
  const { id } = (await created.json()) as { id: string };
  for (const url of ['http://127.0.0.1:9/', 'http://0x7f.1/', 'http://169.254.169.254/']) {
    await expectRefused(t, await svc.api(`/api/v1/endpoints/${id}`, { method: 'PATCH', json: { url } }), `patch ${url}`);
  }
  const after = (await (await svc.api(`/api/v1/endpoints/${id}`)).json()) as { url: string };
  t.is(after.url, 'https://hooks.example.com/in');
  t.is(rx.received.length, 0);
});

test('with the allow list, allowed literals are accepted but metadata addresses never', async (t) => {
  const svc = await startTestService(t, { HOOKRELAY_ALLOW_NETWORKS: '127.0.0.0/8,169.254.0.0/16' });
  for (const url of ['http://169.254.169.254/', 'http://[::ffff:169.254.169.254]/', 'http://0xa9fea9fe/', 'http://169.254.170.2/', 'http://localhost/']) {
    await expectRefused(t, await svc.api('/api/v1/webhooks/deliver', { method: 'POST', json: { url, payload: {} } }), url);
  }
  const ok = await svc.api('/api/v1/endpoints', { method: 'POST', json: { url: 'http://169.254.1.1/' } });
  t.is(ok.status, 201);
  const rx = await startReceiver(t);
  const res = await svc.api('/api/v1/webhooks/deliver', { method: 'POST', json: { url: rx.url, payload: { n: 1 } } });
  t.is(res.status, 202);
  await rx.waitFor(1);
});

/** An api-only service that accepts loopback URLs (the worker that delivers is configured apart). */
async function apiOnly(t: ExecutionContext) {
  return startTestService(t, { HOOKRELAY_ROLES: 'api', HOOKRELAY_ALLOW_NETWORKS: '127.0.0.0/8' });
}

async function submit(svc: TestService, url: string): Promise<string> {
  const res = await svc.api('/api/v1/webhooks/deliver', { method: 'POST', json: { url, payload: { hello: 'world' }, retryPolicy: { maxAttempts: 2, baseDelayMs: 100 } } });
  t_assert(res.status === 202, `submit answered ${res.status}`);
  return ((await res.json()) as { id: string }).id;
}

function t_assert(cond: boolean, message: string): asserts cond {
  if (!cond) throw new Error(message);
}

async function attemptsOf(svc: TestService, id: string, count: number) {
  return eventually(async () => {
    const w = (await (await svc.api(`/api/v1/webhooks/${id}`)).json()) as { status: string; attempts: { errorClass: string | null; error: string | null; statusCode: number | null; responseBody: string | null; outcome: string }[] };
    return w.attempts.length >= count && (w.status === 'dead' || w.status === 'delivered') ? w : undefined;
  });
}

test('a worker without the allow list records a blocked attempt, retries it like any failure, and the receiver gets nothing', async (t) => {
  const api = await apiOnly(t);
  const rx = await startReceiver(t);
  const id = await submit(api, `${rx.url}/hook`);
  const config = loadConfig({ DATABASE_URL: api.dbUrl, HOOKRELAY_ROLES: 'worker', HOOKRELAY_MASTER_KEY: TEST_MASTER_KEY, HOOKRELAY_DB_POOL_MAX: '4', HOOKRELAY_SHUTDOWN_TIMEOUT_MS: '2000' });
  const worker = await startService(config, createLogger({ level: 'error', silent: true }));
  t.teardown(() => worker.stop());
  const w = await attemptsOf(api, id, 2);
  t.is(w.status, 'dead');
  t.is(w.attempts.length, 2, 'retried like any failure');
  for (const a of w.attempts) {
    t.like(a, { outcome: 'failure', errorClass: 'blocked', error: 'destination not allowed', statusCode: null, responseBody: null });
  }
  t.is(rx.received.length, 0);
});

// --- proxy variables in the environment of a real service process ---

interface Child { logs: string[]; exited: Promise<number | null>; stop(): Promise<void> }

function startMain(t: ExecutionContext, env: Record<string, string>): Child {
  const base: NodeJS.ProcessEnv = { ...process.env };
  for (const s of SETTINGS) delete base[s.env];
  const child = spawn(process.execPath, [MAIN], { cwd: ROOT, env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: string[] = [];
  child.stdout.on('data', (c: Buffer) => logs.push(c.toString('utf8')));
  child.stderr.on('data', (c: Buffer) => logs.push(c.toString('utf8')));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  return {
    logs,
    exited,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

/** A "proxy" on 127.0.0.1 that records anything that reaches it (CONNECT or plain requests). */
async function startProxy(t: ExecutionContext) {
  const seen: string[] = [];
  const server: Server = createServer((r, res) => { seen.push(`${r.method} ${r.url}`); res.end('proxied'); });
  server.on('connect', (r, socket) => { seen.push(`CONNECT ${r.url}`); socket.destroy(); });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => { server.close(() => resolve()); server.closeAllConnections(); }));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

const proxyEnv = (proxy: string) => ({
  HTTP_PROXY: proxy, HTTPS_PROXY: proxy, ALL_PROXY: proxy, http_proxy: proxy, https_proxy: proxy, all_proxy: proxy,
  NO_PROXY: '*', no_proxy: '*', NODE_USE_ENV_PROXY: '1',
});

test.serial('proxy variables in a service process cannot carry a delivery past the guard', async (t) => {
  t.timeout(60_000);
  const api = await apiOnly(t);
  const rx = await startReceiver(t);
  const proxy = await startProxy(t);
  const id = await submit(api, `${rx.url}/via-proxy`);
  const child = startMain(t, {
    DATABASE_URL: api.dbUrl, HOOKRELAY_ROLES: 'worker', HOOKRELAY_MASTER_KEY: TEST_MASTER_KEY, HOOKRELAY_DB_POOL_MAX: '4', LOG_LEVEL: 'info',
    ...proxyEnv(proxy.url),
  });
  const w = await attemptsOf(api, id, 2);
  t.is(w.status, 'dead', child.logs.join(''));
  for (const a of w.attempts) t.like(a, { errorClass: 'blocked', error: 'destination not allowed' });
  t.is(rx.received.length, 0);
  t.deepEqual(proxy.seen, [], 'the proxy was never used');

  await child.stop();

  // And with the allow list the delivery goes straight to the receiver, still not via the proxy.
  const id2 = await submit(api, `${rx.url}/direct`);
  startMain(t, {
    DATABASE_URL: api.dbUrl, HOOKRELAY_ROLES: 'worker', HOOKRELAY_MASTER_KEY: TEST_MASTER_KEY, HOOKRELAY_DB_POOL_MAX: '4', LOG_LEVEL: 'info',
    HOOKRELAY_ALLOW_NETWORKS: '127.0.0.0/8,::1/128', ...proxyEnv(proxy.url),
  });
  const w2 = await attemptsOf(api, id2, 1);
  t.is(w2.status, 'delivered');
  t.deepEqual(rx.received.map((r) => r.path), ['/direct']);
  t.deepEqual(proxy.seen, [], 'the proxy was never used');
});
