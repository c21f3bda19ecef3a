import test from 'ava';
import { runSoak } from '../../bench/soak.ts';

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
