/**
 * bench:queue-latency — commit → attempt start at a steady 500 webhooks/s, and the CPU the
 * service spends on it; against pg-boss send() → work() on the same PostgreSQL in the same run.
 *
 *   npm run bench:queue-latency -- [--rate 500] [--duration 10000] [--warmup 1000] [--endpoints 10] [--split]
 *
 * The service (`node src/main.ts`, api and worker), the receiver (answers 200 at once) and the
 * open-loop load generator are separate processes. A webhook's queue latency is measured
 * from the moment its 202 reaches the load generator (after COMMIT) to the moment its first
 * request reaches the receiver (after the attempt started), wall clocks of one machine; the
 * ledger's own view (attempts.started_at − webhooks.created_at) is reported beside it.
 * Targets: p99 < 10 ms; service CPU < 70 % on average. The CPU is measured over the window the
 * latencies are (from the end of the warm-up to the last answer); `cpuWithWarmup` is the same
 * from the load's start, when the service's code is still being compiled. With --split the API
 * and the worker run as two processes (CPU is their sum, RSS the larger of the two).
 */

import { BENCH_DIR, BENCH_TOKEN, freshDatabase, machine, numArg, parseArgs, postgresCpu, processCpuMs, ratio, report, round, runChild, scalar, serviceLoopLateness, serviceSettingsFromEnv, startChild, startReceiver, startService, summarize, until } from './lib.ts';
import pg from 'pg';

const args = parseArgs();
const rate = numArg(args, 'rate', 500);
const durationMs = numArg(args, 'duration', 10_000);
const warmupMs = numArg(args, 'warmup', 1_000);
const endpoints = numArg(args, 'endpoints', 10);
/** --split: the API and the worker in two processes (`--role api`, `--role worker`), woken across them by NOTIFY. */
const split = args.split === true;

