/**
 * The raw baselines, each in a process of its own, so every benchmark can state its figure as
 * a ratio to what the same machine does without hookrelay in the way:
 *
 *   node bench/raw.ts insert  --db URL [--connections 64] [--duration 5000] [--warmup 1000]
 *       single-row INSERT transactions (a row shaped like a webhook), closed loop
 *   node bench/raw.ts queue-latency --db URL [--rate 500] [--duration 10000] [--warmup 1000]
 *       pg-boss send() (one transaction each, notify queue) → work() handler start
 *   node bench/raw.ts drain --db URL [--count 20000] [--groups N] [--no-analyze]
 *       pg-boss no-op fetch/complete of a backlog (batch 200, 4 loops, burst), the queue
 *       analyzed first as the service's statistics keeper analyzes it
 *   node bench/raw.ts deliver --receiver URL [--count 10000]
 *       one undici Agent sending `count` POSTs at once to the receiver
 *
 * Each prints {"result": {...}}.
 */

import { randomBytes, randomUUID } from 'node:crypto';
import pg from 'pg';
import { PgBoss } from 'pg-boss';
import { Agent, request } from 'undici';
import { numArg, parseArgs, postgresCpu, round, summarize, wallMs } from './lib.ts';

const [command] = process.argv.slice(2);
const args = parseArgs(process.argv.slice(3));
const out = (result: unknown) => process.stdout.write(`${JSON.stringify({ result })}\n`);
/** Connections a baseline may hold: the server's max_connections is shared with everything else. */
const MAX_DB_CONNECTIONS = 16;

async function insert(): Promise<void> {
  const callers = numArg(args, 'connections', 64);
  const durationMs = numArg(args, 'duration', 5_000);
  const warmupMs = numArg(args, 'warmup', 1_000);
  const pool = new pg.Pool({ connectionString: String(args.db), max: Math.min(callers, MAX_DB_CONNECTIONS) });
  await pool.query(`CREATE TABLE IF NOT EXISTS bench_raw_webhooks (
    id text PRIMARY KEY, endpoint_id text NOT NULL, url text NOT NULL, body text NOT NULL, headers jsonb NOT NULL,
    status text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())`);
  const latencies: number[] = [];
  const t0 = performance.now();
  const from = t0 + warmupMs;
  const end = from + durationMs;
  let i = 0;
  await Promise.all(Array.from({ length: callers }, async () => {
    while (performance.now() < end) {
      const n = i++;
      const started = performance.now();
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        await client.query('INSERT INTO bench_raw_webhooks (id, endpoint_id, url, body, headers, status) VALUES ($1, $2, $3, $4, $5, $6)', [
          `msg_${randomBytes(12).toString('hex')}`, 'ep_bench', 'http://127.0.0.1/e/0', JSON.stringify({ i: n, event: 'bench.submitted' }), '{}', 'pending',
        ]);
        await client.query('COMMIT');
      } finally {
        client.release();
      }
      if (started >= from) latencies.push(performance.now() - started);
    }
  }));
  const elapsed = performance.now() - from;
  await pool.end();
  out({ kind: 'single-row INSERT transactions', connections: callers, poolMax: Math.min(callers, MAX_DB_CONNECTIONS), perSecond: round((latencies.length * 1000) / elapsed, 0), latencyMs: summarize(latencies) });
}

async function startBoss(db: string): Promise<PgBoss> {
  const boss = new PgBoss({ connectionString: db, schema: 'bench_raw_queue', max: MAX_DB_CONNECTIONS, useListenNotify: true, supervise: false, schedule: false });
  boss.on('error', (err) => process.stderr.write(`${String(err)}\n`));
  await boss.start();
  return boss;
}

