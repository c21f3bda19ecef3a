/**
 * What the benchmarks share: a fresh database per run, child processes (the service, the
 * receiver, the load generator, the raw baselines) each in a process of its own, and the
 * figures they report (percentiles, RSS and CPU read from /proc).
 *
 * Every child prints exactly one JSON line on stdout when asked for its result; the service
 * is hookrelay itself (`node src/main.ts`) configured through its environment.
 */

import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { SERVICE_NODE_FLAGS } from '../src/node-flags.ts';

export const ROOT = fileURLToPath(new URL('../', import.meta.url));
export const MAIN = fileURLToPath(new URL('../src/main.ts', import.meta.url));
/** Preloaded by `npm start` (Node's compile cache); the service is started the same way here. */
export const COMPILE_CACHE = new URL('../src/compile-cache.ts', import.meta.url).href;
export const BENCH_DIR = fileURLToPath(new URL('./', import.meta.url));

/** Fixed, benchmark-only secrets: every run works in a database of its own that it drops. */
export const BENCH_MASTER_KEY = Buffer.alloc(32, 11).toString('base64');
export const BENCH_TOKEN = 'hookrelay-bench-admin-token';

// --- arguments -------------------------------------------------------------------------------

/** `--name value` and `--flag` from argv; numbers where they parse. */
export function parseArgs(argv = process.argv.slice(2)): Record<string, string | true> {
  const out: Record<string, string | true> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) continue;
    const next = argv[i + 1];
    if (next === undefined || next.startsWith('--')) out[a.slice(2)] = true;
    else {
      out[a.slice(2)] = next;
      i++;
    }
  }
  return out;
}

export function numArg(args: Record<string, string | true>, name: string, fallback: number): number {
  const v = args[name];
  if (v === undefined || v === true) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`--${name} must be a number (got ${v})`);
  return n;
}

