import { createServer, type Server } from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import test, { type ExecutionContext } from 'ava';
import { loadConfig, SETTINGS } from '../../src/config.ts';
import { createDb } from '../../src/db/database.ts';
import { startQueue } from '../../src/delivery/queue.ts';
import { submitWebhook } from '../../src/delivery/submit.ts';
import { createKeyring } from '../../src/endpoints/keyring.ts';
import { freshDatabase, query, silentLog } from '../helpers/db.ts';
import { startReceiver } from '../helpers/receiver.ts';
import { eventually, TEST_ALLOW_NETWORKS, TEST_MASTER_KEY } from '../helpers/service.ts';
import { spawnService, type ServiceProcess } from '../helpers/process.ts';

/**
 * Reliability against real process deaths: `node src/main.ts` is started as a child process and
 * killed with SIGKILL (no cleanup of any kind runs) or stopped with SIGTERM. A webhook accepted
 * before the death must still be delivered, once recorded, by the next process.
 *
 * The tests run serially: each starts one or two service processes and measures recovery
 * times, which several at once on a small machine would only blur.
 */

const MAIN = fileURLToPath(new URL('../../src/main.ts', import.meta.url));
const TEST_TIMEOUT = 90_000;
/** A killed attempt's job is handed out again after its heartbeat is missed (10 s) plus a
 * supervise pass (1 s) plus the job retry delay: well within this. */
const REDELIVERY_WITHIN_MS = 30_000;
const ADMIN_TOKEN = 'crash-test-admin-token-0123456789';

const QUEUE_ENV = {
  // Required with DATABASE_URL; the processes and submitDirect share it, so every process can
  // open the signing keys the others sealed.
  HOOKRELAY_MASTER_KEY: TEST_MASTER_KEY,
  HOOKRELAY_QUEUE_HEARTBEAT_SECONDS: '10',
  HOOKRELAY_QUEUE_SUPERVISE_SECONDS: '1',
  LOG_LEVEL: 'info',
  HOOKRELAY_DB_POOL_MAX: '4',
  // The receivers listen on loopback, which the SSRF guard refuses by default.
  HOOKRELAY_ALLOW_NETWORKS: TEST_ALLOW_NETWORKS,
} as const;

/** Starts `node src/main.ts` with only the given settings; it is SIGKILLed (by pid) at teardown if still alive. */
async function startProcess(t: ExecutionContext, env: Record<string, string>): Promise<ServiceProcess> {
  const base: NodeJS.ProcessEnv = { ...process.env };
  for (const s of SETTINGS) delete base[s.env];
  const proc = spawnService(t, [MAIN], { ...base, ...QUEUE_ENV, ...env });
  await proc.waitForLog((l) => l.message === 'hookrelay started');
  return proc;
}

/** SIGKILL by pid, and wait until the process is gone. */
async function killHard(proc: ServiceProcess): Promise<void> {
  process.kill(proc.pid, 'SIGKILL');
  const { signal } = await proc.exited;
  if (signal !== 'SIGKILL') throw new Error(`process ${proc.pid} ended by ${signal} rather than SIGKILL`);
}

/** Submits through the library, as an application sharing the database would. */
async function submitDirect(t: ExecutionContext, dbUrl: string, receiverUrl: string, retryPolicy: Partial<{ maxAttempts: number; baseDelayMs: number; maxDelayMs: number }> = {}) {
  const config = loadConfig({ DATABASE_URL: dbUrl, ...QUEUE_ENV });
  const handle = createDb(dbUrl, { max: 2 });
  t.teardown(() => handle.close());
  // No supervision here: only the service processes look for lost jobs.
  const boss = await startQueue(dbUrl, config, silentLog, { supervise: false });
  t.teardown(() => boss.stop({ graceful: false, close: true }));
  const keyring = createKeyring(Buffer.from(config.masterKey!, 'base64'));
  return submitWebhook(handle.db, { boss, keyring, retryDefaults: config.retry }, {
    url: receiverUrl,
    body: JSON.stringify({ type: 'crash.test', at: Date.now() }),
    headers: {},
    retryPolicy: { ...config.retry, ...retryPolicy },
  });
}