async function queueLatency(): Promise<void> {
  const rate = numArg(args, 'rate', 500);
  const durationMs = numArg(args, 'duration', 10_000);
  const warmupMs = numArg(args, 'warmup', 1_000);
  const boss = await startBoss(String(args.db));
  await boss.createQueue('raw', { notify: true });
  const committedAt = new Map<string, number>();
  const startedAt = new Map<string, number>();
  await boss.work<{ n: number }>('raw', { batchSize: 50, localConcurrency: 2, burstWhenBatchFull: true }, async (jobs) => {
    const at = wallMs();
    for (const job of jobs) startedAt.set(job.id, at);
  });
  const total = Math.round((rate * (warmupMs + durationMs)) / 1000);
  const t0 = performance.now();
  let sent = 0;
  let failedSends = 0;
  const pending: Promise<void>[] = [];
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      const due = Math.min(total, Math.floor(((performance.now() - t0) * rate) / 1000) + 1);
      while (sent < due) {
        const id = randomUUID();
        const warm = performance.now() < t0 + warmupMs;
        // On a saturated machine the sends fall behind and some wait past the pool's connect
        // timeout: counted, not fatal, since falling behind is itself the finding.
        pending.push(boss.send('raw', { n: sent }, { id }).then(() => {
          if (!warm) committedAt.set(id, wallMs());
        }, () => {
          failedSends += 1;
        }));
        sent += 1;
      }
      if (sent >= total) {
        clearInterval(timer);
        resolve();
      }
    }, 1);
  });
  await Promise.all(pending);
  const sendSeconds = (performance.now() - t0) / 1000;
  const deadline = Date.now() + 30_000;
  while ([...committedAt.keys()].some((id) => !startedAt.has(id)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  const latencies = [...committedAt].flatMap(([id, at]) => (startedAt.has(id) ? [startedAt.get(id)! - at] : []));
  await boss.stop({ graceful: false, close: true, timeout: 2_000 });
  out({ kind: 'pg-boss send() → work() start, notify queue', rate, achievedPerSecond: round(total / sendSeconds, 0), failedSends, latencyMs: summarize(latencies), missing: committedAt.size - latencies.length });
}

async function drain(): Promise<void> {
  const count = numArg(args, 'count', 20_000);
  // --groups N: jobs spread over N groups and fetched with a per-group limit, as deliveries are.
  const groups = numArg(args, 'groups', 0);
  const groupConcurrency = numArg(args, 'group-concurrency', 64);
  const boss = await startBoss(String(args.db));
  await boss.createQueue('raw_drain');
  for (let i = 0; i < count; i += 1000) {
    const n = Math.min(1000, count - i);
    await boss.insert('raw_drain', Array.from({ length: n }, (_, k) => ({
      data: { webhookId: `msg_${i + k}`, attempt: 1 },
      ...(groups > 0 ? { group: { id: `g${(i + k) % groups}` } } : {}),
    })));
  }
  // Planned from statistics, as hookrelay's statistics keeper has them at its start: without,
  // every fetch scans and sorts the whole backlog (src/db/statistics.ts). --no-analyze skips it.
  const analyzed = args['no-analyze'] === undefined;
  const client = new pg.Client({ connectionString: String(args.db) });
  await client.connect();
  if (analyzed) {
    const { rows } = await client.query(`SELECT table_name FROM bench_raw_queue.queue WHERE name = 'raw_drain'`);
    await client.query(`ANALYZE bench_raw_queue.${rows[0].table_name}`);
  }
  let handled = 0;
  const postgres = await postgresCpu(String(args.db));
  const cpuAtStart = { own: process.cpuUsage(), postgres: postgres?.cpuMs() };
  const t0 = performance.now();
  let done!: () => void;
  const all = new Promise<void>((resolve) => (done = resolve));
  await boss.work('raw_drain', { batchSize: 200, localConcurrency: 4, burstWhenBatchFull: true, ...(groups > 0 ? { groupConcurrency } : {}) }, async (jobs) => {
    handled += jobs.length;
    if (handled >= count) setImmediate(done);
  });
  await all;
  // The last batch is completed after its handler returns: wait for the queue to say so.
  for (;;) {
    const { rows } = await client.query(`SELECT count(*)::int AS n FROM bench_raw_queue.job WHERE name = 'raw_drain' AND state = 'completed'`);
    if (rows[0].n >= count) break;
    await new Promise((r) => setTimeout(r, 10));
  }
  const elapsed = performance.now() - t0;
  const own = process.cpuUsage(cpuAtStart.own);
  const postgresMs = postgres?.cpuMs();
  await client.end();
  await boss.stop({ graceful: false, close: true, timeout: 2_000 });
  out({
    kind: `pg-boss no-op fetch/complete (batch 200, 4 loops, burst${groups > 0 ? `, ${groups} groups of at most ${groupConcurrency} active` : ''}${analyzed ? ', queue analyzed' : ''})`, count, seconds: round(elapsed / 1000, 2), perSecond: round((count * 1000) / elapsed, 0),
    cpuMsPerJob: {
      worker: round((own.user + own.system) / 1000 / count, 3),
      postgres: postgresMs === undefined || cpuAtStart.postgres === undefined ? null : round((postgresMs - cpuAtStart.postgres) / count, 3),
    },
  });
}

async function deliver(): Promise<void> {
  const count = numArg(args, 'count', 10_000);
  const receiver = String(args.receiver);
  const agent = new Agent({ keepAliveTimeout: 30_000, connections: null });
  let peakRss = 0;
  const timer = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage.rss())), 100);
  const t0 = performance.now();
  const latencies: number[] = [];
  let failed = 0;
  await Promise.all(Array.from({ length: count }, async (_, i) => {
    const started = performance.now();
    try {
      const res = await request(`${receiver}/e/${i % 200}`, {
        method: 'POST',
        dispatcher: agent,
        headers: { 'content-type': 'application/json', 'webhook-id': `raw_${i}` },
        body: JSON.stringify({ i, event: 'bench.submitted', data: { order: `o_${i}`, total: 4200 } }),
      });
      await res.body.text();
      if (res.statusCode === 200) latencies.push(performance.now() - started);
      else failed += 1;
    } catch {
      failed += 1;
    }
  }));
  const elapsed = performance.now() - t0;
  clearInterval(timer);
  peakRss = Math.max(peakRss, process.memoryUsage.rss());
  await agent.close();
  out({ kind: 'undici Agent, all requests at once', count, delivered: latencies.length, failed, seconds: round(elapsed / 1000, 2), perSecond: round((latencies.length * 1000) / elapsed, 0), latencyMs: summarize(latencies), peakRssMb: round(peakRss / 2 ** 20, 1) });
}

const commands: Record<string, () => Promise<void>> = { insert, 'queue-latency': queueLatency, drain, deliver };
const run = commands[command ?? ''];
if (!run) {
  process.stderr.write(`usage: node bench/raw.ts ${Object.keys(commands).join('|')} [options]\n`);
  process.exit(2);
}
await run();
