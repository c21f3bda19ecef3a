/**
 * bench:submit — submission latency and throughput of POST /api/v1/webhooks/deliver, against
 * single-row INSERT transactions on the same PostgreSQL in the same run.
 *
 *   npm run bench:submit -- [--levels 16,64,128,192,256] [--duration 5000] [--warmup 1000] [--svg docs/performance.svg | --no-svg]
 *
 * The service runs with the api role only (`node src/main.ts`, HOOKRELAY_ROLES=api), so the
 * figure is ingest alone; the load generator (bench/load.ts) and the baseline (bench/raw.ts
 * insert) are processes of their own. Each load level is a number of concurrent callers, each
 * sending its next request when the last is answered. Beside it, without HTTP and in this
 * process: one transaction per submission against group commit (the transaction strategy
 * alone). Target: p95 < 50 ms while sustaining
 * >= 5,000 submissions/s. Writes the throughput/latency chart of docs/PERFORMANCE.md.
 */

import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { lineChart } from './chart.ts';
import { BENCH_DIR, BENCH_TOKEN, freshDatabase, listArg, machine, numArg, parseArgs, postgresCpu, processCpuMs, ratio, report, round, ROOT, runChild, startService, submitInProcess } from './lib.ts';

const args = parseArgs();
const levels = listArg(args, 'levels', [16, 64, 128, 192, 256]);
const durationMs = numArg(args, 'duration', 5_000);
const warmupMs = numArg(args, 'warmup', 1_000);
const svgPath = args['no-svg'] === true ? undefined : resolve(ROOT, typeof args.svg === 'string' ? args.svg : 'docs/performance.svg');

const db = await freshDatabase();
try {
  const service = await startService(db.url, { HOOKRELAY_ROLES: 'api' });
  const rows = [];
  try {
    const postgres = await postgresCpu(db.url);
    for (const connections of levels) {
      service.sampler.mark();
      const before = { service: processCpuMs(service.child.pid), postgres: postgres?.cpuMs() };
      const load = await runChild(`${BENCH_DIR}load.ts`, [
        '--service', service.url, '--token', BENCH_TOKEN, '--receiver', 'http://127.0.0.1:9',
        '--mode', 'concurrency', '--connections', String(connections), '--duration', String(durationMs), '--warmup', String(warmupMs),
      ]);
      const cpuPercent = service.sampler.cpuPercent();
      // CPU per accepted submission (warm-up included) of each process on the machine.
      const per = (now: number | undefined, then: number | undefined) => (now === undefined || then === undefined ? null : round((now - then) / Math.max(1, load.accepted), 3));
      const cpuMsPerSubmission = {
        service: per(processCpuMs(service.child.pid), before.service),
        postgres: per(postgres?.cpuMs(), before.postgres),
        loadGenerator: per(load.cpuMs, 0),
      };
      const raw = await runChild(`${BENCH_DIR}raw.ts`, ['insert', '--db', db.url, '--connections', String(connections), '--duration', String(durationMs), '--warmup', String(warmupMs)]);
      rows.push({
        connections,
        hookrelay: { perSecond: load.perSecond, latencyMs: load.latencyMs, accepted: load.accepted, statuses: load.statuses, errors: load.errors, firstError: load.firstError, serviceCpuPercent: cpuPercent, cpuMsPerSubmission },
        raw: { perSecond: raw.perSecond, latencyMs: raw.latencyMs, poolMax: raw.poolMax },
        ratio: { throughput: ratio(load.perSecond, raw.perSecond), p95: ratio(load.latencyMs.p95, raw.latencyMs.p95) },
      });
    }
  } finally {
    await service.stop();
  }
  // The transaction strategy alone, without HTTP: one transaction per submission against group
  // commit, same database, same callers as the busiest level.
  const callers = Math.max(...levels);
  const inProcess = {
    callers,
    oneTransactionEach: await submitInProcess(db.url, 'single', callers, Math.min(durationMs, 3_000)),
    groupCommit: await submitInProcess(db.url, 'group', callers, Math.min(durationMs, 3_000)),
  };
  const meeting = rows.filter((r) => r.hookrelay.perSecond >= 5_000 && r.hookrelay.latencyMs.p95 < 50);
  const best = [...rows].sort((a, b) => b.hookrelay.perSecond - a.hookrelay.perSecond)[0];
  if (svgPath) {
    writeFileSync(svgPath, lineChart({
      title: 'POST /api/v1/webhooks/deliver: throughput and p95 latency against load',
      xLabel: 'concurrent callers (closed loop); shared 2-core machine',
      leftLabel: 'requests/s (solid)',
      rightLabel: 'p95 latency, ms (dashed)',
      series: [
        { name: 'hookrelay submissions/s', axis: 'left', color: '#1f6feb', points: rows.map((r) => [r.connections, r.hookrelay.perSecond]) },
        { name: 'raw 1-row INSERT tx/s', axis: 'left', color: '#8a8a8a', points: rows.map((r) => [r.connections, r.raw.perSecond]) },
        { name: 'hookrelay p95 ms', axis: 'right', color: '#1f6feb', dashed: true, points: rows.map((r) => [r.connections, r.hookrelay.latencyMs.p95]) },
        { name: 'raw INSERT p95 ms', axis: 'right', color: '#8a8a8a', dashed: true, points: rows.map((r) => [r.connections, r.raw.latencyMs.p95]) },
      ],
    }));
  }
  report({
    bench: 'submit',
    machine: machine(db.postgresVersion),
    target: { perSecond: 5_000, p95Ms: 50 },
    service: { roles: 'api', peakRssMb: service.sampler.peakRssMb() },
    levels: rows,
    withoutHttp: { ...inProcess, ratio: ratio(inProcess.groupCommit.perSecond, inProcess.oneTransactionEach.perSecond) },
    best: best ? { connections: best.connections, perSecond: best.hookrelay.perSecond, p95Ms: best.hookrelay.latencyMs.p95, rawPerSecond: best.raw.perSecond, ratio: best.ratio.throughput } : null,
    targetMet: meeting.length > 0,
    targetMetAt: meeting.map((r) => r.connections),
    svg: svgPath ?? null,
  });
} finally {
  await db.drop();
}
