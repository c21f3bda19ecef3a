import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import net, { type AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import test, { type ExecutionContext } from 'ava';
import { newSecret, signatureHeaders, type SignatureAlgorithm, type SigningKey } from '../../src/delivery/sign.ts';
import { eventually, startTestService, type TestService } from '../helpers/service.ts';

/**
 * The receivers in examples/receiver/ are what users copy, so they are tested as users run
 * them: `node <file>` as a child process, fed real deliveries by a real hookrelay, and forged
 * requests over real sockets. An example "accepted" a delivery when it answered 204 and printed
 * `verified <webhook-id>`; anything else it must answer 400 without printing.
 */

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const exampleFile = (name: string) => fileURLToPath(new URL(`../../examples/receiver/${name}`, import.meta.url));

/** A port that was free a moment ago: the example must be told its port before it starts. */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

interface Example {
  url: string;
  /** Lines printed on stdout so far. */
  lines: string[];
  waitForLine(line: string, timeoutMs?: number): Promise<void>;
}

async function startExample(t: ExecutionContext, name: string, port: number, env: Record<string, string>): Promise<Example> {
  const base: NodeJS.ProcessEnv = { ...process.env };
  delete base.HOOKRELAY_SECRET;
  delete base.HOOKRELAY_SECRETS;
  const child = spawn(process.execPath, [exampleFile(name)], { cwd: ROOT, env: { ...base, PORT: String(port), ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      process.kill(child.pid!, 'SIGKILL');
      await exited;
    }
  });
  const lines: string[] = [];
  let rest = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    const parts = (rest + chunk.toString('utf8')).split('\n');
    rest = parts.pop()!;
    lines.push(...parts);
  });
  child.stderr!.on('data', (chunk: Buffer) => { stderr += chunk.toString('utf8'); });
  const url = `http://127.0.0.1:${port}`;
  const alive = () => {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${name} exited: ${stderr.slice(-2000)}`);
  };
  // Ready once it answers; an unsigned request is also the first check that it refuses one.
  const first = await eventually(async () => {
    alive();
    return fetch(url, { method: 'POST', body: '{}' }).catch(() => undefined);
  }, 15_000, 50);
  t.is(first.status, 400, `${name} answers an unsigned request with 400`);
  return {
    url,
    lines,
    waitForLine: (line, timeoutMs = 20_000) => eventually(async () => {
      alive();
      return lines.includes(line) ? true : undefined;
    }, timeoutMs).then(() => undefined),
  };
}

async function submit(svc: TestService, body: unknown): Promise<{ id: string; endpointId: string }> {
  const res = await svc.api('/api/v1/webhooks/deliver', { method: 'POST', json: body });
  const json = (await res.json()) as any;
  if (res.status !== 202) throw new Error(`deliver answered ${res.status}: ${JSON.stringify(json)}`);
  return json;
}

function settled(svc: TestService, id: string): Promise<any> {
  return eventually(async () => {
    const s = (await (await svc.api(`/api/v1/webhooks/${id}`)).json()) as any;
    return s.status === 'delivered' || s.status === 'dead' ? s : undefined;
  });
}

/** A request as hookrelay would send it, signed with `keys`, sent straight to the example. */
async function post(url: string, opts: { id: string; keys: SigningKey[]; algorithm?: SignatureAlgorithm; family?: 'webhook-' | 'x-webhook-' | 'both'; body?: string; sentBody?: string; ageSeconds?: number }) {
  const body = opts.body ?? `{"id":${JSON.stringify(opts.id)},"note":"ünïcødé ✓"}`;
  const all = signatureHeaders({ webhookId: opts.id, timestamp: Math.floor(Date.now() / 1000) - (opts.ageSeconds ?? 0), body, keys: opts.keys, algorithm: opts.algorithm });
  const family = opts.family ?? 'both';
  const headers = Object.fromEntries(Object.entries(all).filter(([k]) => family === 'both' || k.startsWith(family)));
  const res = await fetch(url, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: opts.sentBody ?? body });
  return { status: res.status, text: await res.text() };
}

/**
 * The real path: a first webhook registers the endpoint (its secret is needed to start the
 * example) and is refused while nothing listens; hookrelay retries it, so once the example is
 * up both that one and a second webhook end `delivered`, and the example saw both.
 */
async function realDeliveries(t: ExecutionContext, name: string, env: (secret: string) => Record<string, string>) {
  const svc = await startTestService(t);
  const port = await freePort();
  const target = `http://127.0.0.1:${port}/hooks`;
  const retryPolicy = { maxAttempts: 50, baseDelayMs: 100, backoffFactor: 2, maxDelayMs: 400 };
  const first = await submit(svc, { url: target, payload: { n: 1, note: 'before the receiver was up' }, retryPolicy });

  const secretRes = await svc.api(`/api/v1/endpoints/${first.endpointId}/secret`);
  t.is(secretRes.status, 200);
  const { secret } = (await secretRes.json()) as { secret: string };
  t.regex(secret, /^whsec_/);

  const example = await startExample(t, name, port, env(secret));
  // Formatting and non-ASCII that a JSON round trip on the receiver would not reproduce.
  const second = await submit(svc, { url: target, payload: { n: 2, text: 'ünïcødé ✓ "quoted" \\ slash', list: [1.5, null, true] }, retryPolicy });
  t.is(second.endpointId, first.endpointId);
  for (const { id } of [first, second]) {
    const detail = await settled(svc, id);
    t.is(detail.status, 'delivered', `${id}: ${JSON.stringify(detail.attempts?.at(-1))}`);
    t.is(detail.attempts.at(-1).statusCode, 204);
    await example.waitForLine(`verified ${id}`);
  }

  // Forgeries straight at the example: 400, nothing printed, nothing about the secret echoed.
  const forged = [
    await post(example.url, { id: 'msg_forged_random', keys: [{ id: 'x', secret: newSecret() }] }),
    await post(example.url, { id: 'msg_forged_tampered', keys: [{ id: 'k', secret }], sentBody: '{"n":999}' }),
    await post(example.url, { id: 'msg_forged_stale', keys: [{ id: 'k', secret }], ageSeconds: 600 }),
    await post(example.url, { id: 'msg_forged_future', keys: [{ id: 'k', secret }], ageSeconds: -600 }),
  ];
  const handmade = await fetch(example.url, {
    method: 'POST',
    headers: { 'webhook-id': 'msg_forged_handmade', 'webhook-timestamp': String(Math.floor(Date.now() / 1000)), 'webhook-signature': `v1,${randomBytes(32).toString('base64')}` },
    body: '{}',
  });
  forged.push({ status: handmade.status, text: await handmade.text() });
  for (const f of forged) {
    t.is(f.status, 400);
    t.false(f.text.includes(secret) || f.text.includes(secret.slice('whsec_'.length)));
  }
  // A correctly signed request right after the forgeries is still accepted: the example is fine.
  t.is((await post(example.url, { id: 'msg_direct_ok', keys: [{ id: 'k', secret }] })).status, 204);
  await example.waitForLine('verified msg_direct_ok');
  t.deepEqual(example.lines.filter((l) => l.includes('forged')), []);
  t.deepEqual(example.lines.filter((l) => l.startsWith('verified ')).sort(), [`verified ${first.id}`, `verified ${second.id}`, 'verified msg_direct_ok'].sort());
  return { secret, example };
}

