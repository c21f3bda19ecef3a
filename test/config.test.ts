import { readFileSync } from 'node:fs';
import test from 'ava';
import { ConfigError, loadConfig, RETRY_LIMITS, SETTINGS } from '../src/config.ts';

/** loadConfig is pure over the env object it is given: no process.env, no database. */

const setting = (env: string) => SETTINGS.find((s) => s.env === env)?.default;

test('loadConfig({}) gives the documented defaults', (t) => {
  const config = loadConfig({});
  t.deepEqual(config, {
    port: 8080,
    host: '0.0.0.0',
    databaseUrl: undefined,
    dataDir: './.hookrelay',
    embeddedPort: undefined,
    workerPort: undefined,
    adminToken: undefined,
    masterKey: undefined,
    previousMasterKeys: [],
    logLevel: 'info',
    roles: ['api', 'worker'],
    maxPayloadBytes: 262144,
    deliveryTimeoutMs: 15000,
    maxResponseBytes: 65536,
    retry: { maxAttempts: 33, baseDelayMs: 30000, maxDelayMs: 3600000, backoffFactor: 2 },
    workerBatchSize: 100,
    workerConcurrency: 4,
    workerPreparedFetch: true,
    dbPreparedStatements: false,
    endpointConcurrency: 64,
    queueHeartbeatSeconds: 10,
    queueSuperviseSeconds: 2,
    dbPoolMax: 10,
    dbAcquireTimeoutMs: 5000,
    shutdownTimeoutMs: 30000,
    health: {
      failureThreshold: 5,
      failureRate: 0.5,
      minRequests: 20,
      windowMs: 300_000,
      cooldownMs: 30_000,
      maxCooldownMs: 3_600_000,
      disableAfterMs: 432_000_000,
    },
    allowNetworks: [],
    tlsInsecure: false,
    metricsPublic: false,
    rateLimit: { perSecond: 200, burst: 400 },
  });
});

