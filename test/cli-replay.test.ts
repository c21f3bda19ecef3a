import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import test, { type ExecutionContext } from 'ava';
import { parseReplayArgs, parseTime, progressDisplay, replayDeadLetters, ReplayError, summaryLine, type ReplayProgress } from '../src/replay.ts';
import { query } from './helpers/db.ts';
import { startReceiver, type Receiver } from './helpers/receiver.ts';
import { eventually, startTestService, TEST_MASTER_KEY, type TestService } from './helpers/service.ts';
import { runCli } from './helpers/process.ts';

/**
 * `hookrelay replay`: the endpoint's open dead letters re-queued in batches through
 * hookrelay.replay_webhook, run as a real child process against the database of a running
 * service, which then delivers what was re-queued.
 */

const SERVICE_ENV = { HOOKRELAY_CIRCUIT_FAILURE_THRESHOLD: '10000', HOOKRELAY_CIRCUIT_MIN_REQUESTS: '1000000' };

/** `node src/cli.ts replay …` with only the given hookrelay settings; killed by pid at teardown. */
const cli = (t: ExecutionContext, args: string[], env: Record<string, string>) => runCli(t, ['replay', ...args], env);

const envOf = (svc: TestService) => ({ DATABASE_URL: svc.dbUrl, HOOKRELAY_MASTER_KEY: TEST_MASTER_KEY });

async function createEndpoint(svc: TestService, url: string): Promise<string> {
  const res = await svc.api('/api/v1/endpoints', { method: 'POST', json: { url } });
  if (res.status !== 201) throw new Error(`endpoint create answered ${res.status}: ${await res.text()}`);
  return ((await res.json()) as { id: string }).id;
}

/** Submits `count` webhooks that die at their first attempt; returns their ids once all are dead. */
async function deadWebhooks(svc: TestService, rx: Receiver, endpointId: string, count: number): Promise<string[]> {
  rx.fallback = { status: 500, body: 'down' };
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const res = await svc.api('/api/v1/webhooks/deliver', { method: 'POST', json: { endpointId, payload: { i }, retryPolicy: { maxAttempts: 1 } } });
    if (res.status !== 202) throw new Error(`deliver answered ${res.status}`);
    ids.push(((await res.json()) as { id: string }).id);
  }
  await settle(svc, ids, 'dead');
  return ids;
}

function settle(svc: TestService, ids: string[], status: string) {
  return eventually(async () => {
    const [row] = await query(svc.dbUrl, 'SELECT count(*)::int AS n FROM hookrelay.webhooks WHERE id = ANY($1) AND status = $2', [ids, status]);
    return row!.n === ids.length ? true : undefined;
  }, 30_000, 100);
}

async function openLetters(svc: TestService, endpointId: string): Promise<number> {
  const [row] = await query(svc.dbUrl, 'SELECT count(*)::int AS n FROM hookrelay.dead_letters WHERE endpoint_id = $1 AND replayed_at IS NULL', [endpointId]);
  return row!.n;
}

const lastLine = (text: string) => text.trim().split('\n').pop();

