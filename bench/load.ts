/**
 * The load generator, in a process of its own: POST /api/v1/webhooks/deliver over undici
 * keep-alive connections, either closed-loop (`--connections` callers, each sending its next
 * request when the last is answered), open-loop at a fixed `--rate`, or exactly `--count`
 * submissions. Prints {"result": {...}} with throughput and latency of the 202s.
 *
 *   node bench/load.ts --service URL --token T --receiver URL [--mode concurrency|rate|count]
 *     [--connections 64] [--rate 500] [--count 1000] [--duration 5000] [--warmup 1000]
 *     [--endpoints 1] [--record]
 *
 * --endpoints spreads the webhooks over that many receiver paths (one endpoint each);
 * --record adds [webhookId, answeredAtWallMs] pairs for queue-latency measurements.
 */

import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Pool } from 'undici';
import { loopLateness, numArg, parseArgs, round, summarize, wallMs } from './lib.ts';

const args = parseArgs();
const service = String(args.service);
const token = String(args.token);
const receiver = String(args.receiver);
const mode = String(args.mode ?? 'concurrency');
const connections = numArg(args, 'connections', 64);
const durationMs = numArg(args, 'duration', 5_000);
const warmupMs = numArg(args, 'warmup', mode === 'count' ? 0 : 1_000);
const endpoints = Math.max(1, numArg(args, 'endpoints', 1));
const record = args.record === true;

const pool = new Pool(service, { connections, pipelining: 1, keepAliveTimeout: 30_000 });
// How late this process's event loop ran: a 202 is timed when the loop reads it, so a late
// loop makes the queue latency measured from that time look shorter than it was.
const loopDelay = monitorEventLoopDelay({ resolution: 10 });
loopDelay.enable();
const headers = { 'content-type': 'application/json', authorization: `Bearer ${token}` };

let seq = 0;
const latencies: number[] = [];
const statuses: Record<string, number> = {};
const recorded: Array<[string, number]> = [];
let errors = 0;
let measuredFrom = 0;
let firstError: string | undefined;

async function one(): Promise<void> {
  const i = seq++;
  const body = JSON.stringify({ url: `${receiver}/e/${i % endpoints}`, payload: { i, event: 'bench.submitted', data: { order: `o_${i}`, total: 4200 } } });
  const started = performance.now();
  try {
    const res = await pool.request({ method: 'POST', path: '/api/v1/webhooks/deliver', headers, body });
    const text = await res.body.text();
    const done = performance.now();
    statuses[res.statusCode] = (statuses[res.statusCode] ?? 0) + 1;
    if (res.statusCode !== 202) {
      firstError ??= `${res.statusCode} ${text.slice(0, 300)}`;
      return;
    }
    if (started >= measuredFrom) latencies.push(done - started);
    if (record && started >= measuredFrom) recorded.push([(JSON.parse(text) as { id: string }).id, wallMs()]);
  } catch (err) {
    errors += 1;
    firstError ??= String(err);
  }
}

const t0 = performance.now();
// This process's CPU from its first request to its last answer (warm-up included).
const cpuAtStart = process.cpuUsage();
measuredFrom = t0 + warmupMs;
// Told to the parent as the measured window opens, so it can measure other processes over it.
setTimeout(() => process.stdout.write('{"warm":true}\n'), mode === 'count' ? 0 : warmupMs);
if (mode === 'concurrency') {
  const end = t0 + warmupMs + durationMs;
  await Promise.all(Array.from({ length: connections }, async () => {
    while (performance.now() < end) await one();
  }));
} else if (mode === 'rate') {
  const rate = numArg(args, 'rate', 500);
  const total = Math.round((rate * (warmupMs + durationMs)) / 1000);
  const pending: Promise<void>[] = [];
  let sent = 0;
  // Open loop: requests go out on schedule whether or not earlier ones were answered.
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      const due = Math.min(total, Math.floor(((performance.now() - t0) * rate) / 1000) + 1);
      while (sent < due) {
        pending.push(one());
        sent += 1;
      }
      if (sent >= total) {
        clearInterval(timer);
        resolve();
      }
    }, 1);
  });
  await Promise.all(pending);
} else if (mode === 'count') {
  const count = numArg(args, 'count', 1_000);
  let left = count;
  await Promise.all(Array.from({ length: connections }, async () => {
    while (left > 0) {
      left -= 1;
      await one();
    }
  }));
} else {
  throw new Error(`unknown --mode ${mode}`);
}
const elapsedMs = performance.now() - (mode === 'count' ? t0 : measuredFrom);
const cpu = process.cpuUsage(cpuAtStart);
await pool.close();

process.stdout.write(`${JSON.stringify({
  result: {
    mode,
    connections,
    accepted: statuses['202'] ?? 0,
    statuses,
    errors,
    firstError: firstError ?? null,
    measuredMs: round(elapsedMs, 0),
    perSecond: round((latencies.length * 1000) / Math.max(1, elapsedMs), 0),
    latencyMs: summarize(latencies),
    cpuMs: round((cpu.user + cpu.system) / 1000, 0),
    eventLoopDelayMs: loopLateness(loopDelay),
    ...(record ? { recorded } : {}),
  },
})}\n`);
