import test from 'ava';
import { check, percentile, type CheckInput } from '../../scripts/reliability/checker.ts';

/**
 * Synthetic runs: a clean one, then one per broken invariant. Times are ms on a made-up clock.
 *
 *   k1 → w1  delivered on attempt 1
 *   k2 → w2  failed (500), then delivered on attempt 2
 *   k3 → w3  dead after one 410 attempt, with its dead letter
 *   k4       the client timed out; the webhook was committed anyway (w4, delivered)
 *   k5       the client got a 503; nothing was stored
 */
function cleanRun(): CheckInput {
  return {
    submissions: [
      { key: 'k1', sentAt: 1000, outcome: 'acked', id: 'w1', status: 202, doneAt: 1010 },
      { key: 'k2', sentAt: 1000, outcome: 'acked', id: 'w2', status: 202, doneAt: 1010, measureLatency: false },
      { key: 'k3', sentAt: 1000, outcome: 'acked', id: 'w3', status: 202, doneAt: 1010, measureLatency: false },
      { key: 'k4', sentAt: 1000, outcome: 'failed', doneAt: 11_000 },
      { key: 'k5', sentAt: 1000, outcome: 'failed', status: 503, doneAt: 1005 },
    ],
    ledger: {
      webhooks: [
        { id: 'w1', idempotencyKey: 'k1', status: 'delivered', attempts: 1, deliveredAt: 1100 },
        { id: 'w2', idempotencyKey: 'k2', status: 'delivered', attempts: 2, deliveredAt: 1600 },
        { id: 'w3', idempotencyKey: 'k3', status: 'dead', attempts: 1, deliveredAt: null },
        { id: 'w4', idempotencyKey: 'k4', status: 'delivered', attempts: 1, deliveredAt: 1100 },
      ],
      attempts: [
        { webhookId: 'w1', attempt: 1, statusCode: 200, outcome: 'success', errorClass: null, startedAt: 1050, durationMs: 10 },
        { webhookId: 'w2', attempt: 1, statusCode: 500, outcome: 'failure', errorClass: 'http_status', startedAt: 1050, durationMs: 10 },
        { webhookId: 'w2', attempt: 2, statusCode: 204, outcome: 'success', errorClass: null, startedAt: 1550, durationMs: 10 },
        { webhookId: 'w3', attempt: 1, statusCode: 410, outcome: 'failure', errorClass: 'http_status', startedAt: 1050, durationMs: 10 },
        { webhookId: 'w4', attempt: 1, statusCode: 200, outcome: 'success', errorClass: null, startedAt: 1050, durationMs: 10 },
      ],
      deadLetters: [{ webhookId: 'w3', replayedAt: null }],
    },
    receipts: [
      { webhookId: 'w1', at: 1055, status: 200 },
      { webhookId: 'w2', at: 1055, status: 500 },
      { webhookId: 'w2', at: 1555, status: 204 },
      { webhookId: 'w3', at: 1055, status: 410 },
      { webhookId: 'w4', at: 1055, status: 200 },
    ],
    faults: [],
  };
}

test('a clean run passes, with its counts', (t) => {
  const report = check(cleanRun());
  t.true(report.ok);
  t.is(report.lost.count, 0);
  t.is(report.inconsistent.count, 0);
  t.deepEqual(report.counts.byStatus, { delivered: 3, dead: 1 });
  t.is(report.counts.submitted, 5);
  t.is(report.counts.acknowledged, 3);
  // Unacknowledged submissions are counted, found or not, and are not losses.
  t.is(report.counts.unacknowledged, 2);
  t.is(report.counts.unacknowledgedInLedger, 1);
  t.is(report.duplicates.count, 0);
  t.deepEqual(report.latency.beforeFaults, { count: 1, p50Ms: 55, p99Ms: 55, maxMs: 55 });
});

test('an acknowledged webhook missing from the ledger is lost', (t) => {
  const run = cleanRun();
  run.ledger.webhooks = run.ledger.webhooks.filter((w) => w.id !== 'w1');
  run.ledger.attempts = run.ledger.attempts.filter((a) => a.webhookId !== 'w1');
  run.receipts = run.receipts.filter((r) => r.webhookId !== 'w1');
  const report = check(run);
  t.false(report.ok);
  t.deepEqual(report.lost, { count: 1, ids: ['w1'] });
});

test('a missing unacknowledged submission is not a loss', (t) => {
  const run = cleanRun();
  run.ledger.webhooks = run.ledger.webhooks.filter((w) => w.id !== 'w4');
  run.ledger.attempts = run.ledger.attempts.filter((a) => a.webhookId !== 'w4');
  run.receipts = run.receipts.filter((r) => r.webhookId !== 'w4');
  const report = check(run);
  t.true(report.ok);
  t.is(report.counts.unacknowledged, 2);
  t.is(report.counts.unacknowledgedInLedger, 0);
});