test.serial('replay re-queues the endpoint\'s open dead letters in batches; the running service delivers them; a second run replays none', async (t) => {
  const svc = await startTestService(t, SERVICE_ENV);
  const rx = await startReceiver(t);
  const other = await startReceiver(t);
  const endpointId = await createEndpoint(svc, `${rx.url}/hooks`);
  const otherId = await createEndpoint(svc, `${other.url}/hooks`);
  const since = new Date(Date.now() - 60_000).toISOString();
  const ids = await deadWebhooks(svc, rx, endpointId, 7);
  await deadWebhooks(svc, other, otherId, 1);

  // A dry run counts and changes nothing.
  const dry = await cli(t, ['--endpoint', endpointId, '--since', since, '--dry-run'], envOf(svc));
  t.is(dry.code, 0, dry.stderr);
  t.is(dry.stdout, 'would replay 7 of 7 dead letters (dry run)\n');
  t.is(await openLetters(svc, endpointId), 7);

  rx.fallback = { status: 200, body: 'ok' };
  const run = await cli(t, ['--endpoint', endpointId, '--since', since, '--batch-size', '3'], envOf(svc));
  t.is(run.code, 0, run.stderr);
  t.is(run.stdout, 'replayed 7 of 7 dead letters\n', 'stdout holds only the summary');
  // stderr is not a terminal here: plain progress lines, no bar, ending with the whole count.
  t.notRegex(run.stderr, /\r|\[#/);
  t.regex(run.stderr, /^replay: 0 of 7 dead letters processed, 0 replayed$/m);
  t.is(lastLine(run.stderr), 'replay: 7 of 7 dead letters processed, 7 replayed');

  t.is(await openLetters(svc, endpointId), 0);
  t.is(await openLetters(svc, otherId), 1, 'another endpoint\'s dead letters are left alone');
  const by = await query(svc.dbUrl, 'SELECT DISTINCT replayed_by FROM hookrelay.dead_letters WHERE endpoint_id = $1', [endpointId]);
  t.is(by.length, 1);
  t.regex(by[0]!.replayed_by, /^cli:.+/);

  await rx.waitFor(14);
  await settle(svc, ids, 'delivered');

  const again = await cli(t, ['--endpoint', endpointId, '--since', since], envOf(svc));
  t.is(again.code, 0, again.stderr);
  t.is(again.stdout, 'replayed 0 of 0 dead letters\n');
  await new Promise((r) => setTimeout(r, 500));
  t.is(rx.received.length, 14, 'each webhook delivered once after the replay');
});

test.serial('replay honours --since, --until and --reason', async (t) => {
  const svc = await startTestService(t, SERVICE_ENV);
  const rx = await startReceiver(t);
  const endpointId = await createEndpoint(svc, `${rx.url}/hooks`);
  const ids = await deadWebhooks(svc, rx, endpointId, 6);
  // Dead on day 1 (two, one of them `gone`), day 2 (two), day 3 (two).
  const days = ['2025-03-01T10:00:00Z', '2025-03-01T11:00:00Z', '2025-03-02T10:00:00Z', '2025-03-02T11:00:00Z', '2025-03-03T10:00:00Z', '2025-03-03T11:00:00Z'];
  for (const [i, at] of days.entries()) await query(svc.dbUrl, 'UPDATE hookrelay.dead_letters SET dead_at = $2 WHERE webhook_id = $1', [ids[i], at]);
  await query(svc.dbUrl, `UPDATE hookrelay.dead_letters SET reason = 'gone' WHERE webhook_id = $1`, [ids[1]]);
  rx.fallback = { status: 200 };

  const reason = await cli(t, ['--endpoint', endpointId, '--since', '2025-03-01', '--reason', 'gone'], envOf(svc));
  t.is(reason.stdout, 'replayed 1 of 1 dead letters\n', reason.stderr);
  const window = await cli(t, ['--endpoint', endpointId, '--since', '2025-03-01T00:00:00Z', '--until', '2025-03-02T10:30:00+00:00'], envOf(svc));
  t.is(window.stdout, 'replayed 2 of 2 dead letters\n', window.stderr);
  await settle(svc, [ids[0]!, ids[1]!, ids[2]!], 'delivered');
  const [{ status }] = (await query(svc.dbUrl, 'SELECT status FROM hookrelay.webhooks WHERE id = $1', [ids[3]])) as [{ status: string }];
  t.is(status, 'dead', 'dead after --until: not replayed');
  const rest = await cli(t, ['--endpoint', endpointId, '--since', '2025-03-02'], envOf(svc));
  t.is(rest.stdout, 'replayed 3 of 3 dead letters\n', rest.stderr);
  await settle(svc, ids, 'delivered');
});

test.serial('replay refuses bad arguments with status 2 and an unknown endpoint with status 1', async (t) => {
  const svc = await startTestService(t, SERVICE_ENV);
  const env = envOf(svc);
  const cases: [string[], RegExp][] = [
    [['--since', '2025-01-01'], /replay needs --endpoint ID/],
    [['--endpoint', 'ep_x'], /replay needs --since TIME/],
    [['--endpoint', 'ep_x', '--since', 'last tuesday'], /--since "last tuesday" is not a time/],
    [['--endpoint', 'ep_x', '--since', '2025-02-30'], /--since "2025-02-30" is not a time/],
    [['--endpoint', 'ep_x', '--since', '2025-01-02', '--until', '2025-01-01'], /--until must be after --since/],
    [['--endpoint', 'ep_x', '--since', '1d', '--reason', 'bored'], /--reason must be one of attempts_exhausted, gone, endpoint_deleted/],
    [['--endpoint', 'ep_x', '--since', '1d', '--batch-size', '0'], /--batch-size must be an integer from 1 to 10000/],
    [['--endpoint', 'ep_x', '--since', '1d', '--colour'], /Unknown option '--colour'/],
  ];
  for (const [args, message] of cases) {
    const run = await cli(t, args, env);
    t.is(run.code, 2, `${args.join(' ')}: ${run.stderr}`);
    t.regex(run.stderr, message);
    t.regex(run.stderr, /usage: hookrelay replay --endpoint ID --since TIME/);
    t.is(run.stdout, '');
  }
  const unknown = await cli(t, ['--endpoint', 'ep_nope', '--since', '1d'], env);
  t.is(unknown.code, 1);
  t.regex(unknown.stderr, /no endpoint with id "ep_nope"/);
  t.is(unknown.stdout, '');
});

test.serial('replay works against the embedded database when DATABASE_URL is unset', async (t) => {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'hookrelay-replay-'));
  t.teardown(() => rm(dataDir, { recursive: true, force: true }));
  const run = await cli(t, ['--endpoint', 'ep_nope', '--since', '1d'], { HOOKRELAY_DATA_DIR: dataDir });
  // It started the embedded server, migrated it and looked the endpoint up there.
  t.is(run.code, 1, run.stderr);
  t.regex(run.stderr, /no endpoint with id "ep_nope"/);
  t.is(run.stdout, '');
});

