/**
 * Every setting hookrelay reads, parsed once at start into a frozen, typed object.
 * A bad value stops the process with a message naming the variable; nothing else in the
 * code reads `process.env`. The README's settings table lists exactly these keys.
 */

import type { HealthSettings } from './endpoints/health.ts';
import { parseAllowList, type AllowList } from './delivery/address-policy.ts';

export interface RetryPolicy {
  /** Attempts in all, the first one included. */
  maxAttempts: number;
  /** Delay before the second attempt, in milliseconds. */
  baseDelayMs: number;
  /** Upper bound of any one delay, in milliseconds. */
  maxDelayMs: number;
  /** Each further delay is the previous one times this factor. */
  backoffFactor: number;
}

export type Role = 'api' | 'worker';

export interface Config {
  port: number;
  host: string;
  databaseUrl: string | undefined;
  dataDir: string;
  embeddedPort: number | undefined;
  adminToken: string | undefined;
  /** Base64 of 32 bytes; undefined means: generate one into the data directory (embedded only). */
  masterKey: string | undefined;
  previousMasterKeys: readonly string[];
  logLevel: string;
  roles: readonly Role[];
  maxPayloadBytes: number;
  deliveryTimeoutMs: number;
  maxResponseBytes: number;
  retry: RetryPolicy;
  workerBatchSize: number;
  workerConcurrency: number;
  /** The worker's fetch statement is prepared under a name (HOOKRELAY_WORKER_PREPARED_FETCH). */
  workerPreparedFetch: boolean;
  /** Hot statements on hookrelay's own pool run as named prepared statements (HOOKRELAY_DB_PREPARED_STATEMENTS). */
  dbPreparedStatements: boolean;
  /** Attempts in flight per endpoint per process (HOOKRELAY_ENDPOINT_CONCURRENCY). */
  endpointConcurrency: number;
  queueHeartbeatSeconds: number;
  queueSuperviseSeconds: number;
  dbPoolMax: number;
  /** Longest wait for a pooled database connection (HOOKRELAY_DB_ACQUIRE_TIMEOUT_MS). */
  dbAcquireTimeoutMs: number;
  shutdownTimeoutMs: number;
  health: HealthSettings;
  /** Deliveries accept TLS certificates that do not verify (HOOKRELAY_TLS_INSECURE). */
  tlsInsecure: boolean;
  /** Where a process without the api role serves its probes and metrics (HOOKRELAY_WORKER_PORT); unset: nowhere. */
  workerPort: number | undefined;
  /** GET /metrics needs no token (HOOKRELAY_METRICS_PUBLIC). */
  metricsPublic: boolean;
  /** Networks deliveries may reach although they are not public (HOOKRELAY_ALLOW_NETWORKS). */
  allowNetworks: AllowList;
  /** Default per-token rate limit of the API, per process (tokens may have their own). */
  rateLimit: { perSecond: number; burst: number };
}

/** Limits of the retry policy a request may ask for; the OpenAPI document states the same. */
export const RETRY_LIMITS = Object.freeze({
  maxAttempts: { min: 1, max: 100 },
  baseDelayMs: { min: 100, max: 7 * 24 * 3600 * 1000 },
  maxDelayMs: { min: 100, max: 7 * 24 * 3600 * 1000 },
  backoffFactor: { min: 1, max: 10 },
});

interface Setting {
  env: string;
  default: string | undefined;
  unit: string;
  doc: string;
}