interface WebhookRow {
  status: string;
  attempts: number;
  delivered_at: Date | null;
}

async function webhookRow(dbUrl: string, id: string): Promise<WebhookRow> {
  const rows = await query<WebhookRow>(dbUrl, 'SELECT status, attempts, delivered_at FROM hookrelay.webhooks WHERE id = $1', [id]);
  if (!rows[0]) throw new Error(`webhook ${id} does not exist`);
  return rows[0];
}

function settled(dbUrl: string, id: string, timeoutMs: number): Promise<WebhookRow> {
  return eventually(async () => {
    const row = await webhookRow(dbUrl, id);
    return row.status === 'delivered' || row.status === 'dead' ? row : undefined;
  }, timeoutMs, 100);
}

async function attemptRows(dbUrl: string, id: string) {
  return query<{ attempt: number; outcome: string; status_code: number | null; error_class: string | null }>(
    dbUrl,
    'SELECT attempt, outcome, status_code, error_class FROM hookrelay.attempts WHERE webhook_id = $1 ORDER BY attempt',
    [id],
  );
}

/** Jobs still waiting or running for a webhook: none once it is settled. */
async function openJobs(dbUrl: string, id: string): Promise<number> {
  const rows = await query<{ n: number }>(dbUrl, `SELECT count(*)::int AS n FROM hookrelay_queue.job WHERE data->>'webhookId' = $1 AND state IN ('created', 'retry', 'active')`, [id]);
  return rows[0]!.n;
}

/** A port nothing listens on now (listen on 0, note it, close). */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

test.serial('a worker SIGKILLed in the middle of an attempt does not lose the webhook', async (t) => {
  t.timeout(TEST_TIMEOUT);
  const dbUrl = await freshDatabase(t);
  const rx = await startReceiver(t);
  rx.script({ hang: true }); // the first attempt never gets an answer; later ones get 200

  const first = await startProcess(t, { DATABASE_URL: dbUrl, HOOKRELAY_ROLES: 'worker' });
  const accepted = await submitDirect(t, dbUrl, `${rx.url}/crash`);
  const [inFlight] = await rx.waitFor(1, 20_000);
  t.is(inFlight!.headers['webhook-id'], accepted.id);

  await killHard(first);
  const killedAt = Date.now();
  // Nothing about the killed attempt was written.
  t.like(await webhookRow(dbUrl, accepted.id), { status: 'pending', attempts: 0 });
  t.deepEqual(await attemptRows(dbUrl, accepted.id), []);

  const second = await startProcess(t, { DATABASE_URL: dbUrl, HOOKRELAY_ROLES: 'worker' });
  const got = await rx.waitFor(2, REDELIVERY_WITHIN_MS);
  const redeliveredAfterMs = got[1]!.at - killedAt;
  t.log(`redelivered ${redeliveredAfterMs} ms after the SIGKILL`);
  t.true(redeliveredAfterMs < REDELIVERY_WITHIN_MS);

  const row = await settled(dbUrl, accepted.id, 10_000);
  t.is(row.status, 'delivered');
  t.is(row.attempts, 1);
  t.truthy(row.delivered_at);
  // The same webhook id on both requests: a receiver can deduplicate on it.
  t.is(got[1]!.headers['webhook-id'], accepted.id);
  t.is(got[0]!.body, got[1]!.body);
  // Exactly one attempt recorded, the successful one: the killed attempt never was.
  t.deepEqual(await attemptRows(dbUrl, accepted.id), [{ attempt: 1, outcome: 'success', status_code: 200, error_class: null }]);
  t.is(await openJobs(dbUrl, accepted.id), 0);
  t.truthy(second.logs.find((l) => l.message === 'delivered' && l.webhookId === accepted.id));
  // No further request arrives: the webhook is done.
  await new Promise((r) => setTimeout(r, 1_500));
  t.is(rx.received.length, 2);
});