test('an acknowledged webhook still pending is open, not lost', (t) => {
  const run = cleanRun();
  run.ledger.webhooks[0] = { id: 'w1', idempotencyKey: 'k1', status: 'retrying', attempts: 1, deliveredAt: null };
  run.ledger.attempts[0] = { webhookId: 'w1', attempt: 1, statusCode: 503, outcome: 'failure', errorClass: 'http_status', startedAt: 1050, durationMs: 10 };
  run.receipts[0] = { webhookId: 'w1', at: 1055, status: 503 };
  const report = check(run);
  t.is(report.lost.count, 0);
  t.deepEqual(report.open, { count: 1, ids: ['w1'] });
  t.true(report.ok);
});

test('delivered without a 2xx attempt', (t) => {
  const run = cleanRun();
  run.ledger.attempts[0] = { webhookId: 'w1', attempt: 1, statusCode: 500, outcome: 'failure', errorClass: 'http_status', startedAt: 1050, durationMs: 10 };
  const report = check(run);
  t.false(report.ok);
  t.deepEqual(report.inconsistent.byProblem, { 'delivered-without-2xx-attempt': 1 });
  t.deepEqual(report.inconsistent.examples, [{ id: 'w1', problem: 'delivered-without-2xx-attempt' }]);
});

test('delivered although no receiver accepted it', (t) => {
  const run = cleanRun();
  run.receipts = run.receipts.filter((r) => r.webhookId !== 'w1');
  const report = check(run);
  t.false(report.ok);
  t.deepEqual(report.inconsistent.byProblem, { 'delivered-not-received': 1 });
});

test('more than one terminal state: delivered with an open dead letter, two successes, attempts after success', (t) => {
  const run = cleanRun();
  run.ledger.deadLetters.push({ webhookId: 'w1', replayedAt: null });
  run.ledger.webhooks[1]!.attempts = 3;
  run.ledger.attempts.push({ webhookId: 'w2', attempt: 3, statusCode: 200, outcome: 'success', errorClass: null, startedAt: 1600, durationMs: 5 });
  const report = check(run);
  t.false(report.ok);
  t.deepEqual(report.inconsistent.byProblem, { 'delivered-and-dead-letter': 1, 'more-than-one-success': 1, 'attempt-after-success': 1 });
});

test('dead without a dead letter, a dead letter on a live webhook, two open dead letters', (t) => {
  const run = cleanRun();
  run.ledger.deadLetters = [
    { webhookId: 'w2', replayedAt: null },
    { webhookId: 'w2', replayedAt: null },
  ];
  const report = check(run);
  t.deepEqual(report.inconsistent.byProblem, {
    'dead-without-dead-letter': 1,
    'more-than-one-open-dead-letter': 1,
    'delivered-and-dead-letter': 1,
  });
  // A replayed dead letter is history, not a state.
  run.ledger.deadLetters = [{ webhookId: 'w3', replayedAt: 1200 }, { webhookId: 'w3', replayedAt: null }, { webhookId: 'w1', replayedAt: 1300 }];
  t.true(check(run).ok);
  run.ledger.webhooks[1]!.status = 'retrying';
  run.ledger.deadLetters.push({ webhookId: 'w2', replayedAt: null });
  t.deepEqual(check(run).inconsistent.byProblem, { 'open-dead-letter-not-dead': 1 });
});

test('attempt rows that do not match the attempt count', (t) => {
  const run = cleanRun();
  run.ledger.webhooks[0]!.attempts = 2;
  const report = check(run);
  t.deepEqual(report.inconsistent.byProblem, { 'attempts-count-mismatch': 1 });
  t.is(report.inconsistent.examples[0]!.detail, 'attempts 2, rows [1]');
});

test('an idempotency key acknowledged as two webhooks, and ledger rows nobody submitted', (t) => {
  const run = cleanRun();
  run.submissions.push({ key: 'k1', sentAt: 2000, outcome: 'acked', id: 'w9', status: 202, doneAt: 2010 });
  run.ledger.webhooks.push({ id: 'w9', idempotencyKey: 'k1-other', status: 'dead', attempts: 0, deliveredAt: null });
  run.ledger.deadLetters.push({ webhookId: 'w9', replayedAt: null });
  const report = check(run);
  t.false(report.ok);
  t.deepEqual(report.inconsistent.byProblem, { 'ack-mismatch': 2, 'not-submitted': 1 });
});

