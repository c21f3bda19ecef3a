import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { DOCS_BEGIN, DOCS_END, runSoak, writeDocs, type SoakResult } from '../../bench/soak.ts';

/**
 * The chaos soak in 30 seconds: one fault of each kind against one API and two worker
 * processes on a PostgreSQL cluster of the soak's own (never DATABASE_URL's server). The
 * worker kill comes last because its restart takes longest. The rate is modest so the test
 * suite's machine keeps up; `npm run soak` runs the full five minutes at 300/s.
 */
test('30-second soak: every fault kind once, nothing acknowledged is lost, every duplicate explained', async (t) => {
  t.timeout(5 * 60_000);
  const result = await runSoak({
    durationMs: 30_000,
    rate: 50,
    faultIntervalMs: 6_000,
    drainTimeoutMs: 120_000,
    faults: ['pg-terminate', 'pg-restart-fast', 'pg-restart-immediate', 'worker-kill'],
    progress: (line) => t.log(line),
  });
  const { check, ...summary } = result;
  t.log(JSON.stringify(summary));

  t.deepEqual(result.faults.map((f) => f.kind), ['pg-terminate', 'pg-restart-fast', 'pg-restart-immediate', 'worker-kill']);
  t.deepEqual(result.unexpectedExits, [], 'no service process crashed');
  for (const fault of result.faults) {
    // The service came back by itself: the API acknowledged and a worker delivered afterwards.
    t.not(fault.firstAckMs, null, `no 202 after ${fault.kind}`);
    t.not(fault.firstDeliveryMs, null, `no delivery after ${fault.kind}`);
  }
  t.true(result.webhooks.acknowledged > 0, 'the API acknowledged submissions');
  t.true(result.webhooks.delivered > 0, 'webhooks were delivered');
  t.is(result.lost, 0, `lost: ${JSON.stringify(check.lost)}`);
  t.is(result.duplicates.unexplained, 0, `unexplained duplicates: ${JSON.stringify(check.duplicates.unexplainedIds)}`);
  t.is(result.inconsistent, 0, JSON.stringify(check.inconsistent));
  t.true(result.drain.drained, 'everything pending was delivered after the faults, without restarting the service');
  t.is(result.webhooks.open, 0);
  // Every webhook ended delivered (the receivers all accept in the end), including those
  // committed although their client saw no 202.
  t.deepEqual(check.counts.byStatus, { delivered: check.counts.webhooks });
});

test('the figures go between the soak markers of the document, and only there', async (t) => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'hookrelay-soak-docs-'));
  t.teardown(() => fsp.rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'RELIABILITY.md');
  await fsp.writeFile(file, `# Title\n\nbefore\n\n${DOCS_BEGIN}\nold figures\n${DOCS_END}\n\nafter\n`);
  const result = {
    ok: true,
    settings: { durationS: 300, rate: 300, faultIntervalS: 30, deliveryTimeoutMs: 2000, apiProcesses: 1, workerProcesses: 2 },
    webhooks: { submitted: 1000, acknowledged: 900, unacknowledged: 100, unacknowledgedInLedger: 40, delivered: 940, dead: 0, open: 0, unacknowledgedBy: {}, notSent: 0, offeredPerSecond: 300, acknowledgedPerSecond: 270 },
    faultsInjected: 1,
    faults: [{ kind: 'pg-restart-immediate', atS: 30, downMs: 1500, firstAckMs: 1700, firstDeliveryMs: 2100 }],
    lost: 0,
    inconsistent: 0,
    duplicates: { count: 3, explainedByFault: 2, explainedByTimeout: 1, unexplained: 0 },
    latency: { beforeFaults: { count: 10, p50Ms: 20, p99Ms: 90 }, afterFaults: { count: 10, p50Ms: 25, p99Ms: 4000 }, acknowledgement: { p50Ms: 5, p99Ms: 50 } },
    drain: { drained: true, ms: 4000 },
    soakProcess: { eventLoopDelayP99Ms: 20, eventLoopDelayMaxMs: 40, loadAverage: [1, 1, 1] },
    unexpectedExits: [],
    serviceLog: {},
  } as unknown as SoakResult;
  await writeDocs(result, file);
  const text = await fsp.readFile(file, 'utf8');
  t.true(text.startsWith('# Title\n\nbefore\n\n'));
  t.true(text.endsWith(`${DOCS_END}\n\nafter\n`));
  t.false(text.includes('old figures'));
  t.regex(text, /\| \*\*lost\*\* \(acknowledged, not in the ledger\) \| \*\*0\*\* \|/);
  t.regex(text, /\| pg-restart-immediate \| 30 s \| 1,500 ms \| 1,700 ms \| 2,100 ms \|/);
  // Written twice, the document has one table, not two.
  await writeDocs(result, file);
  t.is((await fsp.readFile(file, 'utf8')).split(DOCS_BEGIN).length, 2);
});