test('the defaults are the ones SETTINGS documents', (t) => {
  const config = loadConfig({});
  const byEnv: Record<string, unknown> = {
    PORT: config.port,
    HOST: config.host,
    DATABASE_URL: config.databaseUrl,
    HOOKRELAY_DATA_DIR: config.dataDir,
    HOOKRELAY_EMBEDDED_PORT: config.embeddedPort,
    HOOKRELAY_ADMIN_TOKEN: config.adminToken,
    LOG_LEVEL: config.logLevel,
    HOOKRELAY_ROLES: config.roles.join(','),
    HOOKRELAY_MAX_PAYLOAD_BYTES: config.maxPayloadBytes,
    HOOKRELAY_DELIVERY_TIMEOUT_MS: config.deliveryTimeoutMs,
    HOOKRELAY_MAX_RESPONSE_BYTES: config.maxResponseBytes,
    HOOKRELAY_RETRY_MAX_ATTEMPTS: config.retry.maxAttempts,
    HOOKRELAY_RETRY_BASE_DELAY_MS: config.retry.baseDelayMs,
    HOOKRELAY_RETRY_MAX_DELAY_MS: config.retry.maxDelayMs,
    HOOKRELAY_RETRY_BACKOFF_FACTOR: config.retry.backoffFactor,
    HOOKRELAY_WORKER_BATCH_SIZE: config.workerBatchSize,
    HOOKRELAY_WORKER_CONCURRENCY: config.workerConcurrency,
    HOOKRELAY_WORKER_PREPARED_FETCH: config.workerPreparedFetch,
    HOOKRELAY_DB_PREPARED_STATEMENTS: config.dbPreparedStatements,
    HOOKRELAY_ENDPOINT_CONCURRENCY: config.endpointConcurrency,
    HOOKRELAY_QUEUE_HEARTBEAT_SECONDS: config.queueHeartbeatSeconds,
    HOOKRELAY_QUEUE_SUPERVISE_SECONDS: config.queueSuperviseSeconds,
    HOOKRELAY_DB_POOL_MAX: config.dbPoolMax,
    HOOKRELAY_DB_ACQUIRE_TIMEOUT_MS: config.dbAcquireTimeoutMs,
    HOOKRELAY_SHUTDOWN_TIMEOUT_MS: config.shutdownTimeoutMs,
    HOOKRELAY_MASTER_KEY: config.masterKey,
    HOOKRELAY_PREVIOUS_MASTER_KEYS: config.previousMasterKeys.length === 0 ? undefined : config.previousMasterKeys.join(','),
    HOOKRELAY_TLS_INSECURE: config.tlsInsecure,
    HOOKRELAY_METRICS_PUBLIC: config.metricsPublic,
    HOOKRELAY_CIRCUIT_FAILURE_THRESHOLD: config.health.failureThreshold,
    HOOKRELAY_CIRCUIT_FAILURE_RATE: config.health.failureRate,
    HOOKRELAY_CIRCUIT_MIN_REQUESTS: config.health.minRequests,
    HOOKRELAY_CIRCUIT_WINDOW_SECONDS: config.health.windowMs / 1000,
    HOOKRELAY_CIRCUIT_COOLDOWN_MS: config.health.cooldownMs,
    HOOKRELAY_CIRCUIT_MAX_COOLDOWN_MS: config.health.maxCooldownMs,
    HOOKRELAY_DISABLE_AFTER_SECONDS: config.health.disableAfterMs / 1000,
    HOOKRELAY_ALLOW_NETWORKS: config.allowNetworks.length === 0 ? undefined : config.allowNetworks.map((c) => c.text).join(','),
    HOOKRELAY_RATE_LIMIT_PER_SECOND: config.rateLimit.perSecond,
    HOOKRELAY_RATE_LIMIT_BURST: config.rateLimit.burst,
    HOOKRELAY_WORKER_PORT: config.workerPort,
  };
  // Every documented setting is covered here, and no other.
  t.deepEqual(Object.keys(byEnv).sort(), SETTINGS.map((s) => s.env).sort());
  for (const s of SETTINGS) {
    const value = byEnv[s.env];
    t.is(value === undefined ? undefined : String(value), s.default, s.env);
  }
});

