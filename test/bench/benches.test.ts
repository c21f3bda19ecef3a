import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { lineChart } from '../../bench/chart.ts';
import { percentile, summarize } from '../../bench/lib.ts';
import { freshDatabase, query, serverUrl } from '../helpers/db.ts';
import { ROOT, run } from '../helpers/process.ts';

/**
 * The benchmarks in a tiny configuration, so that they cannot rot: each runs to its end as
 * `npm run bench:<name>` would, prints one JSON object, and its figures have the right shape
 * and sane values. No thresholds on the figures: speed is the benchmarks' own business, on a
 * machine the tests do not control.
 */

async function bench(t: ExecutionContext, name: string, args: string[]): Promise<any> {
  const result = await run(t, process.execPath, [join(ROOT, 'bench', `${name}.ts`), ...args], {
    env: { ...process.env, DATABASE_URL: serverUrl() },
    timeoutMs: 110_000,
  });
  if (result.code !== 0) throw new Error(`bench ${name} exited ${result.code ?? result.signal}: ${result.stderr.slice(-3000)}`);
  return JSON.parse(result.stdout);
}

const isLatency = (l: any) => l.count > 0 && l.p50 >= 0 && l.p50 <= l.p95 && l.p95 <= l.p99 && l.p99 <= l.max;
/**
 * A latency between two processes' clocks (the load generator's, the receiver's): a late load
 * generator makes some negative (the bench counts them), so only their order is checked.
 */
const isOrderedLatency = (l: any) => l.count > 0 && l.p50 <= l.p95 && l.p95 <= l.p99 && l.p99 <= l.max;
/** The service's event-loop lateness, read from its /metrics. */
const isLoopDelay = (d: any) => d !== null && d.p50 >= 0 && d.p50 <= d.p90 && d.p90 <= d.p99 && d.p99 <= d.max;

test('percentiles are nearest-rank over the values', (t) => {
  const values = Array.from({ length: 100 }, (_, i) => i + 1);
  t.is(percentile(values, 50), 50);
  t.is(percentile(values, 95), 95);
  t.is(percentile(values, 100), 100);
  t.is(percentile([7], 99), 7);
  t.like(summarize([3, 1, 2]), { count: 3, p50: 2, max: 3, mean: 2 });
});

test('the chart is an SVG with one line per series and a legend', (t) => {
  const svg = lineChart({
    title: 'a & b', xLabel: 'x', leftLabel: 'l', rightLabel: 'r',
    series: [
      { name: 'one', axis: 'left', color: '#000', points: [[16, 100], [64, 300]] },
      { name: 'two', axis: 'right', color: '#f00', dashed: true, points: [[16, 5], [64, 9]] },
    ],
  });
  t.true(svg.startsWith('<svg'));
  t.is(svg.match(/<polyline/g)?.length, 2);
  t.true(svg.includes('a &amp; b'));
  t.true(svg.includes('>one<') && svg.includes('>two<'));
});

test.serial('bench:submit at two small load levels, with its baseline and its chart', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'hookrelay-bench-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const svg = join(dir, 'chart.svg');
  const out = await bench(t, 'submit', ['--levels', '2,4', '--duration', '700', '--warmup', '200', '--svg', svg]);
  t.is(out.bench, 'submit');
  t.is(out.machine.cpus > 0, true);
  t.deepEqual(out.levels.map((l: any) => l.connections), [2, 4]);
  for (const level of out.levels) {
    t.true(level.hookrelay.perSecond > 0);
    t.is(level.hookrelay.errors, 0);
    t.deepEqual(Object.keys(level.hookrelay.statuses), ['202']);
    t.true(isLatency(level.hookrelay.latencyMs));
    t.true(level.raw.perSecond > 0);
    t.true(isLatency(level.raw.latencyMs));
    t.true(level.ratio.throughput > 0);
    // CPU per submission of each process; PostgreSQL's is read from /proc, as it runs here.
    const cpu = level.hookrelay.cpuMsPerSubmission;
    t.true(cpu.service > 0 && cpu.loadGenerator > 0, JSON.stringify(cpu));
    t.true(typeof cpu.postgres === 'number' && cpu.postgres >= 0, JSON.stringify(cpu));
  }
  t.true(Array.isArray(out.targetMetAt) && out.targetMetAt.every((c: number) => [2, 4].includes(c)));
  t.true(out.withoutHttp.groupCommit.perSecond > 0 && out.withoutHttp.oneTransactionEach.perSecond > 0);
  t.true(out.withoutHttp.groupCommit.largestBatch >= 1);
  t.true(isLatency(out.withoutHttp.groupCommit.latencyMs));
  t.is(typeof out.targetMet, 'boolean');
  t.true(out.service.peakRssMb > 10);
  t.true(readFileSync(svg, 'utf8').includes('<polyline'));
});

