import { PgBoss } from 'pg-boss';
import type { Config } from '../config.ts';
import { DEFAULT_ACQUIRE_TIMEOUT_MS, isDatabaseUnavailable, QUEUE_SCHEMA } from '../db/database.ts';
import type { Logger } from '../log.ts';

/** The pg-boss queue every delivery attempt goes through: one job per attempt. */
export const DELIVERY_QUEUE = 'deliveries';

/** A job asks for attempt `attempt` of one webhook; a job for an attempt already recorded is stale. */
export interface DeliveryJob {
  webhookId: string;
  attempt: number;
}

export type QueueSettings = Pick<Config, 'deliveryTimeoutMs' | 'queueHeartbeatSeconds' | 'queueSuperviseSeconds' | 'dbPoolMax'> & Partial<Pick<Config, 'dbAcquireTimeoutMs'>>;

/** While PostgreSQL is away, how often the queue looks whether it is back (to log the recovery). */
const OUTAGE_PROBE_MS = 1_000;

/**
 * Starts pg-boss in its own schema and makes sure the delivery queue exists.
 *
 * The timings are what make a killed worker harmless within seconds: a job whose worker stops
 * heart-beating is failed by the next supervise pass and, through its job-level retry, handed
 * to another worker. Job-level retries exist only for that (our own faults and crashes); the
 * webhook's retry policy is applied by the worker, which schedules a new job per attempt.
 */
export async function startQueue(connectionString: string, settings: QueueSettings, log: Logger, options: { supervise?: boolean } = {}): Promise<PgBoss> {
  const boss = new PgBoss({
    connectionString,
    schema: QUEUE_SCHEMA,
    application_name: 'hookrelay-queue',
    max: settings.dbPoolMax,
    connectionTimeoutMillis: settings.dbAcquireTimeoutMs ?? DEFAULT_ACQUIRE_TIMEOUT_MS,
    useListenNotify: true,
    supervise: options.supervise ?? true,
    superviseIntervalSeconds: settings.queueSuperviseSeconds,
    monitorIntervalSeconds: settings.queueSuperviseSeconds,
    schedule: false,
  });
  boss.on('error', outageAwareErrors(boss, log));
  boss.on('warning', (warning) => log.warn('queue warning', { warning }));
  await boss.start();
  await boss.createQueue(DELIVERY_QUEUE, {
    notify: true,
    heartbeatSeconds: settings.queueHeartbeatSeconds,
    // Longer than any attempt can take (its deadline plus recording), so expiry only ever
    // catches a worker that hung without losing its heartbeat.
    expireInSeconds: Math.ceil(settings.deliveryTimeoutMs / 1000) + 60,
    // A job is retried this often for our own faults (a worker killed, PostgreSQL restarting);
    // receiver failures never fail a job.
    retryLimit: 1_000,
    retryDelay: 1,
    retryBackoff: true,
    retryDelayMax: 60,
    // A webhook may wait long for its next attempt (maxDelayMs is up to 7 days); its job must
    // outlive that wait by far, or pg-boss would delete a job that still carries a webhook.
    retentionSeconds: 366 * 24 * 3600,
    deleteAfterSeconds: 24 * 3600,
  });
  return boss;
}

/**
 * The queue's error listener. While PostgreSQL is unreachable every fetch loop, supervise and
 * monitor pass fails, every few seconds each: that is one state, logged once when it begins
 * and once when it ends (found by a probe every OUTAGE_PROBE_MS), not one error per failed
 * poll. pg-boss itself backs off: a failed fetch waits for the polling interval, never loops
 * hot. Other errors are logged as they come.
 */
function outageAwareErrors(boss: PgBoss, log: Logger): (err: unknown) => void {
  let down: { since: number; failures: number; probe: NodeJS.Timeout } | undefined;
  const probe = () => {
    boss.getDb().executeSql('SELECT 1').then(() => {
      if (!down) return;
      clearInterval(down.probe);
      log.warn('queue: database available again', { downMs: Date.now() - down.since, failedOperations: down.failures });
      down = undefined;
    }, (err: unknown) => {
      // Anything but the outage itself (the queue was stopped, its pool ended): stop probing.
      if (down && !isDatabaseUnavailable(err)) {
        clearInterval(down.probe);
        down = undefined;
      }
    });
  };
  return (err) => {
    if (!isDatabaseUnavailable(err)) {
      log.error('queue error', { err });
      return;
    }
    if (down) {
      down.failures += 1;
      return;
    }
    const timer = setInterval(probe, OUTAGE_PROBE_MS);
    // The probe must not keep a stopping process alive.
    timer.unref();
    down = { since: Date.now(), failures: 1, probe: timer };
    log.warn('queue: database unavailable; workers back off until it returns', { error: (err as Error)?.message });
  };
}

/** First pause of a fetch loop after a failure; it doubles up to FETCH_BACKOFF_MAX_MS. */
const FETCH_BACKOFF_MIN_MS = 500;
/** Longest pause; a local submission wakes the loops earlier, so recovery is not held up by it. */
const FETCH_BACKOFF_MAX_MS = 5_000;

export interface FetchBackoff {
  /** Records a failed fetch and returns how long to pause before the next one. */
  failed(err: unknown): number;
  /** Records a fetch that worked (logs the recovery after failures). */
  succeeded(): void;
}

/**
 * Back-off shared by a worker's fetch loops: while fetches fail (PostgreSQL away, most often)
 * the pause doubles from FETCH_BACKOFF_MIN_MS to FETCH_BACKOFF_MAX_MS, and the log gets one
 * line when the failures begin and one when fetching works again, not one per attempt.
 */
export function createFetchBackoff(log: Logger): FetchBackoff {
  let failures = 0;
  let since = 0;
  return {
    failed(err) {
      failures += 1;
      if (failures === 1) {
        since = Date.now();
        if (isDatabaseUnavailable(err)) log.warn('fetching delivery jobs failed: database unavailable; backing off until it returns', { error: (err as Error)?.message });
        else log.error('fetching delivery jobs failed; backing off and trying again', { err });
      }
      return Math.min(FETCH_BACKOFF_MIN_MS * 2 ** (failures - 1), FETCH_BACKOFF_MAX_MS);
    },
    succeeded() {
      if (failures === 0) return;
      log.warn('fetching delivery jobs works again', { failedFetches: failures, downMs: Date.now() - since });
      failures = 0;
    },
  };
}