test('standardwebhooks.ts verifies real hookrelay deliveries and refuses forgeries', async (t) => {
  await realDeliveries(t, 'standardwebhooks.ts', (secret) => ({ HOOKRELAY_SECRET: secret }));
});

test('node-crypto.ts verifies real hookrelay deliveries and refuses forgeries', async (t) => {
  // An unrelated secret listed first, as during a rotation: the endpoint's secret still matches.
  await realDeliveries(t, 'node-crypto.ts', (secret) => ({ HOOKRELAY_SECRETS: `${newSecret()},${secret}` }));
});

/**
 * What hookrelay sends for an hmac-sha512 endpoint and during a rotation, produced with
 * sign.ts (those settings are not taken from the API here). Key A is the retiring key the
 * receiver no longer has; B is the one it has; C is a second key the receiver also lists.
 */
const A = newSecret();
const B = newSecret();
const C = newSecret();
const a = { id: 'key_a', secret: A };
const b = { id: 'key_b', secret: B };
const c = { id: 'key_c', secret: C };

type DirectCase = { id: string; keys: SigningKey[]; algorithm?: SignatureAlgorithm; family?: 'webhook-' | 'x-webhook-' | 'both'; ageSeconds?: number; sentBody?: string; body?: string; accepted: boolean };

const nodeCryptoCases: DirectCase[] = [
  { id: 'msg_std_rotation', keys: [a, b], family: 'webhook-', accepted: true },
  { id: 'msg_std_rotation_b_first', keys: [b, a], family: 'webhook-', accepted: true },
  { id: 'msg_x_sha256_rotation', keys: [a, b], family: 'x-webhook-', accepted: true },
  { id: 'msg_x_sha512_rotation', keys: [a, b], algorithm: 'hmac-sha512', family: 'x-webhook-', accepted: true },
  { id: 'msg_x_sha512_b', keys: [b], algorithm: 'hmac-sha512', family: 'x-webhook-', accepted: true },
  { id: 'msg_both_sha512', keys: [a, b], algorithm: 'hmac-sha512', accepted: true },
  { id: 'msg_second_listed_secret', keys: [c], algorithm: 'hmac-sha512', family: 'x-webhook-', accepted: true },
  { id: 'msg_x_sha512_aged_ok', keys: [b], algorithm: 'hmac-sha512', family: 'x-webhook-', ageSeconds: 290, accepted: true },
  { id: 'msg_x_sha512_future_ok', keys: [b], algorithm: 'hmac-sha512', family: 'x-webhook-', ageSeconds: -290, accepted: true },
  // Raw bytes: a body no JSON serialiser would produce verifies as sent.
  { id: 'msg_raw_bytes', keys: [b], algorithm: 'hmac-sha512', family: 'x-webhook-', body: '{ "a" : 1.0,\n  "b": "\\u00fc" }', accepted: true },
  { id: 'msg_refused_std_old_key_only', keys: [a], family: 'webhook-', accepted: false },
  { id: 'msg_refused_x_sha512_old_key_only', keys: [a], algorithm: 'hmac-sha512', family: 'x-webhook-', accepted: false },
  { id: 'msg_refused_x_sha512_tampered', keys: [a, b], algorithm: 'hmac-sha512', family: 'x-webhook-', sentBody: '{"tampered":true}', accepted: false },
  { id: 'msg_refused_x_sha512_stale', keys: [b], algorithm: 'hmac-sha512', family: 'x-webhook-', ageSeconds: 310, accepted: false },
  { id: 'msg_refused_x_sha512_future', keys: [b], algorithm: 'hmac-sha512', family: 'x-webhook-', ageSeconds: -310, accepted: false },
  { id: 'msg_refused_std_stale', keys: [b], family: 'webhook-', ageSeconds: 310, accepted: false },
];