export function listArg(args: Record<string, string | true>, name: string, fallback: number[]): number[] {
  const v = args[name];
  if (v === undefined || v === true) return fallback;
  return v.split(',').map((x) => {
    const n = Number(x);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a list of numbers (got ${v})`);
    return n;
  });
}

// --- figures ---------------------------------------------------------------------------------

/** Nearest-rank percentile of already sorted values. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

export const round = (n: number, digits = 2) => Number(n.toFixed(digits));

/**
 * How late an event loop ran, from a monitorEventLoopDelay histogram of `resolutionMs`: the
 * histogram holds whole intervals between its timer's runs, so lateness is what is past it.
 */
export function loopLateness(h: { percentile(p: number): number; max: number }, resolutionMs = 10): { p99: number; max: number } {
  return { p99: round(Math.max(0, h.percentile(99) / 1e6 - resolutionMs), 1), max: round(Math.max(0, h.max / 1e6 - resolutionMs), 1) };
}

/**
 * How late a service's event loop ran since the previous call, from its GET /metrics:
 * prom-client's monitorEventLoopDelay histogram (10 ms resolution), which each scrape reads
 * and resets, so a call at the start of a window and one at its end cover the window. Null
 * when the process answers no /metrics.
 */
export async function serviceLoopLateness(url: string): Promise<{ p50: number; p90: number; p99: number; max: number } | null> {
  let text: string;
  try {
    const res = await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${BENCH_TOKEN}` } });
    if (!res.ok) return null;
    text = await res.text();
  } catch {
    return null;
  }
  const late = (name: string) => {
    const line = new RegExp(`^nodejs_eventloop_lag_${name}_seconds(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text);
    return line ? round(Math.max(0, Number(line[1]) * 1000 - 10), 1) : Number.NaN;
  };
  return { p50: late('p50'), p90: late('p90'), p99: late('p99'), max: late('max') };
}

export function summarize(values: number[]): { count: number; p50: number; p95: number; p99: number; max: number; mean: number } {
  const sorted = [...values].sort((a, b) => a - b);
  const mean = sorted.reduce((s, v) => s + v, 0) / (sorted.length || 1);
  return {
    count: sorted.length,
    p50: round(percentile(sorted, 50)),
    p95: round(percentile(sorted, 95)),
    p99: round(percentile(sorted, 99)),
    max: round(sorted[sorted.length - 1] ?? Number.NaN),
    mean: round(mean),
  };
}

/** Wall-clock milliseconds with sub-millisecond precision, comparable across processes of one machine. */
export const wallMs = () => performance.timeOrigin + performance.now();

export function ratio(a: number, b: number): number | null {
  return b > 0 && Number.isFinite(a) ? round(a / b, 3) : null;
}

export function machine(postgresVersion: string) {
  return {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memoryMb: Math.round(totalmem() / 2 ** 20),
    node: process.version,
    postgres: postgresVersion,
    note: 'shared machine: other work ran on the same cores during the measurement',
  };
}

// --- /proc sampling --------------------------------------------------------------------------

const CLOCK_TICKS = 100;

/** The fields of /proc/<pid>/stat after the command name (which may hold spaces); undefined when the process is gone. */
function statFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** User + system CPU of a process (fields utime, stime), ms. */
const cpuMsOf = (fields: string[]) => ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;

function procStat(pid: number): { rssMb: number; cpuMs: number } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 'NaN');
    const fields = statFields(pid);
    return fields ? { rssMb: rssKb / 1024, cpuMs: cpuMsOf(fields) } : undefined;
  } catch {
    return undefined;
  }
}

/** CPU time (user + system) a process has used so far, ms; undefined when it is gone. */
export function processCpuMs(pid: number): number | undefined {
  return procStat(pid)?.cpuMs;
}

/**
 * CPU time of a PostgreSQL server on this machine, ms: the postmaster's own, that of the
 * backends it has reaped (cutime + cstime) and that of its live children. Found through the
 * parent of a backend of `url`; undefined when the server is not a local process we can read.
 */
export async function postgresCpu(url: string): Promise<{ cpuMs(): number | undefined } | undefined> {
  // The backend's parent is read while its connection is open: a closed one's backend is gone.
  const client = new pg.Client({ connectionString: url });
  let postmaster = Number.NaN;
  try {
    await client.connect();
    const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    postmaster = Number(statFields(rows[0]!.pid)?.[1] ?? Number.NaN);
  } catch {
    return undefined;
  } finally {
    await client.end().catch(() => undefined);
  }
  if (!Number.isInteger(postmaster) || postmaster <= 1) return undefined;
  return {
    cpuMs() {
      const own = statFields(postmaster);
      if (!own) return undefined;
      // Its own, and its reaped children's (cutime, cstime).
      let total = cpuMsOf(own) + ((Number(own[13]) + Number(own[14])) * 1000) / CLOCK_TICKS;
      for (const entry of readdirSync('/proc')) {
        if (!/^\d+$/.test(entry)) continue;
        const fields = statFields(Number(entry));
        if (fields && Number(fields[1]) === postmaster) total += cpuMsOf(fields);
      }
      return total;
    },
  };
}

export interface Sampler {
  /** Peak RSS so far, MB. */
  peakRssMb(): number;
  /** Marks the start of a measured window for cpu(). */
  mark(): void;
  /** Average CPU of the process since mark(), in % of one core. */
  cpuPercent(): number;
  stop(): void;
}

/** Samples a process's RSS every `everyMs` and its CPU time on demand. */
export function sampleProcess(pid: number, everyMs = 100): Sampler {
  let peak = 0;
  let start = { at: performance.now(), cpuMs: procStat(pid)?.cpuMs ?? 0 };
  const tick = () => {
    const s = procStat(pid);
    if (s && s.rssMb > peak) peak = s.rssMb;
  };
  tick();
  const timer = setInterval(tick, everyMs);
  return {
    peakRssMb: () => round(peak, 1),
    mark() {
      start = { at: performance.now(), cpuMs: procStat(pid)?.cpuMs ?? 0 };
    },
    cpuPercent() {
      const now = { at: performance.now(), cpuMs: procStat(pid)?.cpuMs ?? start.cpuMs };
      return round((100 * (now.cpuMs - start.cpuMs)) / Math.max(1, now.at - start.at), 1);
    },
    stop: () => clearInterval(timer),
  };
}

// --- database --------------------------------------------------------------------------------

export function serverUrl(): string {
  const url = process.env.DATABASE_URL;
  if (!url) throw new Error('DATABASE_URL is not set (a PostgreSQL server the benchmark may create databases on)');
  return url;
}

function withDatabase(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

export async function adminQuery(text: string): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: withDatabase(serverUrl(), 'postgres') });
  await client.connect();
  try {
    return await client.query(text);
  } finally {
    await client.end();
  }
}

export interface BenchDatabase {
  url: string;
  postgresVersion: string;
  drop(): Promise<void>;
}

/** A database of this run's own, dropped by drop() (call it in a finally). */
export async function freshDatabase(): Promise<BenchDatabase> {
  const name = `hookrelay_bench_${randomBytes(6).toString('hex')}`;
  await adminQuery(`CREATE DATABASE ${name}`);
  const version = (await adminQuery('SHOW server_version')).rows[0].server_version as string;
  return {
    url: withDatabase(serverUrl(), name),
    postgresVersion: version,
    drop: async () => {
      await adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    },
  };
}

// --- processes -------------------------------------------------------------------------------

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** Children still running; killed by pid on exit so a failed run leaves nothing behind. */
const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

export interface Child {
  proc: ChildProcess;
  pid: number;
  /** The first JSON line the child printed that has `key`. */
  line<T = any>(key: string, timeoutMs?: number): Promise<T>;
  stderr(): string;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves when it is gone. */
  stop(graceMs?: number): Promise<void>;
}

export function startChild(script: string, args: string[], env: NodeJS.ProcessEnv = process.env, nodeArgs: string[] = []): Child {
  const proc = spawn(process.execPath, [...nodeArgs, script, ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(proc);
  const lines: any[] = [];
  const waiters: Array<() => void> = [];
  let buf = '';
  let err = '';
  proc.stdout!.on('data', (c: Buffer) => {
    buf += c.toString('utf8');
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const text = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (!text.startsWith('{')) continue;
      try {
        lines.push(JSON.parse(text));
      } catch {
        continue;
      }
      for (const w of waiters.splice(0)) w();
    }
  });
  proc.stderr!.on('data', (c: Buffer) => {
    err = (err + c.toString('utf8')).slice(-20_000);
  });
  const exited = new Promise<void>((resolve) => proc.once('exit', () => {
    children.delete(proc);
    for (const w of waiters.splice(0)) w();
    resolve();
  }));
  return {
    proc,
    pid: proc.pid!,
    async line(key, timeoutMs = 120_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = lines.find((l) => l && typeof l === 'object' && key in l);
        if (found) return found;
        if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`${script} exited (${proc.exitCode ?? proc.signalCode}) before printing ${key}: ${err.slice(-2000)}`);
        if (Date.now() > deadline) throw new Error(`${script} printed no ${key} within ${timeoutMs} ms: ${err.slice(-2000)}`);
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, 200);
          waiters.push(() => {
            clearTimeout(t);
            resolve();
          });
        });
      }
    },
    stderr: () => err,
    async stop(graceMs = 10_000) {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(t);
    },
  };
}

/** Runs a child to its end and returns its result line (the JSON line with `key`). */
export async function runChild<T = any>(script: string, args: string[], key = 'result', timeoutMs = 600_000): Promise<T> {
  const child = startChild(script, args);
  try {
    return (await child.line<Record<string, T>>(key, timeoutMs))[key]!;
  } finally {
    await child.stop(2_000);
  }
}

export interface ServiceProcess {
  child: Child;
  url: string;
  sampler: Sampler;
  stop(): Promise<void>;
}

/**
 * The service settings a delivery benchmark takes from its own environment, to try other
 * worker and pool sizes: HOOKRELAY_WORKER_*, HOOKRELAY_ENDPOINT_CONCURRENCY, HOOKRELAY_DB_POOL_MAX,
 * HOOKRELAY_DB_PREPARED_STATEMENTS.
 */
export function serviceSettingsFromEnv(): Record<string, string> {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith('HOOKRELAY_WORKER_') || k === 'HOOKRELAY_ENDPOINT_CONCURRENCY' || k === 'HOOKRELAY_DB_POOL_MAX' || k === 'HOOKRELAY_DB_PREPARED_STATEMENTS')) as Record<string, string>;
}

/**
 * hookrelay as `npm start` runs it (compile cache preloaded), in a process of its own, on
 * `dbUrl`, allowed to deliver to loopback receivers. LOG_LEVEL is warn: at thousands of
 * requests a second a JSON line per request would measure the log pipe, and operators at
 * these rates log at warn too.
 */
export async function startService(dbUrl: string, env: Record<string, string> = {}): Promise<ServiceProcess> {
  const port = await freePort();
  const base: NodeJS.ProcessEnv = {};
  for (const k of ['PATH', 'HOME', 'TZ', 'LANG']) if (process.env[k] !== undefined) base[k] = process.env[k];
  const child = startChild(MAIN, [], {
    ...base,
    DATABASE_URL: dbUrl,
    PORT: String(port),
    // A worker-only process answers /readyz and /metrics there (the API's port otherwise).
    HOOKRELAY_WORKER_PORT: String(port),
    HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    HOOKRELAY_MASTER_KEY: BENCH_MASTER_KEY,
    HOOKRELAY_ADMIN_TOKEN: BENCH_TOKEN,
    HOOKRELAY_ALLOW_NETWORKS: '127.0.0.0/8,::1/128',
    // One load generator stands for many clients: the per-token limit is not what is measured.
    HOOKRELAY_RATE_LIMIT_PER_SECOND: '1000000',
    HOOKRELAY_RATE_LIMIT_BURST: '1000000',
    // BENCH_SERVICE_NODE_OPTIONS='--cpu-prof --cpu-prof-dir=/tmp/prof' profiles the service.
    NODE_OPTIONS: process.env.BENCH_SERVICE_NODE_OPTIONS ?? '',
    ...env,
  }, [...SERVICE_NODE_FLAGS, '--import', COMPILE_CACHE]);
  const sampler = sampleProcess(child.pid);
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.proc.exitCode !== null) throw new Error(`the service exited at start: ${child.stderr().slice(-2000)}`);
    const ok = await fetch(`${url}/readyz`).then((r) => r.ok, () => false);
    if (ok) break;
    if (Date.now() > deadline) throw new Error(`the service was not ready within 60 s: ${child.stderr().slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    child,
    url,
    sampler,
    async stop() {
      sampler.stop();
      await child.stop(15_000);
    },
  };
}

export interface ReceiverProcess {
  child: Child;
  url: string;
  stats(): Promise<ReceiverStats>;
  /** Arrival wall-clock times by webhook-id. */
  arrivals(): Promise<Record<string, number>>;
  reset(): Promise<void>;
  stop(): Promise<void>;
}

export interface ReceiverStats {
  count: number;
  inFlight: number;
  peakInFlight: number;
  firstAt: number | null;
  lastAt: number | null;
  distinctIds: number;
  /** How late the receiver's event loop ran since its start or last reset (p99, max). */
  eventLoopDelayMs: { p99: number; max: number };
}

/** bench/receiver.ts in its own process: answers 200 at once, or after `holdMs`. */
export async function startReceiver(holdMs = 0): Promise<ReceiverProcess> {
  const child = startChild(`${BENCH_DIR}receiver.ts`, ['--hold', String(holdMs)]);
  const { port } = await child.line<{ port: number }>('port', 30_000);
  const url = `http://127.0.0.1:${port}`;
  const get = async (path: string, method = 'GET') => {
    const r = await fetch(url + path, { method });
    return r.json();
  };
  return {
    child,
    url,
    stats: () => get('/_stats') as Promise<ReceiverStats>,
    arrivals: () => get('/_arrivals') as Promise<Record<string, number>>,
    reset: async () => {
      await get('/_reset', 'POST');
    },
    stop: () => child.stop(2_000),
  };
}

/** Polls until `check` is true or `timeoutMs` passes; returns whether it became true. */
export async function until(check: () => Promise<boolean>, timeoutMs: number, everyMs = 100): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export async function scalar<T = number>(url: string, text: string, values: unknown[] = []): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query(text, values);
    return Object.values(rows[0] ?? {})[0] as T;
  } finally {
    await client.end();
  }
}