test.serial('bench:queue-latency at a low rate: every webhook reaches the receiver, latencies and CPU reported', async (t) => {
  const out = await bench(t, 'queue-latency', ['--rate', '40', '--duration', '1000', '--warmup', '250', '--endpoints', '2']);
  t.is(out.bench, 'queue-latency');
  t.is(out.hookrelay.missing, 0);
  t.true(isOrderedLatency(out.hookrelay.latencyMs), JSON.stringify(out.hookrelay.latencyMs));
  t.is(out.hookrelay.ledgerLatencyMs.count, out.hookrelay.latencyMs.count);
  t.true(isLoopDelay(out.hookrelay.serviceEventLoopDelayMs), JSON.stringify(out.hookrelay.serviceEventLoopDelayMs));
  const { measurement } = out.hookrelay;
  t.true(Number.isInteger(measurement.negativeLatencies) && measurement.negativeLatencies >= 0, JSON.stringify(measurement));
  for (const delay of [measurement.loadGeneratorEventLoopDelayMs, measurement.receiverEventLoopDelayMs]) t.true(delay.p99 >= 0 && delay.max >= delay.p99, JSON.stringify(measurement));
  t.true(out.hookrelay.cpu.percentOfOneCore >= 0);
  // Measured after the warm-up, and from the load's start beside it.
  t.true(out.hookrelay.cpu.msPerWebhook > 0 && out.hookrelay.cpuWithWarmup.msPerWebhook > 0, JSON.stringify(out.hookrelay));
  // PostgreSQL's CPU per webhook over the same window, where the server is a local process (null otherwise).
  t.true(out.hookrelay.cpu.postgresMsPerWebhook === null || out.hookrelay.cpu.postgresMsPerWebhook >= 0, JSON.stringify(out.hookrelay.cpu));
  t.true(out.hookrelay.peakRssMb > 10);
  t.is(out.raw.missing, 0);
  t.true(isLatency(out.raw.latencyMs));
  t.deepEqual(Object.keys(out.targetMet).sort(), ['cpu', 'p99', 'rss']);
});

test.serial('bench:queue-latency --split: the API and the worker in two processes still deliver every webhook', async (t) => {
  const out = await bench(t, 'queue-latency', ['--rate', '30', '--duration', '800', '--warmup', '200', '--endpoints', '2', '--split']);
  t.is(out.layout, 'two processes: api, worker');
  t.is(out.hookrelay.missing, 0);
  t.true(isOrderedLatency(out.hookrelay.latencyMs), JSON.stringify(out.hookrelay.latencyMs));
  t.true(out.hookrelay.cpu.msPerWebhook > 0);
  // Each process's own event-loop lateness: the worker's from its HOOKRELAY_WORKER_PORT.
  const { api, worker } = out.hookrelay.serviceEventLoopDelayMs;
  t.true(isLoopDelay(api) && isLoopDelay(worker), JSON.stringify(out.hookrelay.serviceEventLoopDelayMs));
});

test.serial('bench:e2e on a small backlog: all delivered once, with the pg-boss no-op drain beside it', async (t) => {
  const out = await bench(t, 'e2e', ['--count', '150', '--endpoints', '3', '--timeout', '60000']);
  t.is(out.bench, 'e2e');
  t.like(out.hookrelay, { delivered: 150, allDelivered: true });
  t.is(out.hookrelay.ingest.accepted, 150);
  t.true(out.hookrelay.perSecond > 0);
  t.like(out.raw, { count: 150 });
  t.true(out.raw.perSecond > 0);
  t.true(out.ratio.throughput > 0);
  // Where the CPU went, per delivery and per no-op job. Other processes' CPU is counted in
  // 10 ms clock ticks, which a run this small may not fill: read (a number), not necessarily > 0.
  const cpu = out.hookrelay.cpuMsPerDelivery;
  t.true(cpu.service > 0, JSON.stringify(cpu));
  t.true([cpu.postgres, cpu.receiver].every((v) => typeof v === 'number' && v >= 0), JSON.stringify(cpu));
  t.true(out.raw.cpuMsPerJob.worker > 0 && typeof out.raw.cpuMsPerJob.postgres === 'number' && out.raw.cpuMsPerJob.postgres >= 0, JSON.stringify(out.raw.cpuMsPerJob));
});

test.serial('the no-op drain with per-group limits completes every job of every group', async (t) => {
  const url = await freshDatabase(t, { migrate: false });
  const result = await run(t, process.execPath, [join(ROOT, 'bench', 'raw.ts'), 'drain', '--db', url, '--count', '300', '--groups', '3', '--group-concurrency', '100'], { timeoutMs: 60_000 });
  t.is(result.code, 0, result.stderr.slice(-2000));
  const out = JSON.parse(result.stdout).result;
  t.like(out, { kind: 'pg-boss no-op fetch/complete (batch 200, 4 loops, burst, 3 groups of at most 100 active, queue analyzed)', count: 300 });
  t.true(out.perSecond > 0 && out.cpuMsPerJob.worker > 0 && typeof out.cpuMsPerJob.postgres === 'number' && out.cpuMsPerJob.postgres >= 0, JSON.stringify(out));
  const groups = await query(url, `SELECT group_id, count(*)::int AS n FROM bench_raw_queue.job WHERE name = 'raw_drain' AND state = 'completed' GROUP BY group_id ORDER BY group_id`);
  t.deepEqual(groups, [{ group_id: 'g0', n: 100 }, { group_id: 'g1', n: 100 }, { group_id: 'g2', n: 100 }]);
});

test.serial('bench:concurrency with a few held requests: all in flight at once, all delivered, RSS sampled', async (t) => {
  const out = await bench(t, 'concurrency', ['--count', '120', '--hold', '400', '--endpoints', '4', '--timeout', '60000']);
  t.is(out.bench, 'concurrency');
  t.like(out.hookrelay, { delivered: 120, allDelivered: true });
  t.true(out.hookrelay.peakInFlight > 1 && out.hookrelay.peakInFlight <= 120);
  t.true(out.hookrelay.peakRssMb > 10);
  t.like(out.raw, { count: 120, delivered: 120, failed: 0, peakInFlight: 120 });
  t.true(out.raw.sampledPeakRssMb > 10);
});