/** The documented settings, in the order the README lists them. */
export const SETTINGS: readonly Setting[] = Object.freeze([
  { env: 'PORT', default: '8080', unit: 'TCP port', doc: 'Port the HTTP API listens on.' },
  { env: 'HOST', default: '0.0.0.0', unit: 'address', doc: 'Address the HTTP API binds to.' },
  { env: 'HOOKRELAY_WORKER_PORT', default: undefined, unit: 'TCP port', doc: 'Port on which a process without the api role (`--role worker`) answers `GET /healthz`, `/readyz` and `/metrics`, and nothing else, on HOST. Unset: such a process does not listen.' },
  { env: 'DATABASE_URL', default: undefined, unit: 'URL', doc: 'PostgreSQL connection string. Unset: an embedded PostgreSQL is started under HOOKRELAY_DATA_DIR.' },
  { env: 'HOOKRELAY_DATA_DIR', default: './.hookrelay', unit: 'path', doc: 'Where the embedded PostgreSQL keeps its data (only used when DATABASE_URL is unset).' },
  { env: 'HOOKRELAY_EMBEDDED_PORT', default: undefined, unit: 'TCP port', doc: 'Port of the embedded PostgreSQL. Unset: a free port is chosen at each start.' },
  { env: 'HOOKRELAY_ADMIN_TOKEN', default: undefined, unit: 'string, 16-512 chars', doc: 'An API token accepted in addition to those made with `hookrelay token create`, with the `admin` scope; stored hashed at start.' },
  { env: 'HOOKRELAY_MASTER_KEY', default: undefined, unit: 'base64, 32 bytes', doc: 'Key that encrypts signing secrets at rest (AES-256-GCM). Required with DATABASE_URL; with the embedded database one is generated once into HOOKRELAY_DATA_DIR/master.key.' },
  { env: 'HOOKRELAY_PREVIOUS_MASTER_KEYS', default: undefined, unit: 'list of base64', doc: 'Former master keys still accepted for decrypting, while `hookrelay keys rewrap` re-encrypts everything under HOOKRELAY_MASTER_KEY.' },
  { env: 'LOG_LEVEL', default: 'info', unit: 'error|warn|info|debug', doc: 'Least severe level written to the JSON log on stdout.' },
  { env: 'HOOKRELAY_ROLES', default: 'api,worker', unit: 'list', doc: 'What this process runs: `api`, `worker`, or both. Scale out by running more processes against one database.' },
  { env: 'HOOKRELAY_MAX_PAYLOAD_BYTES', default: '262144', unit: 'bytes', doc: 'Largest accepted webhook payload (serialized JSON); larger ones get 413.' },
  { env: 'HOOKRELAY_DELIVERY_TIMEOUT_MS', default: '15000', unit: 'ms', doc: 'Deadline for a whole delivery attempt: connect, request, response headers and body.' },
  { env: 'HOOKRELAY_TLS_INSECURE', default: 'false', unit: 'true|false', doc: 'Accept receivers\' TLS certificates without verifying them. For testing against self-signed receivers only; logged as a warning at start.' },
  { env: 'HOOKRELAY_ALLOW_NETWORKS', default: undefined, unit: 'list of CIDRs', doc: 'Networks deliveries may reach although they are not public (e.g. `10.0.0.0/8,fd00::/8`). Unset: public unicast addresses only. Cloud metadata addresses stay refused.' },
  { env: 'HOOKRELAY_MAX_RESPONSE_BYTES', default: '65536', unit: 'bytes', doc: 'At most this much of a receiver\'s response body is read; the rest is discarded.' },
  { env: 'HOOKRELAY_RETRY_MAX_ATTEMPTS', default: '33', unit: 'count', doc: 'Default attempts per webhook, the first included (1-100).' },
  { env: 'HOOKRELAY_RETRY_BASE_DELAY_MS', default: '30000', unit: 'ms', doc: 'Default delay before the second attempt (>= 100).' },
  { env: 'HOOKRELAY_RETRY_MAX_DELAY_MS', default: '3600000', unit: 'ms', doc: 'Default upper bound of one delay (<= 7 days).' },
  { env: 'HOOKRELAY_RETRY_BACKOFF_FACTOR', default: '2', unit: 'factor', doc: 'Default growth of each delay over the previous one (1-10).' },
  { env: 'HOOKRELAY_CIRCUIT_FAILURE_THRESHOLD', default: '5', unit: 'attempts', doc: 'Consecutive failed attempts that open an endpoint\'s circuit.' },
  { env: 'HOOKRELAY_CIRCUIT_FAILURE_RATE', default: '0.5', unit: 'fraction', doc: 'Failure rate over the window that opens the circuit (with at least HOOKRELAY_CIRCUIT_MIN_REQUESTS attempts).' },
  { env: 'HOOKRELAY_CIRCUIT_MIN_REQUESTS', default: '20', unit: 'attempts', doc: 'Attempts the window needs before its failure rate counts.' },
  { env: 'HOOKRELAY_CIRCUIT_WINDOW_SECONDS', default: '300', unit: 's', doc: 'Length of the failure-rate window.' },
  { env: 'HOOKRELAY_CIRCUIT_COOLDOWN_MS', default: '30000', unit: 'ms', doc: 'Wait before the first probe of an open circuit; doubles each time a probe fails.' },
  { env: 'HOOKRELAY_CIRCUIT_MAX_COOLDOWN_MS', default: '3600000', unit: 'ms', doc: 'Longest wait between probes of an open circuit.' },
  { env: 'HOOKRELAY_DISABLE_AFTER_SECONDS', default: '432000', unit: 's', doc: 'An endpoint failing without a single success for this long is disabled (5 days); its webhooks are held.' },
  { env: 'HOOKRELAY_WORKER_BATCH_SIZE', default: '100', unit: 'jobs', doc: 'Jobs a worker fetches at once (FOR UPDATE SKIP LOCKED).' },
  { env: 'HOOKRELAY_WORKER_CONCURRENCY', default: '4', unit: 'fetch loops', doc: 'Fetch loops per process; in-flight deliveries are at most batch size times this.' },
  { env: 'HOOKRELAY_WORKER_PREPARED_FETCH', default: 'true', unit: 'true|false', doc: 'The worker\'s fetch statement is a named prepared statement, planned once per connection (the queue\'s connections are set to plan_cache_mode = force_generic_plan when a fetch first takes them). Set false behind a pooler in transaction mode, where a prepared statement or a session setting does not stay with one connection.' },
  { env: 'HOOKRELAY_ENDPOINT_CONCURRENCY', default: '64', unit: 'attempts', doc: 'Most attempts in flight to one endpoint at once, over all workers (its jobs are grouped by endpoint), so one slow endpoint cannot take every slot; the rest of its webhooks wait in the queue. Also the connections per origin of each worker.' },
  { env: 'HOOKRELAY_QUEUE_HEARTBEAT_SECONDS', default: '10', unit: 's (>= 10)', doc: 'A job whose worker stops heart-beating for this long (a killed process) is handed to another worker.' },
  { env: 'HOOKRELAY_QUEUE_SUPERVISE_SECONDS', default: '2', unit: 's', doc: 'How often lost jobs (missed heartbeats, expiry) are looked for.' },
  { env: 'HOOKRELAY_DB_POOL_MAX', default: '10', unit: 'connections', doc: 'Connections in hookrelay\'s own pool (the queue keeps a pool of the same size).' },
  { env: 'HOOKRELAY_DB_PREPARED_STATEMENTS', default: 'false', unit: 'true|false', doc: 'Named prepared statements on hookrelay\'s own pool for the statements it runs most with one text (a lone submission\'s endpoint read and insert, the recording of attempts): PostgreSQL plans each once per connection instead of at every run. At 500 webhooks/s this cut PostgreSQL\'s CPU per webhook by a tenth and raised the service\'s by about as much (its batches shrink when PostgreSQL answers sooner): worth it when several instances share one PostgreSQL and its CPU is the limit. Needs prepared statements that stay with a connection: not behind a pooler in transaction mode unless it keeps them (PgBouncer 1.21 and later with max_prepared_statements).' },
  { env: 'HOOKRELAY_DB_ACQUIRE_TIMEOUT_MS', default: '5000', unit: 'ms', doc: 'Longest wait for a database connection, free in the pool or new. Past it the API answers 503 `database_unavailable` with Retry-After (PostgreSQL down or the pool exhausted) instead of holding the request.' },
  { env: 'HOOKRELAY_RATE_LIMIT_PER_SECOND', default: '200', unit: 'requests/s', doc: 'Default API requests per second per token, refilling its bucket; per API instance (buckets live in each process\'s memory). A token\'s own limit (`token create --rate`) replaces it.' },
  { env: 'HOOKRELAY_RATE_LIMIT_BURST', default: '400', unit: 'requests', doc: 'Default bucket size per token: requests it may make at once before being limited to the rate. Over the limit: 429 with Retry-After.' },
  { env: 'HOOKRELAY_METRICS_PUBLIC', default: 'false', unit: 'true|false', doc: 'Serve `GET /metrics` without a token (for a Prometheus on a trusted network). Otherwise it needs a token with the `admin` scope.' },
  { env: 'HOOKRELAY_SHUTDOWN_TIMEOUT_MS', default: '30000', unit: 'ms', doc: 'On SIGTERM/SIGINT, how long in-flight deliveries may finish before the process exits anyway.' },
]);