test.serial('the all-in-one process SIGKILLed right after a 202 loses nothing: the restarted one delivers', async (t) => {
  t.timeout(TEST_TIMEOUT);
  const dbUrl = await freshDatabase(t, { migrate: false });
  const receiverPort = await freePort();
  const receiverUrl = `http://127.0.0.1:${receiverPort}/down`;
  const env = { DATABASE_URL: dbUrl, PORT: '0', HOST: '127.0.0.1', HOOKRELAY_ADMIN_TOKEN: ADMIN_TOKEN };

  const first = await startProcess(t, env);
  t.truthy(first.port);
  const res = await fetch(`http://127.0.0.1:${first.port}/api/v1/webhooks/deliver`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ url: receiverUrl, payload: { order: 42 }, retryPolicy: { maxAttempts: 20, baseDelayMs: 500, maxDelayMs: 2_000 } }),
  });
  t.is(res.status, 202);
  const { id } = (await res.json()) as { id: string };
  await killHard(first);
  const killedAt = Date.now();

  const before = await webhookRow(dbUrl, id);
  t.true(before.status === 'pending' || before.status === 'retrying', before.status);

  const second = await startProcess(t, env);
  // Bring the receiver up on the port the webhook names.
  const received: { id: string | undefined; body: string; at: number }[] = [];
  const receiver: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString('utf8')));
    req.on('end', () => {
      received.push({ id: req.headers['webhook-id'] as string | undefined, body, at: Date.now() });
      res.writeHead(200);
      res.end('ok');
    });
  });
  await new Promise<void>((resolve, reject) => {
    receiver.once('error', reject);
    receiver.listen(receiverPort, '127.0.0.1', () => resolve());
  });
  t.teardown(() => new Promise<void>((resolve) => {
    receiver.close(() => resolve());
    receiver.closeAllConnections();
  }));

  const row = await settled(dbUrl, id, REDELIVERY_WITHIN_MS);
  t.log(`delivered ${Date.now() - killedAt} ms after the SIGKILL, ${row.attempts} attempt(s)`);
  t.is(row.status, 'delivered');
  t.true(received.length >= 1);
  t.true(received.every((r) => r.id === id));
  t.deepEqual(JSON.parse(received.at(-1)!.body), { order: 42 });
  // Attempts are numbered without gaps, every one but the last failed, the last succeeded.
  const attempts = await attemptRows(dbUrl, id);
  t.deepEqual(attempts.map((a) => a.attempt), attempts.map((_, i) => i + 1));
  t.is(attempts.length, row.attempts);
  t.deepEqual(attempts.map((a) => a.outcome), [...attempts.slice(0, -1).map(() => 'failure'), 'success']);
  t.true(attempts.slice(0, -1).every((a) => a.error_class === 'connection_refused'));
  t.is(await openJobs(dbUrl, id), 0);
  // The restarted process answers for the webhook too.
  const status = await fetch(`http://127.0.0.1:${second.port}/api/v1/webhooks/${id}/status`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
  t.like((await status.json()) as object, { id, status: 'delivered' });
});