test('node-crypto.ts: sha512 X-Webhook signatures, rotation, tolerance, raw bytes', async (t) => {
  const example = await startExample(t, 'node-crypto.ts', await freePort(), { HOOKRELAY_SECRETS: ` ${B}, ${C} ` });
  for (const k of nodeCryptoCases) {
    const res = await post(example.url, k);
    t.is(res.status, k.accepted ? 204 : 400, k.id);
    t.is(res.text, '', `${k.id}: no details in the answer`);
  }
  const accepted = nodeCryptoCases.filter((k) => k.accepted).map((k) => `verified ${k.id}`);
  await example.waitForLine(accepted.at(-1)!);
  t.deepEqual(example.lines.filter((l) => l.startsWith('verified ')), accepted);

  // webhook-* is preferred when present: a valid sha512= beside it does not rescue a v1 set
  // signed only with a key the receiver does not have.
  const now = Math.floor(Date.now() / 1000);
  const std = signatureHeaders({ webhookId: 'msg_mixed_families', timestamp: now, body: '{}', keys: [a] });
  const x = signatureHeaders({ webhookId: 'msg_mixed_families', timestamp: now, body: '{}', keys: [b], algorithm: 'hmac-sha512' });
  const mixed = { 'webhook-id': std['webhook-id']!, 'webhook-timestamp': std['webhook-timestamp']!, 'webhook-signature': std['webhook-signature']!, 'x-webhook-id': x['x-webhook-id']!, 'x-webhook-timestamp': x['x-webhook-timestamp']!, 'x-webhook-signature': x['x-webhook-signature']! };
  t.is((await fetch(example.url, { method: 'POST', headers: mixed, body: '{}' })).status, 400);
  const { ['webhook-signature']: _dropped, ...xOnly } = mixed;
  t.is((await fetch(example.url, { method: 'POST', headers: xOnly, body: '{}' })).status, 204);

  // A repeated signature header reaches Node joined with ", ": one entry per copy.
  const both = signatureHeaders({ webhookId: 'msg_repeated_header', timestamp: Math.floor(Date.now() / 1000), body: '{}', keys: [a, b], algorithm: 'hmac-sha512' });
  const [xa, xb] = both['x-webhook-signature']!.split(',');
  const headers = new Headers({ 'x-webhook-id': both['x-webhook-id']!, 'x-webhook-timestamp': both['x-webhook-timestamp']! });
  headers.append('x-webhook-signature', xa!);
  headers.append('x-webhook-signature', xb!);
  t.is((await fetch(example.url, { method: 'POST', headers, body: '{}' })).status, 204);
  await example.waitForLine('verified msg_repeated_header');
  t.true(example.lines.includes('verified msg_mixed_families'));
  t.is(example.lines.filter((l) => l === 'verified msg_mixed_families').length, 1);
});