test.serial('replayDeadLetters reports progress per batch and counts what a disabled endpoint holds', async (t) => {
  const svc = await startTestService(t, SERVICE_ENV);
  const rx = await startReceiver(t);
  const endpointId = await createEndpoint(svc, `${rx.url}/hooks`);
  const ids = await deadWebhooks(svc, rx, endpointId, 5);
  t.is((await svc.api(`/api/v1/endpoints/${endpointId}`, { method: 'PATCH', json: { enabled: false } })).status, 200);
  const db = svc.service.db.db;
  const filter = { endpointId, since: new Date(Date.now() - 3_600_000) };

  const dry = await replayDeadLetters(db, filter, { dryRun: true });
  t.deepEqual(dry, { total: 5, replayed: 5, held: 5, endpointEnabled: false, dryRun: true });

  const progress: ReplayProgress[] = [];
  const result = await replayDeadLetters(db, filter, { batchSize: 2, by: 'test', onProgress: (p) => progress.push(p) });
  t.deepEqual(result, { total: 5, replayed: 5, held: 5, endpointEnabled: false, dryRun: false });
  t.deepEqual(progress.map((p) => [p.processed, p.replayed, p.total]), [[0, 0, 5], [2, 2, 5], [4, 4, 5], [5, 5, 5]]);
  t.is(summaryLine(result), 'replayed 5 of 5 dead letters');
  const rows = await query(svc.dbUrl, 'SELECT status FROM hookrelay.webhooks WHERE id = ANY($1)', [ids]);
  t.deepEqual(rows.map((r) => r.status), ['held', 'held', 'held', 'held', 'held']);

  // A re-run finds nothing open.
  const none = await replayDeadLetters(db, filter, { batchSize: 5 });
  t.deepEqual(none, { total: 0, replayed: 0, held: 0, endpointEnabled: false, dryRun: false });

  await t.throwsAsync(replayDeadLetters(db, { ...filter, endpointId: 'ep_nope' }), { instanceOf: ReplayError, message: /no endpoint/ });
  await t.throwsAsync(replayDeadLetters(db, filter, { batchSize: 0 }), { instanceOf: RangeError });
  t.is((await svc.api(`/api/v1/endpoints/${endpointId}`, { method: 'DELETE' })).status, 200);
  await t.throwsAsync(replayDeadLetters(db, filter), { instanceOf: ReplayError, message: /is deleted/ });
});

