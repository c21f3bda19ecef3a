import test, { type ExecutionContext } from 'ava';
import { freshDatabase, query } from '../helpers/db.ts';
import { CLI, hookrelayEnv, spawnService, type ServiceProcess as Process } from '../helpers/process.ts';
import { startReceiver, type Receiver } from '../helpers/receiver.ts';
import { eventually, TEST_MASTER_KEY } from '../helpers/service.ts';

/**
 * Scale out with real processes: `hookrelay serve --role api` and two `--role worker`
 * processes against one database. Work is shared, no webhook is delivered twice in normal
 * operation, and a worker stopped with SIGTERM finishes what it has in flight, exits 0, and
 * leaves the rest to the other worker.
 *
 * Serial: each test runs three service processes, which is plenty for a small machine.
 */

const TEST_TIMEOUT = 180_000;
const ADMIN_TOKEN = 'scale-out-test-admin-token-0123456789';
/** Small batches, so that both workers get a share of a few hundred webhooks. */
const BATCH_SIZE = 10;
const LOOPS = 2;
const GRACE_MS = 15_000;

type ServiceProcess = Process & { role: string };

/** `node src/cli.ts serve --role <role>` on the test database; SIGKILLed by pid at teardown if still running. */
async function serve(t: ExecutionContext, role: 'api' | 'worker', dbUrl: string, extra: Record<string, string> = {}): Promise<ServiceProcess> {
  const env = hookrelayEnv({
    DATABASE_URL: dbUrl,
    HOOKRELAY_MASTER_KEY: TEST_MASTER_KEY,
    HOOKRELAY_ADMIN_TOKEN: ADMIN_TOKEN,
    PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'info',
    HOOKRELAY_DB_POOL_MAX: '4',
    HOOKRELAY_QUEUE_SUPERVISE_SECONDS: '1',
    HOOKRELAY_WORKER_BATCH_SIZE: String(BATCH_SIZE),
    HOOKRELAY_WORKER_CONCURRENCY: String(LOOPS),
    HOOKRELAY_SHUTDOWN_TIMEOUT_MS: String(GRACE_MS),
    HOOKRELAY_RATE_LIMIT_PER_SECOND: '100000',
    HOOKRELAY_RATE_LIMIT_BURST: '100000',
    // The flag must win over the variable.
    HOOKRELAY_ROLES: 'api,worker',
    ...extra,
  });
  const proc: ServiceProcess = Object.assign(spawnService(t, [CLI, 'serve', '--role', role], env), { role });
  const started = await proc.waitForLog((l) => l.message === 'hookrelay started');
  t.deepEqual(started.roles, [role], `serve --role ${role} runs only that role`);
  return proc;
}

/** One API process and two workers on a fresh database (migrated first, so they start quickly). */
async function cluster(t: ExecutionContext) {
  const dbUrl = await freshDatabase(t);
  const api = await serve(t, 'api', dbUrl);
  const [a, b] = await Promise.all([serve(t, 'worker', dbUrl), serve(t, 'worker', dbUrl)]);
  t.truthy(api.port);
  t.is(a!.port, undefined, 'a worker does not listen');
  return { dbUrl, api, workers: [a!, b!] as const };
}

/** Submits `count` webhooks to the API process, 16 at a time; answers their ids. */
async function submitMany(api: ServiceProcess, receiver: Receiver, count: number): Promise<string[]> {
  const ids: string[] = [];
  let next = 0;
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (next < count) {
      const n = next++;
      const res = await fetch(`http://127.0.0.1:${api.port}/api/v1/webhooks/deliver`, {
        method: 'POST',
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ url: `${receiver.url}/hooks`, payload: { type: 'scale.test', n } }),
      });
      if (res.status !== 202) throw new Error(`submission ${n} answered ${res.status}: ${await res.text()}`);
      ids.push(((await res.json()) as { id: string }).id);
    }
  }));
  return ids;
}

