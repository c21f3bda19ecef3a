import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { PgBoss } from 'pg-boss';
import { createApp, type AppDeps } from './api/app.ts';
import { withTimeout } from './api/health.ts';
import { createAuthenticator, ensureAdminToken, grantAdminScope } from './api/tokens.ts';
import { ConfigError, loadConfig, type Config } from './config.ts';
import { createDb, type DbHandle } from './db/database.ts';
import { startEmbeddedPostgres, type EmbeddedPostgres } from './db/embedded.ts';
import { migrate } from './db/migrate.ts';
import { loadKeyring } from './endpoints/master-key.ts';
import { KeyringError } from './endpoints/keyring.ts';
import { DELIVERY_QUEUE, startQueue } from './delivery/queue.ts';
import { startStatisticsKeeper } from './db/statistics.ts';
import { createSender, type Sender } from './delivery/send.ts';
import { startWorker, type Worker } from './delivery/worker.ts';
import { createLogger, type Logger } from './log.ts';
import { createMetrics } from './observability/metrics.ts';

/**
 * The composition root: config → log → database (embedded when DATABASE_URL is unset) →
 * migrations → queue → API and/or worker. Everything is built here and nowhere else.
 */

export interface Service {
  /** The port the API listens on (useful with PORT=0), or undefined without the api role. */
  port: number | undefined;
  connectionString: string;
  db: DbHandle;
  boss: PgBoss;
  /** Drains: stops accepting requests, lets in-flight deliveries finish, closes everything. */
  stop(): Promise<void>;
}

/** Resolves the database to use: DATABASE_URL, or an embedded server under HOOKRELAY_DATA_DIR. */
export async function openDatabase(config: Config, log: Logger): Promise<{ connectionString: string; embedded?: EmbeddedPostgres }> {
  if (config.databaseUrl) return { connectionString: config.databaseUrl };
  const embedded = await startEmbeddedPostgres({ dataDir: config.dataDir, log, ...(config.embeddedPort ? { port: config.embeddedPort } : {}) });
  return { connectionString: embedded.connectionString, embedded };
}

export interface ServiceOptions {
  /** Sees every API answer (the tests validate each against openapi.yaml). */
  onResponse?: AppDeps['onResponse'];
}