const db = await freshDatabase();
try {
  const receiver = await startReceiver(0);
  const settings = serviceSettingsFromEnv();
  const service = await startService(db.url, split ? { ...settings, HOOKRELAY_ROLES: 'api' } : settings);
  // Started after the API, which has migrated the database and created the queue by then.
  const worker = split ? await startService(db.url, { ...settings, HOOKRELAY_ROLES: 'worker' }) : undefined;
  if (worker) await new Promise((r) => setTimeout(r, 2_000));
  let result;
  try {
    // The CPU is measured over the window the latencies are (after the warm-up, to the last
    // answer), as steady-state CPU at the rate; the figure with the warm-up is kept beside it.
    const services = [service, ...(worker ? [worker] : [])];
    const pids = services.map((s) => s.child.pid);
    const cpuNow = () => pids.reduce((sum, pid) => sum + (processCpuMs(pid) ?? 0), 0);
    // PostgreSQL's CPU over the same window, when the server is a local process we can read.
    const postgres = await postgresCpu(db.url);
    type Mark = { at: number; cpuMs: number; postgresMs?: number | undefined };
    const loadStarted: Mark = { at: performance.now(), cpuMs: cpuNow() };
    const loadChild = startChild(`${BENCH_DIR}load.ts`, [
      '--service', service.url, '--token', BENCH_TOKEN, '--receiver', receiver.url, '--mode', 'rate', '--rate', String(rate),
      '--duration', String(durationMs), '--warmup', String(warmupMs), '--endpoints', String(endpoints), '--connections', '64', '--record',
    ]);
    let load;
    let warm: Mark;
    try {
      await loadChild.line('warm', 120_000);
      warm = { at: performance.now(), cpuMs: cpuNow(), postgresMs: postgres?.cpuMs() };
      // Starts the window of the service's own event-loop lateness (each scrape resets it).
      await Promise.all(services.map((s) => serviceLoopLateness(s.url)));
      load = (await loadChild.line('result', 600_000)).result;
    } finally {
      await loadChild.stop(2_000);
    }
    const end: Mark = { at: performance.now(), cpuMs: cpuNow(), postgresMs: postgres?.cpuMs() };
    const [apiLate, workerLate] = await Promise.all(services.map((s) => serviceLoopLateness(s.url)));
    const cpuOver = (from: Mark, webhooks: number) => {
      const percent = (100 * (end.cpuMs - from.cpuMs)) / Math.max(1, end.at - from.at);
      // CPU time per webhook (accepted and delivered): unlike a percentage it does not depend
      // on whether the machine let the service keep up with the rate.
      const msPerWebhook = (end.cpuMs - from.cpuMs) / Math.max(1, webhooks);
      return { percentOfOneCore: round(percent, 1), percentOfMachine: round(percent / 2, 1), msPerWebhook: round(msPerWebhook, 3), percentOfOneCoreAtRate: round((msPerWebhook * rate) / 10, 1) };
    };
    const cpu = {
      ...cpuOver(warm, load.latencyMs.count),
      // The server's CPU per webhook over the same window (all of its processes; null when it
      // is not a local process): what the statements of a webhook cost on the other side.
      postgresMsPerWebhook: warm.postgresMs !== undefined && end.postgresMs !== undefined ? round((end.postgresMs - warm.postgresMs) / Math.max(1, load.latencyMs.count), 3) : null,
    };
    const cpuWithWarmup = cpuOver(loadStarted, load.accepted);
    const recorded = load.recorded as Array<[string, number]>;
    await until(async () => (await receiver.stats()).distinctIds >= load.accepted, 30_000);
    // The receiver hears of an attempt before its recording commits: wait for the ledger too.
    await until(async () => Number(await scalar(db.url, 'SELECT count(*) FROM hookrelay.attempts WHERE attempt = 1')) >= load.accepted, 30_000);
    const arrivals = await receiver.arrivals();
    const receiverStats = await receiver.stats();
    const latencies = recorded.flatMap(([id, at]) => (arrivals[id] !== undefined ? [arrivals[id] - at] : []));
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    const { rows } = await client.query<{ ms: number }>(
      `SELECT extract(epoch FROM a.started_at - w.created_at) * 1000 AS ms
         FROM hookrelay.attempts a JOIN hookrelay.webhooks w ON w.id = a.webhook_id
        WHERE a.attempt = 1 AND w.id = ANY($1)`, [recorded.map(([id]) => id)]);
    await client.end();
    result = {
      submitted: { perSecond: load.perSecond, accepted: load.accepted, latencyMs: load.latencyMs, errors: load.errors },
      latencyMs: summarize(latencies),
      ledgerLatencyMs: summarize(rows.map((r) => Number(r.ms))),
      missing: recorded.length - latencies.length,
      // The measurement's own error: each end is timed when its process's event loop reads the
      // message, so a late load generator shortens the figures and a late receiver lengthens
      // them. A negative latency (the request reached the receiver "before" its 202 reached the
      // load generator) says the load generator was late by at least that much.
      measurement: {
        negativeLatencies: latencies.filter((ms) => ms < 0).length,
        loadGeneratorEventLoopDelayMs: load.eventLoopDelayMs,
        receiverEventLoopDelayMs: receiverStats.eventLoopDelayMs,
      },
      // How late the service's own event loop ran over the measured window (from its /metrics):
      // a commit's wake-up, the fetch's answer and the request wait that long for their turn.
      serviceEventLoopDelayMs: worker ? { api: apiLate, worker: workerLate } : apiLate,
      cpu,
      cpuWithWarmup,
      peakRssMb: Math.max(service.sampler.peakRssMb(), worker?.sampler.peakRssMb() ?? 0),
    };
  } finally {
    await worker?.stop();
    await service.stop();
    await receiver.stop();
  }
  const raw = await runChild(`${BENCH_DIR}raw.ts`, ['queue-latency', '--db', db.url, '--rate', String(rate), '--duration', String(durationMs), '--warmup', String(warmupMs)]);
  report({
    bench: 'queue-latency',
    machine: machine(db.postgresVersion),
    rate,
    layout: split ? 'two processes: api, worker' : 'one process: api and worker',
    target: { p99Ms: 10, cpuPercent: 70, rssMb: 500 },
    hookrelay: result,
    raw,
    ratio: { p50: ratio(result.latencyMs.p50, raw.latencyMs.p50), p99: ratio(result.latencyMs.p99, raw.latencyMs.p99) },
    targetMet: { p99: result.latencyMs.p99 < 10, cpu: result.cpu.percentOfOneCore < 70, rss: result.peakRssMb < 500 },
  });
} finally {
  await db.drop();
}