/** Prints the one JSON object a benchmark answers with. */
export function report(result: unknown): void {
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
}

/**
 * Fills the queue with `count` webhooks over `endpoints` receiver paths, written by this
 * process through the submission code the API uses (group commit: the same rows, endpoints,
 * keys and jobs), without HTTP, so that a backlog of 10,000 is ready in seconds even on a
 * busy machine. The delivery benchmarks start the service on the backlog afterwards;
 * bench:submit is the one that measures submission over HTTP.
 */
export async function preload(dbUrl: string, receiverUrl: string, count: number, endpoints: number): Promise<{ perSecond: number; accepted: number; seconds: number }> {
  const [{ loadConfig }, { createDb }, { migrate }, { startQueue }, { createGroupCommit }, { createKeyring }, { createLogger }] = await Promise.all([
    import('../src/config.ts'), import('../src/db/database.ts'), import('../src/db/migrate.ts'), import('../src/delivery/queue.ts'),
    import('../src/delivery/group-commit.ts'), import('../src/endpoints/keyring.ts'), import('../src/log.ts'),
  ]);
  const log = createLogger({ level: 'error', silent: true });
  const config = loadConfig({ DATABASE_URL: dbUrl, HOOKRELAY_MASTER_KEY: BENCH_MASTER_KEY });
  await migrate(dbUrl, log);
  const handle = createDb(dbUrl, { max: 8 });
  const boss = await startQueue(dbUrl, { ...config, dbPoolMax: 4 }, log, { supervise: false });
  try {
    const gc = createGroupCommit(handle.db, { boss, keyring: createKeyring(Buffer.from(BENCH_MASTER_KEY, 'base64')), retryDefaults: config.retry });
    const t0 = performance.now();
    let next = 0;
    await Promise.all(Array.from({ length: 256 }, async () => {
      while (next < count) {
        const i = next++;
        await gc.submit({ url: `${receiverUrl}/e/${i % endpoints}`, body: JSON.stringify({ i, event: 'bench.submitted', data: { order: `o_${i}`, total: 4200 } }), headers: {} });
      }
    }));
    const seconds = (performance.now() - t0) / 1000;
    return { perSecond: round(count / seconds, 0), accepted: count, seconds: round(seconds, 2) };
  } finally {
    await boss.stop({ graceful: false, close: true, timeout: 2_000 });
    await handle.close();
  }
}