function countById(receiver: Receiver): Map<string, number> {
  const counts = new Map<string, number>();
  for (const r of receiver.received) {
    const id = r.headers['webhook-id']!;
    counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  return counts;
}

async function allDelivered(dbUrl: string, ids: string[], timeoutMs: number): Promise<void> {
  await eventually(async () => {
    const [row] = await query<{ n: number }>(dbUrl, "SELECT count(*)::int AS n FROM hookrelay.webhooks WHERE status = 'delivered' AND id = ANY($1)", [ids]);
    return row!.n === ids.length ? true : undefined;
  }, timeoutMs, 250);
}

const deliveredBy = (proc: ServiceProcess) => proc.logs.filter((l) => l.message === 'delivered').length;

test.serial('two workers share a few hundred webhooks; each is delivered exactly once', async (t) => {
  t.timeout(TEST_TIMEOUT);
  const { dbUrl, api, workers } = await cluster(t);
  const receiver = await startReceiver(t);
  const ids = await submitMany(api, receiver, 300);
  t.is(new Set(ids).size, 300);

  await allDelivered(dbUrl, ids, 120_000);
  const counts = countById(receiver);
  t.is(counts.size, 300, 'the receiver saw every webhook');
  t.deepEqual(ids.filter((id) => counts.get(id) !== 1), [], 'a webhook reached the receiver more or less than once');
  t.is(receiver.received.length, 300);

  // One recorded attempt each, and the work was shared: both workers delivered, the API none.
  const [attempts] = await query<{ n: number; webhooks: number }>(dbUrl, 'SELECT count(*)::int AS n, count(DISTINCT webhook_id)::int AS webhooks FROM hookrelay.attempts');
  t.deepEqual(attempts, { n: 300, webhooks: 300 });
  const shares = workers.map(deliveredBy);
  t.log(`deliveries per worker: ${shares.join(', ')}`);
  t.is(shares[0]! + shares[1]!, 300);
  t.true(shares.every((n) => n > 0), `both workers delivered (${shares.join(', ')})`);
  t.is(deliveredBy(api), 0, 'the api process delivers nothing');
});

test.serial('SIGTERM stops a worker with deliveries in flight: it finishes them and exits 0; nothing is lost', async (t) => {
  t.timeout(TEST_TIMEOUT);
  const { dbUrl, api, workers } = await cluster(t);
  const [stopped, survivor] = workers;
  const receiver = await startReceiver(t);
  let holding = 0;
  let mostHeld = 0;
  // Every request is answered after a second, so that deliveries are in flight when SIGTERM comes.
  receiver.fallback = (_req, res) => {
    holding += 1;
    mostHeld = Math.max(mostHeld, holding);
    setTimeout(() => {
      holding -= 1;
      res.writeHead(200).end('ok');
    }, 1_000);
  };
  const ids = await submitMany(api, receiver, 150);

  // A worker holds at most BATCH_SIZE × LOOPS; with more than that held at once, both hold some.
  const perWorker = BATCH_SIZE * LOOPS;
  await eventually(async () => (holding > perWorker ? true : undefined), 60_000, 5);
  process.kill(stopped.pid, 'SIGTERM');
  const drainingAt = stopped.logs.length;
  const { code, signal } = await stopped.exited;
  t.is(signal, null);
  t.is(code, 0, 'the stopped worker exits 0 within its grace period');
  // Its attempts in flight were finished and recorded after the signal, not abandoned.
  const afterSignal = stopped.logs.slice(drainingAt);
  t.true(afterSignal.some((l) => l.message === 'draining'));
  t.true(afterSignal.filter((l) => l.message === 'delivered').length > 0, 'the stopped worker finished deliveries it had in flight');
  t.false(afterSignal.some((l) => /handing in-flight deliveries back/.test(l.message)), 'nothing needed handing back within the grace period');

  // Everything else is delivered by the other worker.
  await allDelivered(dbUrl, ids, 120_000);
  const counts = countById(receiver);
  t.deepEqual(ids.filter((id) => !counts.has(id)), [], 'every webhook reached the receiver');
  t.true(deliveredBy(survivor) > 0);
  t.is(deliveredBy(stopped) + deliveredBy(survivor), 150, 'each webhook was recorded delivered once');
  const duplicates = [...counts.values()].filter((n) => n > 1).length;
  t.log(`most requests held at once: ${mostHeld}; duplicates: ${duplicates}; delivered by the stopped worker: ${deliveredBy(stopped)}`);
  t.is(duplicates, 0, 'a drained worker leaves nothing to be sent twice');
  t.true(mostHeld <= 2 * perWorker, `no worker had more than its in-flight budget of ${perWorker} (most held at once: ${mostHeld})`);
});

test.serial('HOOKRELAY_WORKER_PORT: a worker answers its probes and /metrics there, and nothing else; its metrics count its deliveries', async (t) => {
  t.timeout(TEST_TIMEOUT);
  const dbUrl = await freshDatabase(t);
  const api = await serve(t, 'api', dbUrl);
  const worker = await serve(t, 'worker', dbUrl, { HOOKRELAY_WORKER_PORT: '0' });
  t.is(worker.port, undefined, 'no API on a worker');
  const { port } = await worker.waitForLog((l) => l.message === 'worker probes listening');
  t.true(Number.isInteger(port) && port > 0);
  const at = (path: string, init: RequestInit = {}) => fetch(`http://127.0.0.1:${port}${path}`, init);
  const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };

  t.is((await at('/healthz')).status, 200);
  const ready = await at('/readyz');
  t.is(ready.status, 200);
  t.like(await ready.json(), { status: 'ok', checks: { database: 'ok', queue: 'ok' } });
  // /metrics as on the API: a token with the admin scope, or 401.
  const anonymous = await at('/metrics');
  t.is(anonymous.status, 401);
  t.is(anonymous.headers.get('content-type'), 'application/problem+json');
  // Nothing else: the API's operations, the reference and the dashboard are not there.
  const deliver = await at('/api/v1/webhooks/deliver', {
    method: 'POST', headers: { ...admin, 'content-type': 'application/json' }, body: JSON.stringify({ url: 'http://127.0.0.1:1/x', payload: {} }),
  });
  t.is(deliver.status, 404);
  t.is(deliver.headers.get('content-type'), 'application/problem+json');
  for (const path of ['/api/v1/webhooks', '/api/v1/endpoints', '/docs', '/openapi.yaml', '/']) {
    t.is((await at(path, { headers: admin })).status, 404, path);
  }

  // Attempts are counted by the process that makes them: the worker's /metrics shows them.
  const receiver = await startReceiver(t);
  const ids = await submitMany(api, receiver, 5);
  await allDelivered(dbUrl, ids, 60_000);
  const metrics = await at('/metrics', { headers: admin });
  t.is(metrics.status, 200);
  const text = await metrics.text();
  t.regex(text, /^hookrelay_deliveries_total 5$/m);
  t.regex(text, /^hookrelay_attempts_total\{outcome="success"\} 5$/m);

  // It stops listening with the rest of the process.
  process.kill(worker.pid, 'SIGTERM');
  t.is((await worker.exited).code, 0);
  await t.throwsAsync(at('/healthz'));
});
