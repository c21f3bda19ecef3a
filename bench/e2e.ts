/**
 * bench:e2e — end-to-end deliveries per second with a receiver that answers 200 at once,
 * against pg-boss no-op fetch/complete of a backlog of the same size on the same PostgreSQL.
 *
 *   npm run bench:e2e -- [--count 10000] [--endpoints 50] [--timeout 120000]
 *
 * A backlog of `count` webhooks is written first (bench/lib.ts preload: the submission code
 * of the API, without HTTP), then the service starts with both roles (`node src/main.ts`, worker settings from its environment:
 * HOOKRELAY_WORKER_BATCH_SIZE and the like pass through) and delivers it to bench/receiver.ts.
 * Deliveries/s is counted by the receiver from its first request to its last; the ledger's
 * figure (webhooks delivered, from the first attempt to the last delivered_at) is beside it.
 * Target: >= 5,000 deliveries/s; RSS < 500 MB.
 */

import { BENCH_DIR, freshDatabase, machine, numArg, parseArgs, postgresCpu, preload, processCpuMs, ratio, report, round, runChild, scalar, serviceSettingsFromEnv, startReceiver, startService, until } from './lib.ts';

const args = parseArgs();
const count = numArg(args, 'count', 10_000);
const endpoints = numArg(args, 'endpoints', 50);
const timeoutMs = numArg(args, 'timeout', 120_000);
const passThrough = serviceSettingsFromEnv();

const db = await freshDatabase();
try {
  const receiver = await startReceiver(0);
  let hookrelay;
  try {
    const ingest = await preload(db.url, receiver.url, count, endpoints);
    const postgres = await postgresCpu(db.url);
    const started = performance.now();
    const service = await startService(db.url, passThrough);
    try {
      // CPU from the service's start to the last webhook recorded: its own (start-up included),
      // PostgreSQL's (this benchmark's few polling queries included) and the receiver's.
      const cpuAtStart = { postgres: postgres?.cpuMs(), receiver: processCpuMs(receiver.child.pid) };
      const allReceived = await until(async () => (await receiver.stats()).distinctIds >= count, timeoutMs, 50);
      const receivedSeconds = (performance.now() - started) / 1000;
      const allRecorded = await until(async () => Number(await scalar(db.url, `SELECT count(*) FROM hookrelay.webhooks WHERE status = 'delivered'`)) >= count, allReceived ? 30_000 : 1, 100);
      const spent = (now: number | undefined, then: number | undefined) => (now === undefined || then === undefined ? null : round((now - then) / count, 3));
      const cpuMsPerDelivery = {
        service: spent(processCpuMs(service.child.pid), 0),
        postgres: spent(postgres?.cpuMs(), cpuAtStart.postgres),
        receiver: spent(processCpuMs(receiver.child.pid), cpuAtStart.receiver),
      };
      const stats = await receiver.stats();
      const ledger = await scalar<{ n: string; seconds: number }>(db.url, `SELECT json_build_object('n', count(*) FILTER (WHERE w.status = 'delivered'), 'seconds', extract(epoch FROM max(w.delivered_at) - (SELECT min(started_at) FROM hookrelay.attempts))) FROM hookrelay.webhooks w`);
      const receiverSeconds = stats.firstAt !== null && stats.lastAt !== null ? (stats.lastAt - stats.firstAt) / 1000 : Number.NaN;
      hookrelay = {
        ingest,
        delivered: Number(ledger.n),
        requestsReceived: stats.count,
        duplicates: stats.count - stats.distinctIds,
        allDelivered: allReceived && allRecorded,
        perSecond: round((stats.distinctIds - 1) / receiverSeconds, 0),
        ledgerPerSecond: round(Number(ledger.n) / Number(ledger.seconds), 0),
        secondsFromServiceStart: round(receivedSeconds, 2),
        peakRssMb: service.sampler.peakRssMb(),
        cpuMsPerDelivery,
        worker: passThrough,
      };
    } finally {
      await service.stop();
    }
  } finally {
    await receiver.stop();
  }
  const raw = await runChild(`${BENCH_DIR}raw.ts`, ['drain', '--db', db.url, '--count', String(count)]);
  report({
    bench: 'e2e',
    machine: machine(db.postgresVersion),
    count,
    endpoints,
    target: { perSecond: 5_000, rssMb: 500 },
    hookrelay,
    raw,
    ratio: { throughput: ratio(hookrelay.perSecond, raw.perSecond) },
    targetMet: { throughput: hookrelay.perSecond >= 5_000, rss: hookrelay.peakRssMb < 500, allDelivered: hookrelay.allDelivered },
  });
} finally {
  await db.drop();
}