test('the README settings table lists every setting with its default', (t) => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  for (const s of SETTINGS) {
    t.true(readme.includes(`| \`${s.env}\` | ${s.default === undefined ? '(unset)' : `\`${s.default}\``} |`), s.env);
  }
});

test('SETTINGS env names are unique and every one has a doc', (t) => {
  const names = SETTINGS.map((s) => s.env);
  t.is(new Set(names).size, names.length);
  for (const s of SETTINGS) t.true(s.doc.length > 0, s.env);
});

test('values from the environment are parsed, trimmed, and blank means default', (t) => {
  const config = loadConfig({
    PORT: ' 0 ',
    HOST: '127.0.0.1',
    DATABASE_URL: 'postgresql://u@h:5432/db',
    HOOKRELAY_EMBEDDED_PORT: '5433',
    HOOKRELAY_WORKER_PORT: ' 9090 ',
    HOOKRELAY_ADMIN_TOKEN: 'a'.repeat(16),
    LOG_LEVEL: 'debug',
    HOOKRELAY_ROLES: 'worker, worker',
    HOOKRELAY_RETRY_BACKOFF_FACTOR: '1.5',
    HOOKRELAY_RETRY_BASE_DELAY_MS: '100',
    HOOKRELAY_RETRY_MAX_DELAY_MS: '100',
    HOOKRELAY_SHUTDOWN_TIMEOUT_MS: '   ',
  });
  t.is(config.port, 0);
  t.is(config.host, '127.0.0.1');
  t.is(config.databaseUrl, 'postgresql://u@h:5432/db');
  t.is(config.embeddedPort, 5433);
  t.is(config.workerPort, 9090);
  t.is(config.adminToken, 'a'.repeat(16));
  t.is(config.logLevel, 'debug');
  t.deepEqual(config.roles, ['worker']);
  t.is(config.retry.backoffFactor, 1.5);
  t.is(config.retry.baseDelayMs, 100);
  t.is(config.retry.maxDelayMs, 100);
  t.is(config.shutdownTimeoutMs, Number(setting('HOOKRELAY_SHUTDOWN_TIMEOUT_MS')));
});

test('the returned config is frozen, its retry policy and roles too', (t) => {
  const config = loadConfig({});
  t.true(Object.isFrozen(config));
  t.true(Object.isFrozen(config.retry));
  t.true(Object.isFrozen(config.roles));
  t.throws(() => {
    (config as { port: number }).port = 1;
  }, { instanceOf: TypeError });
  t.is(config.port, 8080);
  t.true(Object.isFrozen(SETTINGS));
  t.true(Object.isFrozen(RETRY_LIMITS));
});

const BAD: Array<[string, Record<string, string>, string]> = [
  ['non-numeric port', { PORT: 'abc' }, 'PORT'],
  ['negative port', { PORT: '-1' }, 'PORT'],
  ['port out of range', { PORT: '65536' }, 'PORT'],
  ['fractional port', { PORT: '80.5' }, 'PORT'],
  ['hex port', { PORT: '0x50' }, 'PORT'],
  ['port with exponent', { PORT: '8e3' }, 'PORT'],
  ['embedded port 0', { HOOKRELAY_EMBEDDED_PORT: '0' }, 'HOOKRELAY_EMBEDDED_PORT'],
  ['embedded port text', { HOOKRELAY_EMBEDDED_PORT: 'five' }, 'HOOKRELAY_EMBEDDED_PORT'],
  ['worker port out of range', { HOOKRELAY_WORKER_PORT: '65536' }, 'HOOKRELAY_WORKER_PORT'],
  ['worker port text', { HOOKRELAY_WORKER_PORT: 'metrics' }, 'HOOKRELAY_WORKER_PORT'],
  ['DATABASE_URL of another scheme', { DATABASE_URL: 'mysql://root@localhost/db' }, 'DATABASE_URL'],
  ['DATABASE_URL not a URL', { DATABASE_URL: 'localhost:5432' }, 'DATABASE_URL'],
  ['short admin token', { HOOKRELAY_ADMIN_TOKEN: 'short' }, 'HOOKRELAY_ADMIN_TOKEN'],
  ['admin token of 15 characters', { HOOKRELAY_ADMIN_TOKEN: 'a'.repeat(15) }, 'HOOKRELAY_ADMIN_TOKEN'],
  ['too long admin token', { HOOKRELAY_ADMIN_TOKEN: 'a'.repeat(513) }, 'HOOKRELAY_ADMIN_TOKEN'],
  ['admin token with a space', { HOOKRELAY_ADMIN_TOKEN: 'aaaaaaaa aaaaaaaa' }, 'HOOKRELAY_ADMIN_TOKEN'],
  ['bad LOG_LEVEL', { LOG_LEVEL: 'verbose' }, 'LOG_LEVEL'],
  ['upper-case LOG_LEVEL', { LOG_LEVEL: 'INFO' }, 'LOG_LEVEL'],
  ['unknown role', { HOOKRELAY_ROLES: 'api,scheduler' }, 'HOOKRELAY_ROLES'],
  ['only commas as roles', { HOOKRELAY_ROLES: ',,' }, 'HOOKRELAY_ROLES'],
  ['max attempts 0', { HOOKRELAY_RETRY_MAX_ATTEMPTS: '0' }, 'HOOKRELAY_RETRY_MAX_ATTEMPTS'],
  ['max attempts 101', { HOOKRELAY_RETRY_MAX_ATTEMPTS: '101' }, 'HOOKRELAY_RETRY_MAX_ATTEMPTS'],
  ['base delay under 100 ms', { HOOKRELAY_RETRY_BASE_DELAY_MS: '99' }, 'HOOKRELAY_RETRY_BASE_DELAY_MS'],
  ['max delay over 7 days', { HOOKRELAY_RETRY_MAX_DELAY_MS: String(7 * 24 * 3600 * 1000 + 1) }, 'HOOKRELAY_RETRY_MAX_DELAY_MS'],
  ['backoff factor under 1', { HOOKRELAY_RETRY_BACKOFF_FACTOR: '0.5' }, 'HOOKRELAY_RETRY_BACKOFF_FACTOR'],
  ['backoff factor over 10', { HOOKRELAY_RETRY_BACKOFF_FACTOR: '10.5' }, 'HOOKRELAY_RETRY_BACKOFF_FACTOR'],
  ['backoff factor text', { HOOKRELAY_RETRY_BACKOFF_FACTOR: 'two' }, 'HOOKRELAY_RETRY_BACKOFF_FACTOR'],
  ['max delay below base delay', { HOOKRELAY_RETRY_BASE_DELAY_MS: '10000', HOOKRELAY_RETRY_MAX_DELAY_MS: '5000' }, 'HOOKRELAY_RETRY_MAX_DELAY_MS'],
  ['default max delay below a large base delay', { HOOKRELAY_RETRY_BASE_DELAY_MS: String(2 * 3600 * 1000) }, 'HOOKRELAY_RETRY_MAX_DELAY_MS'],
  ['payload limit under 1 KiB', { HOOKRELAY_MAX_PAYLOAD_BYTES: '1023' }, 'HOOKRELAY_MAX_PAYLOAD_BYTES'],
  ['delivery timeout under 100 ms', { HOOKRELAY_DELIVERY_TIMEOUT_MS: '99' }, 'HOOKRELAY_DELIVERY_TIMEOUT_MS'],
  ['response limit under 1 KiB', { HOOKRELAY_MAX_RESPONSE_BYTES: '10' }, 'HOOKRELAY_MAX_RESPONSE_BYTES'],
  ['batch size 0', { HOOKRELAY_WORKER_BATCH_SIZE: '0' }, 'HOOKRELAY_WORKER_BATCH_SIZE'],
  ['concurrency 65', { HOOKRELAY_WORKER_CONCURRENCY: '65' }, 'HOOKRELAY_WORKER_CONCURRENCY'],
  ['prepared fetch neither true nor false', { HOOKRELAY_WORKER_PREPARED_FETCH: 'yes' }, 'HOOKRELAY_WORKER_PREPARED_FETCH'],
  ['upper-case prepared fetch', { HOOKRELAY_WORKER_PREPARED_FETCH: 'FALSE' }, 'HOOKRELAY_WORKER_PREPARED_FETCH'],
  ['prepared statements neither true nor false', { HOOKRELAY_DB_PREPARED_STATEMENTS: '0' }, 'HOOKRELAY_DB_PREPARED_STATEMENTS'],
  ['TLS insecure as 1', { HOOKRELAY_TLS_INSECURE: '1' }, 'HOOKRELAY_TLS_INSECURE'],
  ['metrics public as on', { HOOKRELAY_METRICS_PUBLIC: 'on' }, 'HOOKRELAY_METRICS_PUBLIC'],
  ['heartbeat under 10 s', { HOOKRELAY_QUEUE_HEARTBEAT_SECONDS: '9' }, 'HOOKRELAY_QUEUE_HEARTBEAT_SECONDS'],
  ['supervise 0 s', { HOOKRELAY_QUEUE_SUPERVISE_SECONDS: '0' }, 'HOOKRELAY_QUEUE_SUPERVISE_SECONDS'],
  ['pool of 1', { HOOKRELAY_DB_POOL_MAX: '1' }, 'HOOKRELAY_DB_POOL_MAX'],
  ['acquire timeout under 100 ms', { HOOKRELAY_DB_ACQUIRE_TIMEOUT_MS: '99' }, 'HOOKRELAY_DB_ACQUIRE_TIMEOUT_MS'],
  ['negative shutdown timeout', { HOOKRELAY_SHUTDOWN_TIMEOUT_MS: '-5' }, 'HOOKRELAY_SHUTDOWN_TIMEOUT_MS'],
  ['allow list entry not a network', { HOOKRELAY_ALLOW_NETWORKS: '10.0.0.0/8,intranet' }, 'HOOKRELAY_ALLOW_NETWORKS'],
  ['allow list prefix too long', { HOOKRELAY_ALLOW_NETWORKS: '10.0.0.0/33' }, 'HOOKRELAY_ALLOW_NETWORKS'],
  ['allow list IPv6 prefix too long', { HOOKRELAY_ALLOW_NETWORKS: 'fd00::/129' }, 'HOOKRELAY_ALLOW_NETWORKS'],
  ['allow list shortened IPv4', { HOOKRELAY_ALLOW_NETWORKS: '127.1/8' }, 'HOOKRELAY_ALLOW_NETWORKS'],
];

for (const [what, env, name] of BAD) {
  test(`bad setting: ${what} → ConfigError naming ${name}`, (t) => {
    const err = t.throws(() => loadConfig(env), { instanceOf: ConfigError });
    t.is(err?.name, 'ConfigError');
    t.true(err?.message.includes(name), err?.message);
  });
}

test('the boundaries of the ranges are accepted', (t) => {
  const low = loadConfig({
    PORT: '0',
    HOOKRELAY_RETRY_MAX_ATTEMPTS: String(RETRY_LIMITS.maxAttempts.min),
    HOOKRELAY_RETRY_BASE_DELAY_MS: String(RETRY_LIMITS.baseDelayMs.min),
    HOOKRELAY_RETRY_MAX_DELAY_MS: String(RETRY_LIMITS.maxDelayMs.min),
    HOOKRELAY_RETRY_BACKOFF_FACTOR: String(RETRY_LIMITS.backoffFactor.min),
    HOOKRELAY_QUEUE_HEARTBEAT_SECONDS: '10',
    HOOKRELAY_QUEUE_SUPERVISE_SECONDS: '1',
    HOOKRELAY_DB_POOL_MAX: '2',
    HOOKRELAY_SHUTDOWN_TIMEOUT_MS: '0',
    HOOKRELAY_ADMIN_TOKEN: 'x'.repeat(16),
  });
  t.is(low.retry.maxAttempts, 1);
  t.is(loadConfig({ HOOKRELAY_WORKER_PORT: '0' }).workerPort, 0);
  t.is(low.shutdownTimeoutMs, 0);
  const high = loadConfig({
    PORT: '65535',
    HOOKRELAY_RETRY_MAX_ATTEMPTS: String(RETRY_LIMITS.maxAttempts.max),
    HOOKRELAY_RETRY_BASE_DELAY_MS: String(RETRY_LIMITS.baseDelayMs.max),
    HOOKRELAY_RETRY_MAX_DELAY_MS: String(RETRY_LIMITS.maxDelayMs.max),
    HOOKRELAY_RETRY_BACKOFF_FACTOR: String(RETRY_LIMITS.backoffFactor.max),
    HOOKRELAY_ADMIN_TOKEN: 'x'.repeat(512),
  });
  t.is(high.port, 65535);
  t.is(high.retry.maxAttempts, 100);
  t.is(high.retry.backoffFactor, 10);
});

test('loadConfig does not read process.env when given an env object', (t) => {
  const before = process.env.PORT;
  process.env.PORT = 'not-a-port';
  try {
    t.is(loadConfig({}).port, 8080);
  } finally {
    if (before === undefined) delete process.env.PORT;
    else process.env.PORT = before;
  }
});