export async function startService(config: Config, log: Logger, options: ServiceOptions = {}): Promise<Service> {
  const { connectionString, embedded } = await openDatabase(config, log);
  const cleanups: (() => Promise<unknown>)[] = [];
  if (embedded) cleanups.push(() => embedded.stop());
  try {
    // The keyring first: a missing master key stops the start before anything is written.
    const keyring = await loadKeyring(config, log, Boolean(embedded));
    await migrate(connectionString, log);
    const db = createDb(connectionString, { max: config.dbPoolMax, acquireTimeoutMs: config.dbAcquireTimeoutMs, prepared: config.dbPreparedStatements });
    cleanups.push(() => db.close());
    // One registry per service (GET /metrics), shared by its API and worker.
    const metrics = createMetrics({ db: db.db, pool: db.pool, log });
    const adminId = config.adminToken ? await ensureAdminToken(db.db, config.adminToken) : undefined;
    // HOOKRELAY_ADMIN_TOKEN has the admin scope (the authenticator grants it too; this makes
    // `token list` say so).
    if (adminId) await grantAdminScope(db.db, adminId);

    const boss = await startQueue(connectionString, config, log);
    cleanups.push(() => boss.stop({ graceful: true, timeout: config.shutdownTimeoutMs, close: true }));
    // Plans that read the batch, not the backlog, from the first burst on.
    const statistics = startStatisticsKeeper(db.db, log, { queue: DELIVERY_QUEUE });
    cleanups.push(() => statistics.stop());

    let worker: Worker | undefined;
    let sender: Sender | undefined;
    if (config.roles.includes('worker')) {
      if (config.tlsInsecure) log.warn('HOOKRELAY_TLS_INSECURE=true: receivers\' TLS certificates are NOT verified; use this only for testing');
      // As many sockets per origin as attempts one endpoint may have in flight: none waits for a socket.
      sender = createSender({ allowNetworks: config.allowNetworks, insecureTls: config.tlsInsecure, connections: config.endpointConcurrency });
      const s = sender;
      cleanups.push(() => s.close());
      worker = await startWorker({ db: db.db, boss, sender, keyring, log, config, health: config.health, metrics });
      const w = worker;
      cleanups.push(() => w.stop(config.shutdownTimeoutMs));
    }

    let draining = false;
    let port: number | undefined;
    const appDeps: AppDeps = {
      db: db.db,
      boss,
      keyring,
      config,
      log,
      auth: createAuthenticator(db.db, adminId && config.adminToken ? { token: config.adminToken, id: adminId } : undefined),
      onSubmitted: worker ? worker.wake : undefined,
      onResponse: options.onResponse,
      metrics,
      readiness: async () => ({
        // Bounded: a server that accepts connections but never answers must not hang /readyz.
        database: await withTimeout(db.db.selectNoFrom((eb) => eb.lit(1).as('one')).execute(), config.dbAcquireTimeoutMs + 1_000)
          .then(() => 'ok', (err: Error) => `unreachable: ${err.message}`),
        queue: draining ? 'draining' : 'ok',
      }),
    };
    if (config.roles.includes('api')) {
      port = await listen(createApp(appDeps), config.port, config.host, cleanups);
      log.info('api listening', { host: config.host, port });
    } else if (config.workerPort !== undefined) {
      // A worker's own counters (attempts, deliveries, their durations) exist only in its
      // registry: without this a Prometheus could not see them, nor an orchestrator its health.
      const workerPort = await listen(createApp({ ...appDeps, operations: WORKER_OPERATIONS }), config.workerPort, config.host, cleanups);
      log.info('worker probes listening', { host: config.host, port: workerPort });
    }
    log.info('hookrelay started', { roles: config.roles, embedded: Boolean(embedded), node: process.version, execArgv: process.execArgv });

    let stopping: Promise<void> | undefined;
    return {
      port,
      connectionString,
      db,
      boss,
      stop() {
        stopping ??= (async () => {
          draining = true;
          // Reverse order of start: API first (no new work), then workers drain, then the
          // queue, the pools and the embedded server.
          for (const cleanup of cleanups.reverse()) {
            await cleanup().catch((err: unknown) => log.error('error while stopping', { err }));
          }
          log.info('hookrelay stopped');
        })();
        return stopping;
      },
    };
  } catch (err) {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
    throw err;
  }
}

/** What a process without the api role answers on HOOKRELAY_WORKER_PORT. */
const WORKER_OPERATIONS: ReadonlySet<string> = new Set(['getHealthz', 'getReadyz', 'getMetrics']);

/** Serves `app` on host:port until the cleanups run; resolves to the port bound (PORT=0 picks one). */
async function listen(app: ReturnType<typeof createApp>, portWanted: number, host: string, cleanups: (() => Promise<unknown>)[]): Promise<number> {
  // Node checks the two timeouts below only every connectionsCheckingInterval (30 s by
  // default), which would let a slow client hold a socket for up to 40 s.
  const server = createServer({ connectionsCheckingInterval: 1_000 }, app.callback());
  // Slow or idle clients cannot hold sockets for long.
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(portWanted, host, () => resolve());
  });
  cleanups.push(() => new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeIdleConnections();
  }));
  return (server.address() as AddressInfo).port;
}

/** Runs the service until SIGTERM or SIGINT, then drains within HOOKRELAY_SHUTDOWN_TIMEOUT_MS. */
export async function serve(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`hookrelay: ${err.message}`);
      process.exit(2);
    }
    throw err;
  }
  const log = createLogger({ level: config.logLevel });
  let service: Service;
  try {
    service = await startService(config, log);
  } catch (err) {
    if (err instanceof ConfigError || err instanceof KeyringError) {
      console.error(`hookrelay: ${err.message}`);
      process.exit(2);
    }
    log.error('hookrelay failed to start', { err });
    process.exit(1);
  }
  let signals = 0;
  const onSignal = (signal: string) => {
    signals += 1;
    if (signals > 1) {
      log.warn('second signal: exiting without waiting', { signal });
      process.exit(1);
    }
    log.info('draining', { signal });
    const timer = setTimeout(() => {
      log.error('drain took longer than HOOKRELAY_SHUTDOWN_TIMEOUT_MS; exiting');
      process.exit(1);
    }, config.shutdownTimeoutMs + 5_000);
    timer.unref();
    service.stop().then(() => process.exit(0), () => process.exit(1));
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
}

if (import.meta.main) await serve();
