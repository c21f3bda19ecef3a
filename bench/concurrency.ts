/**
 * bench:concurrency — deliveries in flight at once when the receiver holds each request 2 s,
 * against one undici Agent sending the same number of requests at once to the same receiver.
 *
 *   npm run bench:concurrency -- [--count 10000] [--hold 2000] [--endpoints 200] [--timeout 120000]
 *
 * A backlog of `count` webhooks over `endpoints` receiver paths (one endpoint each, so the
 * per-endpoint limit is not what caps the figure) is written first (bench/lib.ts preload: the
 * submission code of the API, without HTTP); then the service starts with both roles and an in-flight budget of `count`
 * (HOOKRELAY_WORKER_BATCH_SIZE × HOOKRELAY_WORKER_CONCURRENCY, unless given in the environment)
 * and delivers it to bench/receiver.ts, which counts the requests it holds at once. The
 * service's RSS is sampled all along. Target: 10,000 in flight, all delivered, RSS < 500 MB.
 * The documented run uses the default count of 10,000; --count 500 is a quick check.
 */

import { SERVICE_NODE_FLAGS } from '../src/node-flags.ts';
import { BENCH_DIR, freshDatabase, machine, numArg, parseArgs, preload, ratio, report, round, runChild, sampleProcess, scalar, serviceSettingsFromEnv, startChild, startReceiver, startService, until } from './lib.ts';

const args = parseArgs();
const count = numArg(args, 'count', 10_000);
const holdMs = numArg(args, 'hold', 2_000);
const endpoints = numArg(args, 'endpoints', 200);
const timeoutMs = numArg(args, 'timeout', 120_000);

/** An in-flight budget of `count`: fetch loops of at most 1,000 jobs (pg-boss's batch ceiling here). */
const loops = Math.min(64, Math.max(1, Math.ceil(count / 1000)));
const workerEnv: Record<string, string> = {
  HOOKRELAY_WORKER_BATCH_SIZE: String(Math.ceil(count / loops)),
  HOOKRELAY_WORKER_CONCURRENCY: String(loops),
  // Every endpoint here is a path on one receiver, one origin; the setting is also the
  // connections per origin, so it must not be what caps the figure.
  HOOKRELAY_ENDPOINT_CONCURRENCY: String(Math.max(64, count)),
  // The deadline is not what is measured: on a busy 2-core machine 10,000 requests take
  // seconds just to be written, and an attempt that times out would wait for its retry
  // (30 s by default) and stretch the run. One minute lets every attempt run its course.
  HOOKRELAY_DELIVERY_TIMEOUT_MS: String(Math.max(60_000, holdMs * 10)),
  ...serviceSettingsFromEnv(),
};

const db = await freshDatabase();
try {
  const receiver = await startReceiver(holdMs);
  let hookrelay;
  let raw: Record<string, unknown> = {};
  try {
    const ingest = await preload(db.url, receiver.url, count, endpoints);
    const started = performance.now();
    const service = await startService(db.url, workerEnv);
    try {
      const allReceived = await until(async () => (await receiver.stats()).distinctIds >= count, timeoutMs, 100);
      const allRecorded = await until(async () => Number(await scalar(db.url, `SELECT count(*) FROM hookrelay.webhooks WHERE status = 'delivered'`)) >= count, allReceived ? timeoutMs : 1, 200);
      const seconds = (performance.now() - started) / 1000;
      const stats = await receiver.stats();
      const delivered = Number(await scalar(db.url, `SELECT count(*) FROM hookrelay.webhooks WHERE status = 'delivered'`));
      hookrelay = {
        ingest,
        peakInFlight: stats.peakInFlight,
        delivered,
        requestsReceived: stats.count,
        duplicates: stats.count - stats.distinctIds,
        allDelivered: allReceived && allRecorded,
        secondsToAllDelivered: round(seconds, 2),
        receiverSeconds: stats.firstAt !== null && stats.lastAt !== null ? round((stats.lastAt - stats.firstAt) / 1000 + holdMs / 1000, 2) : null,
        peakRssMb: service.sampler.peakRssMb(),
        worker: workerEnv,
      };
    } finally {
      await service.stop();
    }
    await receiver.reset();
    // The baseline in its own process, its RSS sampled from here like the service's, on the
    // service's V8 settings (a young generation of the same size).
    const child = startChild(`${BENCH_DIR}raw.ts`, ['deliver', '--receiver', receiver.url, '--count', String(count)], process.env, [...SERVICE_NODE_FLAGS]);
    const sampler = sampleProcess(child.pid);
    try {
      raw = { ...(await child.line<{ result: Record<string, unknown> }>('result', timeoutMs)).result, peakInFlight: (await receiver.stats()).peakInFlight, sampledPeakRssMb: sampler.peakRssMb() };
    } finally {
      sampler.stop();
      await child.stop(2_000);
    }
  } finally {
    await receiver.stop();
  }
  report({
    bench: 'concurrency',
    machine: machine(db.postgresVersion),
    count,
    holdMs,
    endpoints,
    target: { inFlight: 10_000, rssMb: 500 },
    hookrelay,
    raw,
    ratio: {
      peakInFlight: ratio(hookrelay.peakInFlight, Number(raw.peakInFlight)),
      receiverSeconds: ratio(Number(hookrelay.receiverSeconds), Number(raw.seconds)),
      rss: ratio(hookrelay.peakRssMb, Number(raw.sampledPeakRssMb)),
    },
    targetMet: { inFlight: hookrelay.peakInFlight >= 10_000, allDelivered: hookrelay.allDelivered, rss: hookrelay.peakRssMb < 500 },
  });
} finally {
  await db.drop();
}