test('an unknown status and a receipt of an id the ledger does not have', (t) => {
  const run = cleanRun();
  run.ledger.webhooks[0]!.status = 'vanished';
  run.receipts.push({ webhookId: 'w77', at: 1200, status: 200 });
  const report = check(run);
  t.deepEqual(report.inconsistent.byProblem, { 'unknown-status': 1, 'received-unknown-id': 1 });
});

test('a duplicate explained by an attempt that timed out after the receiver got it', (t) => {
  const run = cleanRun();
  // Attempt 1 of w2 timed out (no answer seen) although the receiver accepted it at 1055.
  run.ledger.attempts[1] = { webhookId: 'w2', attempt: 1, statusCode: null, outcome: 'failure', errorClass: 'timeout', startedAt: 1050, durationMs: 1000 };
  run.receipts[1] = { webhookId: 'w2', at: 1055, status: 200 };
  const report = check(run);
  t.true(report.ok);
  t.like(report.duplicates, { count: 1, webhookIds: 1, explainedByTimeout: 1, explainedByFault: 0, unexplained: 0 });
});

test('a timeout still explains a receipt that reached a loaded receiver only after the next attempt began', (t) => {
  const run = cleanRun();
  run.ledger.attempts[1] = { webhookId: 'w2', attempt: 1, statusCode: null, outcome: 'failure', errorClass: 'timeout', startedAt: 1050, durationMs: 1000 };
  run.ledger.attempts[2] = { webhookId: 'w2', attempt: 2, statusCode: 200, outcome: 'success', errorClass: null, startedAt: 2300, durationMs: 20 };
  run.receipts[1] = { webhookId: 'w2', at: 2350, status: 200 };
  run.receipts[2] = { webhookId: 'w2', at: 2310, status: 200 };
  const report = check(run);
  t.true(report.ok);
  t.like(report.duplicates, { count: 1, explainedByTimeout: 1, unexplained: 0 });
  // Two receipts for one success and no timeout: one of them is unexplained.
  run.ledger.attempts[1] = { webhookId: 'w2', attempt: 1, statusCode: 503, outcome: 'failure', errorClass: 'http_status', startedAt: 1050, durationMs: 10 };
  t.like(check(run).duplicates, { count: 1, explainedByTimeout: 0, unexplained: 1 });
});

test('a duplicate explained by a fault window', (t) => {
  const run = cleanRun();
  // A worker killed at 1060, after the receiver accepted w1 but before the attempt was recorded.
  run.receipts.unshift({ webhookId: 'w1', at: 1040, status: 200 });
  run.faults.push({ kind: 'worker-kill', at: 1060, until: 1100 });
  const report = check(run);
  t.true(report.ok);
  t.like(report.duplicates, { count: 1, explainedByFault: 1, unexplained: 0 });
  t.is(report.counts.faults, 1);
});

test('a duplicate that nothing explains is flagged', (t) => {
  const run = cleanRun();
  run.receipts.push({ webhookId: 'w1', at: 900_000, status: 200 });
  run.faults.push({ kind: 'pg-restart-fast', at: 1_000, until: 2_000 });
  const report = check(run);
  t.false(report.ok);
  t.like(report.duplicates, { count: 1, unexplained: 1, unexplainedIds: ['w1'] });
  // A failure answered with a status is not a timeout: the worker saw the 500, so a second
  // 2xx for the same attempt window has no reason either.
  const other = cleanRun();
  other.receipts[1] = { webhookId: 'w2', at: 1055, status: 200 };
  t.like(check(other).duplicates, { count: 1, unexplained: 1, unexplainedIds: ['w2'] });
});

test('latency is split at the first fault and measured to the first accepted receipt', (t) => {
  const run = cleanRun();
  run.submissions.push({ key: 'k6', sentAt: 5000, outcome: 'acked', id: 'w6', status: 202, doneAt: 5010 });
  run.ledger.webhooks.push({ id: 'w6', idempotencyKey: 'k6', status: 'delivered', attempts: 1, deliveredAt: 5300 });
  run.ledger.attempts.push({ webhookId: 'w6', attempt: 1, statusCode: 200, outcome: 'success', errorClass: null, startedAt: 5200, durationMs: 10 });
  run.receipts.push({ webhookId: 'w6', at: 5205, status: 200 });
  run.faults.push({ kind: 'pg-terminate', at: 4000, until: 4100 });
  const report = check(run);
  t.true(report.ok);
  t.is(report.latency.beforeFaults.p99Ms, 55);
  t.is(report.latency.afterFaults.p99Ms, 205);
  t.is(percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 99), 10);
  t.is(percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 50), 5);
  t.is(percentile([], 50), null);
});