test('parseTime reads ISO 8601 (UTC without an offset) and times ago; refuses the rest', (t) => {
  const now = Date.parse('2025-06-15T12:00:00Z');
  const iso = (v: string) => parseTime(v, now)?.toISOString();
  t.is(iso('2025-01-01'), '2025-01-01T00:00:00.000Z');
  t.is(iso('2025-01-01T10:20'), '2025-01-01T10:20:00.000Z');
  t.is(iso('2025-01-01 10:20:30'), '2025-01-01T10:20:30.000Z');
  t.is(iso('2025-01-01T10:20:30.123456Z'), '2025-01-01T10:20:30.123Z');
  t.is(iso('2025-01-01T10:20:30+02:00'), '2025-01-01T08:20:30.000Z');
  t.is(iso('2025-01-01T10:20:30-0130'), '2025-01-01T11:50:30.000Z');
  t.is(iso('2025-01-01T10:20:30+05'), '2025-01-01T05:20:30.000Z');
  t.is(iso('2024-02-29'), '2024-02-29T00:00:00.000Z');
  t.is(iso('30m'), '2025-06-15T11:30:00.000Z');
  t.is(iso('12h'), '2025-06-15T00:00:00.000Z');
  t.is(iso('7d'), '2025-06-08T12:00:00.000Z');
  for (const bad of ['', 'yesterday', '2025-02-29', '2025-13-01', '2025-01-01T24:00', '2025-01-01T10:61', '2025/01/01', '1700000000', '-1d', '5y', '2025-01-01Z']) {
    t.is(parseTime(bad, now), undefined, JSON.stringify(bad));
  }
});

test('parseReplayArgs', (t) => {
  const now = Date.parse('2025-06-15T12:00:00Z');
  t.deepEqual(parseReplayArgs(['--endpoint', 'ep_1', '--since', '1h'], now), {
    filter: { endpointId: 'ep_1', since: new Date('2025-06-15T11:00:00Z'), until: undefined, reason: undefined },
    dryRun: false,
    batchSize: 500,
  });
  t.like(parseReplayArgs(['--endpoint=ep_1', '--since=2025-01-01', '--until=2025-01-02', '--reason=gone', '--dry-run', '--batch-size=50'], now), {
    filter: { endpointId: 'ep_1', since: new Date('2025-01-01T00:00:00Z'), until: new Date('2025-01-02T00:00:00Z'), reason: 'gone' },
    dryRun: true,
    batchSize: 50,
  });
  t.deepEqual(parseReplayArgs(['--help']), { help: true });
  t.like(parseReplayArgs(['--endpoint', ' ', '--since', '1h']), { error: 'replay needs --endpoint ID' });
  const extra = parseReplayArgs(['--endpoint', 'ep_1', '--since', '1h', 'extra']);
  t.true('error' in extra && /Unexpected argument 'extra'/.test(extra.error), JSON.stringify(extra));
});

function fakeStream(isTTY: boolean): { stream: PassThrough & { isTTY?: boolean; columns?: number }; text: () => string } {
  const stream = Object.assign(new PassThrough(), { isTTY, columns: 100 });
  let text = '';
  stream.on('data', (c: Buffer) => (text += c.toString('utf8')));
  return { stream, text: () => text };
}

test('progress: a redrawn bar on a terminal, throttled plain lines otherwise, the last state always shown', async (t) => {
  let clock = 0;
  const tty = fakeStream(true);
  const bar = progressDisplay(tty.stream, 1_000, () => clock);
  bar.update({ processed: 0, replayed: 0, total: 4 });
  clock += 500;
  bar.update({ processed: 2, replayed: 1, total: 4 });
  clock += 10;
  bar.update({ processed: 3, replayed: 2, total: 4 }); // within 100 ms: skipped
  clock += 10;
  bar.update({ processed: 4, replayed: 3, total: 4 }); // finished: always drawn
  bar.end();
  await new Promise((r) => setImmediate(r));
  const frames = tty.text().split('\r').filter(Boolean);
  t.is(frames.length, 3);
  t.regex(frames[0]!, /^\[-+\]   0% 0\/4 dead letters, 0 replayed\x1b\[K$/);
  t.regex(frames[1]!, /^\[#+-+\]  50% 2\/4 dead letters, 1 replayed/);
  t.regex(frames[2]!, /^\[#+\] 100% 4\/4 dead letters, 3 replayed\x1b\[K\n$/);

  clock = 0;
  const plain = fakeStream(false);
  const lines = progressDisplay(plain.stream, 1_000, () => clock);
  lines.update({ processed: 0, replayed: 0, total: 10 });
  clock += 200;
  lines.update({ processed: 5, replayed: 5, total: 10 }); // throttled
  clock += 200;
  lines.update({ processed: 8, replayed: 7, total: 10 }); // throttled; the run then stops short
  lines.end();
  await new Promise((r) => setImmediate(r));
  t.is(plain.text(), 'replay: 0 of 10 dead letters processed, 0 replayed\nreplay: 8 of 10 dead letters processed, 7 replayed\n');
});