const standardCases: DirectCase[] = [
  { id: 'msg_rotation', keys: [a, b], accepted: true },
  { id: 'msg_sha512_endpoint_still_v1', keys: [b], algorithm: 'hmac-sha512', accepted: true },
  { id: 'msg_refused_old_key_only', keys: [a], accepted: false },
  { id: 'msg_refused_x_webhook_only', keys: [b], family: 'x-webhook-', accepted: false },
  { id: 'msg_refused_stale', keys: [b], ageSeconds: 310, accepted: false },
];

test('standardwebhooks.ts: rotation headers verify with the one key it has', async (t) => {
  const example = await startExample(t, 'standardwebhooks.ts', await freePort(), { HOOKRELAY_SECRET: B });
  for (const k of standardCases) {
    const res = await post(example.url, k);
    t.is(res.status, k.accepted ? 204 : 400, k.id);
    t.is(res.text, '');
  }
  const accepted = standardCases.filter((k) => k.accepted).map((k) => `verified ${k.id}`);
  await example.waitForLine(accepted.at(-1)!);
  t.deepEqual(example.lines.filter((l) => l.startsWith('verified ')), accepted);
});

test('an example without its secret refuses to start', async (t) => {
  for (const name of ['standardwebhooks.ts', 'node-crypto.ts']) {
    const base: NodeJS.ProcessEnv = { ...process.env, PORT: String(await freePort()) };
    delete base.HOOKRELAY_SECRET;
    delete base.HOOKRELAY_SECRETS;
    const child = spawn(process.execPath, [exampleFile(name)], { cwd: ROOT, env: base, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => { stderr += chunk.toString('utf8'); });
    t.teardown(() => {
      if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, 'SIGKILL');
    });
    const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
    t.not(code, 0, name);
    t.regex(stderr, /HOOKRELAY_SECRETS? /, name);
  }
});