/**
 * Submission without HTTP, in this process, for `durationMs` with `callers` concurrent
 * callers: `single` is one transaction per submission (submitWebhook), `group` is group
 * commit. Shows what the transaction strategy alone is worth, apart from the HTTP stack.
 */
export async function submitInProcess(dbUrl: string, mode: 'single' | 'group', callers: number, durationMs: number): Promise<{ perSecond: number; latencyMs: ReturnType<typeof summarize>; batches?: number; largestBatch?: number }> {
  const [{ loadConfig }, { createDb }, { migrate }, { startQueue }, { createGroupCommit }, { submitWebhook }, { createKeyring }, { createLogger }] = await Promise.all([
    import('../src/config.ts'), import('../src/db/database.ts'), import('../src/db/migrate.ts'), import('../src/delivery/queue.ts'),
    import('../src/delivery/group-commit.ts'), import('../src/delivery/submit.ts'), import('../src/endpoints/keyring.ts'), import('../src/log.ts'),
  ]);
  const log = createLogger({ level: 'error', silent: true });
  const config = loadConfig({ DATABASE_URL: dbUrl, HOOKRELAY_MASTER_KEY: BENCH_MASTER_KEY });
  await migrate(dbUrl, log);
  // The service's own pool size (HOOKRELAY_DB_POOL_MAX default).
  const handle = createDb(dbUrl, { max: config.dbPoolMax });
  const boss = await startQueue(dbUrl, { ...config, dbPoolMax: 4 }, log, { supervise: false });
  try {
    const deps = { boss, keyring: createKeyring(Buffer.from(BENCH_MASTER_KEY, 'base64')), retryDefaults: config.retry };
    const gc = createGroupCommit(handle.db, deps);
    const input = (i: number) => ({ url: 'http://127.0.0.1:9/e/0', body: JSON.stringify({ i, event: 'bench.submitted' }), headers: {} });
    await submitWebhook(handle.db, deps, input(-1));
    const latencies: number[] = [];
    const end = performance.now() + durationMs;
    let i = 0;
    const t0 = performance.now();
    await Promise.all(Array.from({ length: callers }, async () => {
      while (performance.now() < end) {
        const started = performance.now();
        await (mode === 'group' ? gc.submit(input(i++)) : submitWebhook(handle.db, deps, input(i++)));
        latencies.push(performance.now() - started);
      }
    }));
    const elapsed = performance.now() - t0;
    const stats = gc.stats();
    return { perSecond: round((latencies.length * 1000) / elapsed, 0), latencyMs: summarize(latencies), ...(mode === 'group' ? { batches: stats.batches, largestBatch: stats.largestBatch } : {}) };
  } finally {
    await boss.stop({ graceful: false, close: true, timeout: 2_000 });
    await handle.close();
  }
}
