/**
 * Flags of Node.js the service runs with. `npm start`, `npm run hookrelay`, the services of
 * docker-compose.yml and the single binary (its SEA `execArgv`) all pass them, and so do the
 * benchmarks, to the service and to the baselines they measure it against;
 * test/packaging/node-flags.test.ts keeps the first three in step with this list, and the
 * binary's test reads them back from its start-up log line.
 *
 * --max-semi-space-size=16 (MB): V8 sizes its young generation from the heap limit, which Node
 * derives from the machine's memory: 4.5 GB on 24 GB, where the young generation grew to 134 MB
 * with 10,000 attempts in flight and the peak RSS was 472–501 MiB. At 16 MB a semi-space (V8's
 * size before it scaled with the heap) the same run peaked at 402–404 MiB, and the CPU per
 * delivery did not change (bench:e2e, bench:queue-latency; docs/PERFORMANCE.md).
 */
export const SERVICE_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=16'];