export class ConfigError extends Error {
  override name = 'ConfigError';
}

function raw(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const value = env[name];
  if (value !== undefined && value.trim() !== '') return value.trim();
  return SETTINGS.find((s) => s.env === name)?.default;
}

function int(env: NodeJS.ProcessEnv, name: string, min: number, max: number): number {
  const text = raw(env, name);
  const value = Number(text);
  if (text === undefined || !/^\d+$/.test(text) || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new ConfigError(`${name} must be a whole number from ${min} to ${max} (got ${JSON.stringify(text)})`);
  }
  return value;
}

function optionalInt(env: NodeJS.ProcessEnv, name: string, min: number, max: number): number | undefined {
  return raw(env, name) === undefined ? undefined : int(env, name, min, max);
}

/** true or false, nothing else (the default from SETTINGS when unset). */
function bool(env: NodeJS.ProcessEnv, name: string): boolean {
  const text = raw(env, name);
  if (text !== 'true' && text !== 'false') throw new ConfigError(`${name} must be true or false (got ${JSON.stringify(text)})`);
  return text === 'true';
}

function num(env: NodeJS.ProcessEnv, name: string, min: number, max: number): number {
  const text = raw(env, name);
  const value = Number(text);
  if (text === undefined || !/^\d+(\.\d+)?$/.test(text) || value < min || value > max) {
    throw new ConfigError(`${name} must be a number from ${min} to ${max} (got ${JSON.stringify(text)})`);
  }
  return value;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const databaseUrl = raw(env, 'DATABASE_URL');
  if (databaseUrl !== undefined && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    throw new ConfigError('DATABASE_URL must be a postgres:// or postgresql:// URL');
  }
  const adminToken = raw(env, 'HOOKRELAY_ADMIN_TOKEN');
  if (adminToken !== undefined && (adminToken.length < 16 || adminToken.length > 512 || /\s/.test(adminToken))) {
    throw new ConfigError('HOOKRELAY_ADMIN_TOKEN must be 16 to 512 characters without white space');
  }
  const masterKey = raw(env, 'HOOKRELAY_MASTER_KEY');
  const previousMasterKeys = (raw(env, 'HOOKRELAY_PREVIOUS_MASTER_KEYS') ?? '').split(',').map((k) => k.trim()).filter(Boolean);
  for (const [name, value] of [['HOOKRELAY_MASTER_KEY', masterKey], ...previousMasterKeys.map((k) => ['HOOKRELAY_PREVIOUS_MASTER_KEYS', k])] as const) {
    if (value === undefined) continue;
    const bytes = Buffer.from(value, 'base64');
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(value) || bytes.length !== 32) {
      throw new ConfigError(`${name} must be the base64 of exactly 32 bytes (e.g. from \`openssl rand -base64 32\`)`);
    }
  }
  const logLevel = raw(env, 'LOG_LEVEL') ?? 'info';
  if (!['error', 'warn', 'info', 'debug'].includes(logLevel)) {
    throw new ConfigError(`LOG_LEVEL must be one of error, warn, info, debug (got ${JSON.stringify(logLevel)})`);
  }
  const roleList = (raw(env, 'HOOKRELAY_ROLES') ?? '').split(',').map((r) => r.trim()).filter(Boolean);
  if (roleList.length === 0 || roleList.some((r) => r !== 'api' && r !== 'worker')) {
    throw new ConfigError(`HOOKRELAY_ROLES must list api, worker or both (got ${JSON.stringify(raw(env, 'HOOKRELAY_ROLES'))})`);
  }
  const L = RETRY_LIMITS;
  const retry: RetryPolicy = {
    maxAttempts: int(env, 'HOOKRELAY_RETRY_MAX_ATTEMPTS', L.maxAttempts.min, L.maxAttempts.max),
    baseDelayMs: int(env, 'HOOKRELAY_RETRY_BASE_DELAY_MS', L.baseDelayMs.min, L.baseDelayMs.max),
    maxDelayMs: int(env, 'HOOKRELAY_RETRY_MAX_DELAY_MS', L.maxDelayMs.min, L.maxDelayMs.max),
    backoffFactor: num(env, 'HOOKRELAY_RETRY_BACKOFF_FACTOR', L.backoffFactor.min, L.backoffFactor.max),
  };
  if (retry.maxDelayMs < retry.baseDelayMs) {
    throw new ConfigError('HOOKRELAY_RETRY_MAX_DELAY_MS must not be less than HOOKRELAY_RETRY_BASE_DELAY_MS');
  }
  let allowNetworks: AllowList;
  try {
    allowNetworks = parseAllowList(raw(env, 'HOOKRELAY_ALLOW_NETWORKS'));
  } catch (err) {
    throw new ConfigError(`HOOKRELAY_ALLOW_NETWORKS must be a comma-separated list of CIDRs: ${(err as Error).message}`);
  }
  return Object.freeze({
    port: int(env, 'PORT', 0, 65535),
    host: raw(env, 'HOST') ?? '0.0.0.0',
    databaseUrl,
    dataDir: raw(env, 'HOOKRELAY_DATA_DIR') ?? './.hookrelay',
    embeddedPort: optionalInt(env, 'HOOKRELAY_EMBEDDED_PORT', 1, 65535),
    workerPort: optionalInt(env, 'HOOKRELAY_WORKER_PORT', 0, 65535),
    adminToken,
    masterKey,
    previousMasterKeys: Object.freeze(previousMasterKeys),
    logLevel,
    roles: Object.freeze([...new Set(roleList)] as Role[]),
    maxPayloadBytes: int(env, 'HOOKRELAY_MAX_PAYLOAD_BYTES', 1024, 64 * 1024 * 1024),
    deliveryTimeoutMs: int(env, 'HOOKRELAY_DELIVERY_TIMEOUT_MS', 100, 300_000),
    maxResponseBytes: int(env, 'HOOKRELAY_MAX_RESPONSE_BYTES', 1024, 16 * 1024 * 1024),
    retry: Object.freeze(retry),
    workerBatchSize: int(env, 'HOOKRELAY_WORKER_BATCH_SIZE', 1, 1000),
    workerConcurrency: int(env, 'HOOKRELAY_WORKER_CONCURRENCY', 1, 64),
    workerPreparedFetch: bool(env, 'HOOKRELAY_WORKER_PREPARED_FETCH'),
    endpointConcurrency: int(env, 'HOOKRELAY_ENDPOINT_CONCURRENCY', 1, 100_000),
    queueHeartbeatSeconds: int(env, 'HOOKRELAY_QUEUE_HEARTBEAT_SECONDS', 10, 3600),
    queueSuperviseSeconds: int(env, 'HOOKRELAY_QUEUE_SUPERVISE_SECONDS', 1, 3600),
    dbPoolMax: int(env, 'HOOKRELAY_DB_POOL_MAX', 2, 1000),
    dbPreparedStatements: bool(env, 'HOOKRELAY_DB_PREPARED_STATEMENTS'),
    dbAcquireTimeoutMs: int(env, 'HOOKRELAY_DB_ACQUIRE_TIMEOUT_MS', 100, 600_000),
    shutdownTimeoutMs: int(env, 'HOOKRELAY_SHUTDOWN_TIMEOUT_MS', 0, 3_600_000),
    health: Object.freeze({
      failureThreshold: int(env, 'HOOKRELAY_CIRCUIT_FAILURE_THRESHOLD', 1, 10_000),
      failureRate: num(env, 'HOOKRELAY_CIRCUIT_FAILURE_RATE', 0.01, 1),
      minRequests: int(env, 'HOOKRELAY_CIRCUIT_MIN_REQUESTS', 1, 1_000_000),
      windowMs: int(env, 'HOOKRELAY_CIRCUIT_WINDOW_SECONDS', 1, 86_400) * 1000,
      cooldownMs: int(env, 'HOOKRELAY_CIRCUIT_COOLDOWN_MS', 100, 86_400_000),
      maxCooldownMs: int(env, 'HOOKRELAY_CIRCUIT_MAX_COOLDOWN_MS', 100, 86_400_000),
      disableAfterMs: int(env, 'HOOKRELAY_DISABLE_AFTER_SECONDS', 1, 365 * 86_400) * 1000,
    }),
    allowNetworks,
    tlsInsecure: bool(env, 'HOOKRELAY_TLS_INSECURE'),
    metricsPublic: bool(env, 'HOOKRELAY_METRICS_PUBLIC'),
    rateLimit: Object.freeze({
      perSecond: int(env, 'HOOKRELAY_RATE_LIMIT_PER_SECOND', 1, 1_000_000),
      burst: int(env, 'HOOKRELAY_RATE_LIMIT_BURST', 1, 1_000_000),
    }),
  });
}