test.serial('SIGTERM while an attempt is in flight: the attempt finishes, is recorded, and the process exits 0', async (t) => {
  t.timeout(TEST_TIMEOUT);
  const dbUrl = await freshDatabase(t);
  const rx = await startReceiver(t);
  rx.script({ status: 200, body: 'slow but fine', delayMs: 1_000 });
  const shutdownTimeoutMs = 10_000;
  const proc = await startProcess(t, {
    DATABASE_URL: dbUrl,
    PORT: '0',
    HOST: '127.0.0.1',
    HOOKRELAY_SHUTDOWN_TIMEOUT_MS: String(shutdownTimeoutMs),
  });
  const accepted = await submitDirect(t, dbUrl, `${rx.url}/slow`);
  await rx.waitFor(1, 20_000);

  const signalledAt = Date.now();
  process.kill(proc.pid, 'SIGTERM');
  const exit = await proc.exited;
  const tookMs = exit.at - signalledAt;
  t.log(`exited ${tookMs} ms after SIGTERM with code ${exit.code}`);
  t.is(exit.signal, null);
  t.is(exit.code, 0, proc.stderr());
  t.true(tookMs < shutdownTimeoutMs, `${tookMs} ms`);
  // It waited for the answer (about 1 s) rather than dropping the attempt.
  t.true(tookMs >= 500, `${tookMs} ms`);

  const row = await webhookRow(dbUrl, accepted.id);
  t.is(row.status, 'delivered');
  t.is(row.attempts, 1);
  t.deepEqual(await attemptRows(dbUrl, accepted.id), [{ attempt: 1, outcome: 'success', status_code: 200, error_class: null }]);
  t.is(await openJobs(dbUrl, accepted.id), 0);
  t.is(rx.received.length, 1);
  const messages = proc.logs.map((l) => l.message);
  t.true(messages.includes('draining'));
  t.true(messages.includes('delivered'));
  t.true(messages.includes('hookrelay stopped'));
  t.true(messages.indexOf('delivered') < messages.indexOf('hookrelay stopped'));
  t.false(proc.logs.some((l) => l.level === 'error'), JSON.stringify(proc.logs.filter((l) => l.level === 'error')));
});

test.serial('SIGTERM with an attempt that outlasts the shutdown timeout: the process still exits, and the webhook is delivered later', async (t) => {
  t.timeout(TEST_TIMEOUT);
  const dbUrl = await freshDatabase(t);
  const rx = await startReceiver(t);
  rx.script({ hang: true });
  const shutdownTimeoutMs = 1_000;
  const first = await startProcess(t, {
    DATABASE_URL: dbUrl,
    HOOKRELAY_ROLES: 'worker',
    HOOKRELAY_SHUTDOWN_TIMEOUT_MS: String(shutdownTimeoutMs),
    // The attempt cannot end by its own deadline before the drain gives up.
    HOOKRELAY_DELIVERY_TIMEOUT_MS: '120000',
  });
  const accepted = await submitDirect(t, dbUrl, `${rx.url}/hang`);
  await rx.waitFor(1, 20_000);

  const signalledAt = Date.now();
  process.kill(first.pid, 'SIGTERM');
  const exit = await Promise.race([
    first.exited,
    new Promise<undefined>((r) => setTimeout(() => r(undefined), 30_000)),
  ]);
  if (!exit) return t.fail(`the process did not exit within 30 s of SIGTERM (shutdown timeout ${shutdownTimeoutMs} ms)`);
  const tookMs = exit.at - signalledAt;
  t.log(`exited ${tookMs} ms after SIGTERM with code ${exit.code}, signal ${exit.signal}`);
  // main.ts gives the drain HOOKRELAY_SHUTDOWN_TIMEOUT_MS plus 5 s of grace before exiting anyway.
  t.true(tookMs < shutdownTimeoutMs + 5_000 + 2_000, `${tookMs} ms`);
  t.deepEqual(await attemptRows(dbUrl, accepted.id), []);

  await startProcess(t, { DATABASE_URL: dbUrl, HOOKRELAY_ROLES: 'worker' });
  const got = await rx.waitFor(2, REDELIVERY_WITHIN_MS);
  t.log(`redelivered ${got[1]!.at - exit.at} ms after the first process exited`);
  const row = await settled(dbUrl, accepted.id, 10_000);
  t.is(row.status, 'delivered');
  t.is(got[1]!.headers['webhook-id'], accepted.id);
  t.deepEqual(await attemptRows(dbUrl, accepted.id), [{ attempt: 1, outcome: 'success', status_code: 200, error_class: null }]);
});
