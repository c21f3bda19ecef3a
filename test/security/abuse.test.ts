import net from 'node:net';
import test, { type ExecutionContext } from 'ava';
import type { TestService } from '../helpers/service.ts';
import { sharedService } from './fixtures/shared-service.ts';
import { query } from '../helpers/db.ts';

/**
 * Hostile API clients against the whole service (startService from src/main.ts, so the real
 * HTTP server settings), over real sockets on 127.0.0.1.
 */

const DELIVER = '/api/v1/webhooks/deliver';
const NOWHERE = 'http://127.0.0.1:1/hook';

let svc: TestService;
const shared = sharedService();

test.before(async () => {
  svc = await shared.start({ HOOKRELAY_ROLES: 'api' });
});

test.after.always(() => shared.stop());

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function webhookCount(): Promise<number> {
  const rows = await query<{ n: string }>(svc.dbUrl, 'SELECT count(*)::text AS n FROM hookrelay.webhooks');
  return Number(rows[0]!.n);
}

/** The service still answers, and quickly. */
async function assertResponsive(t: ExecutionContext, withinMs = 2_000) {
  const started = Date.now();
  const health = await fetch(`${svc.url}/healthz`, { signal: AbortSignal.timeout(withinMs) });
  t.is(health.status, 200);
  const status = await svc.api('/api/v1/webhooks?limit=1', { signal: AbortSignal.timeout(withinMs) });
  t.is(status.status, 200);
  t.true(Date.now() - started < withinMs);
}

async function assertProblem(t: ExecutionContext, res: Response, status: number, code?: string) {
  t.is(res.status, status);
  t.regex(res.headers.get('content-type') ?? '', /application\/problem\+json/);
  const body = await res.json() as { code?: string; status?: number };
  t.is(body.status, status);
  if (code) t.is(body.code, code, JSON.stringify(body));
  return body;
}

interface RawConn {
  socket: net.Socket;
  /** Everything the server sent so far (latin1). */
  received: () => string;
  /** Resolves when the server closed its side (or the socket errored), with the time. */
  closed: Promise<number>;
  /** Resolves once the received text matches `re` (rejects after timeoutMs). */
  waitFor(re: RegExp, timeoutMs: number): Promise<string>;
}

async function rawConnect(t: ExecutionContext): Promise<RawConn> {
  const port = svc.service.port!;
  const socket = net.connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  t.teardown(() => socket.destroy());
  let data = '';
  const listeners = new Set<() => void>();
  socket.on('data', (c: Buffer) => {
    data += c.toString('latin1');
    for (const l of listeners) l();
  });
  socket.on('error', () => {});
  const closed = new Promise<number>((resolve) => {
    socket.once('close', () => resolve(Date.now()));
    socket.once('end', () => resolve(Date.now()));
  });
  return {
    socket,
    received: () => data,
    closed,
    waitFor(re, timeoutMs) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (re.test(data)) {
            listeners.delete(check);
            clearTimeout(timer);
            resolve(data);
          }
        };
        const timer = setTimeout(() => {
          listeners.delete(check);
          reject(new Error(`no ${re} within ${timeoutMs} ms; got ${JSON.stringify(data.slice(0, 300))}`));
        }, timeoutMs);
        listeners.add(check);
        check();
      });
    },
  };
}

function write(socket: net.Socket, chunk: string | Buffer): Promise<boolean> {
  return new Promise((resolve) => {
    if (socket.destroyed || !socket.writable) return resolve(false);
    socket.write(chunk, (err) => resolve(!err));
  });
}

// ---------------------------------------------------------------------------------------------
// Body limits

test.serial('a chunked body over the limit (no Content-Length) is 413 while it is still being sent; nothing is stored', async (t) => {
  const before = await webhookCount();
  const conn = await rawConnect(t);
  const prefix = `{"url":"${NOWHERE}","payload":"`;
  await write(conn.socket, [
    `POST ${DELIVER} HTTP/1.1`,
    'Host: 127.0.0.1',
    `Authorization: Bearer ${svc.token}`,
    'Content-Type: application/json',
    'Transfer-Encoding: chunked',
    '', '',
  ].join('\r\n'));
  await write(conn.socket, `${prefix.length.toString(16)}\r\n${prefix}\r\n`);
  // 8 MiB in 64 KiB chunks, 10 ms apart (≈ 1.3 s if the server listened to all of it).
  const chunk = 'a'.repeat(64 * 1024);
  const totalChunks = 128;
  let sentChunks = 0;
  let answeredAfter: number | undefined;
  const answered = conn.waitFor(/^HTTP\/1\.1 \d{3}[^\r]*\r\n[\s\S]*?\r\n\r\n/, 15_000).then(() => {
    answeredAfter = sentChunks;
  });
  const started = Date.now();
  while (sentChunks < totalChunks && answeredAfter === undefined) {
    const ok = await write(conn.socket, `${chunk.length.toString(16)}\r\n${chunk}\r\n`);
    if (!ok) break;
    sentChunks += 1;
    await sleep(10);
  }
  await answered;
  const head = conn.received();
  t.regex(head, /^HTTP\/1\.1 413 /, head.slice(0, 200));
  t.regex(head, /payload_too_large/);
  t.log(`413 after ${answeredAfter} of ${totalChunks} 64 KiB chunks (${Date.now() - started} ms)`);
  t.true(answeredAfter! < totalChunks, 'the answer came before the client finished sending');
  // The limit is 256 KiB + 64 KiB of envelope: the answer should come within a few chunks of it.
  t.true(answeredAfter! <= 16, `answered after ${answeredAfter} chunks`);
  // The connection is not held open for the rest of the upload: the server closes it (or
  // stops it being usable) promptly, although the client has not finished.
  const headEnd = head.indexOf('\r\n\r\n');
  t.log(`response head: ${JSON.stringify(head.slice(0, headEnd))}`);
  // The server must not keep reading the rest of the upload: either it closes the connection
  // (Connection: close, then FIN) or it stops reading, so the client cannot push the remaining
  // ~7 MiB through within 3 s.
  const closedAt = await Promise.race([conn.closed, sleep(3_000).then(() => undefined)]);
  if (closedAt === undefined) {
    let pushed = 0;
    const pushStarted = Date.now();
    const rest = Buffer.from(`${chunk.length.toString(16)}\r\n${chunk}\r\n`);
    while (pushed < totalChunks - answeredAfter! && Date.now() - pushStarted < 3_000 && !conn.socket.destroyed) {
      if (!conn.socket.write(rest)) {
        const drained = await Promise.race([new Promise((r) => conn.socket.once('drain', () => r(true))), sleep(3_000 - (Date.now() - pushStarted)).then(() => false)]);
        if (!drained) break;
      }
      pushed += 1;
    }
    t.log(`connection still open 3 s after the 413; the client could push ${pushed} more chunks (of ${totalChunks - answeredAfter!}) in 3 s`);
    t.true(pushed < totalChunks - answeredAfter!, 'the server went on reading the whole upload after refusing it');
  } else {
    t.log('the server closed the connection after the 413');
  }
  t.is(await webhookCount(), before);
  await assertResponsive(t);
});

test.serial('a Content-Length that claims 10 bytes but is followed by more: 400, no hang, no crash, nothing stored', async (t) => {
  const before = await webhookCount();
  const conn = await rawConnect(t);
  const body = JSON.stringify({ url: NOWHERE, payload: { a: 1 } });
  await write(conn.socket, [
    `POST ${DELIVER} HTTP/1.1`,
    'Host: 127.0.0.1',
    `Authorization: Bearer ${svc.token}`,
    'Content-Type: application/json',
    'Content-Length: 10',
    '', body,
  ].join('\r\n'));
  const text = await conn.waitFor(/^HTTP\/1\.1 \d{3}/, 5_000);
  // The first 10 bytes are not a JSON document.
  t.regex(text, /^HTTP\/1\.1 400 /);
  // The rest is read as a second request, which is not HTTP: the server refuses it and closes.
  const closedAt = await Promise.race([conn.closed, sleep(5_000).then(() => undefined)]);
  t.not(closedAt, undefined, 'the connection was closed after the garbage that followed');
  t.is(await webhookCount(), before);
  await assertResponsive(t);
});

test.serial('a Content-Length that claims more than is sent does not block other clients; closing it leaves the service healthy', async (t) => {
  const before = await webhookCount();
  const conn = await rawConnect(t);
  await write(conn.socket, [
    `POST ${DELIVER} HTTP/1.1`,
    'Host: 127.0.0.1',
    `Authorization: Bearer ${svc.token}`,
    'Content-Type: application/json',
    'Content-Length: 100000',
    '', '{"url":"http://127.0.0.1:1/x",',
  ].join('\r\n'));
  await sleep(300);
  // The server is waiting for the rest of the body; everyone else is served meanwhile.
  t.is(conn.received(), '');
  await assertResponsive(t);
  conn.socket.destroy();
  await sleep(100);
  t.is(await webhookCount(), before);
  await assertResponsive(t);
});

// ---------------------------------------------------------------------------------------------
// Prototype pollution

const before = () => ({ url: NOWHERE, payload: { ok: true } });

test.serial('__proto__ at the top level of the request is a 400 problem and pollutes nothing', async (t) => {
  const count = await webhookCount();
  const raw = `{"__proto__": {"polluted": true, "url": "http://127.0.0.1:1/evil"}, "url": "${NOWHERE}", "payload": 1}`;
  const res = await svc.api(DELIVER, { method: 'POST', headers: { 'content-type': 'application/json' }, body: raw });
  await assertProblem(t, res, 400);
  // The service runs in this process: its Object.prototype is ours.
  t.is(({} as Record<string, unknown>).polluted, undefined);
  t.is(await webhookCount(), count);
  const ok = await svc.api(DELIVER, { method: 'POST', json: before() });
  t.is(ok.status, 202);
});

test.serial('constructor.prototype at the top level is a 400 problem and pollutes nothing', async (t) => {
  const raw = `{"constructor": {"prototype": {"polluted": true}}, "url": "${NOWHERE}", "payload": 1}`;
  const res = await svc.api(DELIVER, { method: 'POST', headers: { 'content-type': 'application/json' }, body: raw });
  await assertProblem(t, res, 400);
  t.is(({} as Record<string, unknown>).polluted, undefined);
});

test.serial('__proto__ inside retryPolicy is a 400 problem; it cannot smuggle in a policy', async (t) => {
  const raw = `{"url": "${NOWHERE}", "payload": 1, "retryPolicy": {"__proto__": {"maxAttempts": 100, "polluted": true}}}`;
  const res = await svc.api(DELIVER, { method: 'POST', headers: { 'content-type': 'application/json' }, body: raw });
  await assertProblem(t, res, 400);
  t.is(({} as Record<string, unknown>).polluted, undefined);
  t.is(({} as Record<string, unknown>).maxAttempts, undefined);
});

test.serial('__proto__ as a header with an object value is a 400 problem', async (t) => {
  const raw = `{"url": "${NOWHERE}", "payload": 1, "headers": {"__proto__": {"polluted": "yes"}}}`;
  const res = await svc.api(DELIVER, { method: 'POST', headers: { 'content-type': 'application/json' }, body: raw });
  await assertProblem(t, res, 400);
  t.is(({} as Record<string, unknown>).polluted, undefined);
});

test.serial('__proto__ anywhere inside the payload is refused as a 400 problem (the JSON parser rejects proto poisoning); nothing polluted or stored', async (t) => {
  const count = await webhookCount();
  for (const payload of ['{"__proto__":{"polluted":true}}', '{"nested":[{"__proto__":{"isAdmin":true}}]}', '[1,{"a":{"__proto__":{"polluted":1}}}]']) {
    const res = await svc.api(DELIVER, { method: 'POST', headers: { 'content-type': 'application/json' }, body: `{"url": "${NOWHERE}/proto", "payload": ${payload}}` });
    const body = await assertProblem(t, res, 400);
    t.log(`${payload} → 400 ${(body as { code?: string }).code}`);
  }
  t.is(({} as Record<string, unknown>).polluted, undefined);
  t.is(({} as Record<string, unknown>).isAdmin, undefined);
  t.is(await webhookCount(), count);
  // A normal request behaves as before.
  const ok = await svc.api(DELIVER, { method: 'POST', json: before() });
  t.is(ok.status, 202);
  await assertResponsive(t);
});

test.serial('constructor and prototype keys inside the payload are plain data: stored and echoed as sent, nothing polluted', async (t) => {
  const payload = '{"constructor":{"prototype":{"polluted":true}},"prototype":{"polluted":true},"nested":[{"constructor":"x"}]}';
  const raw = `{"url": "${NOWHERE}/ctor", "payload": ${payload}, "retryPolicy": {"maxAttempts": 1}}`;
  const res = await svc.api(DELIVER, { method: 'POST', headers: { 'content-type': 'application/json' }, body: raw });
  t.is(res.status, 202);
  const { id } = await res.json() as { id: string };
  t.is(({} as Record<string, unknown>).polluted, undefined);
  t.is(typeof ({}).constructor, 'function');
  const rows = await query<{ body: string }>(svc.dbUrl, 'SELECT body FROM hookrelay.webhooks WHERE id = $1', [id]);
  // The exact bytes that will be sent keep the keys as keys.
  t.is(rows[0]!.body, payload);
  const got = await svc.api(`/api/v1/webhooks/${id}`);
  t.is(got.status, 200);
  t.deepEqual((await got.json() as { payload: unknown }).payload, JSON.parse(payload));
  await assertResponsive(t);
});

test.serial('__proto__ as a header name with a string value is refused or sent as a literal header, never merged into an object prototype', async (t) => {
  const raw = `{"url": "${NOWHERE}/proto-header", "payload": 1, "headers": {"__proto__": "x", "X-Ok": "1"}, "retryPolicy": {"maxAttempts": 1}}`;
  const res = await svc.api(DELIVER, { method: 'POST', headers: { 'content-type': 'application/json' }, body: raw });
  t.log(`status ${res.status}`);
  t.true(res.status === 202 || res.status === 400, `status ${res.status}`);
  if (res.status === 202) {
    const { id } = await res.json() as { id: string };
    const rows = await query<{ headers: Record<string, string> }>(svc.dbUrl, 'SELECT headers FROM hookrelay.webhooks WHERE id = $1', [id]);
    t.deepEqual(Object.keys(rows[0]!.headers).sort(), ['X-Ok', '__proto__']);
  } else {
    await assertProblem(t, res, 400);
  }
  t.is(Object.getPrototypeOf({}), Object.prototype);
  t.is(({} as Record<string, unknown>).x, undefined);
});

// ---------------------------------------------------------------------------------------------
// Pathological JSON

test.serial('a payload nested 10 000 deep is a 400 problem and the service stays up', async (t) => {
  const count = await webhookCount();
  const payload = '['.repeat(10_000) + ']'.repeat(10_000);
  const raw = `{"url": "${NOWHERE}", "payload": ${payload}}`;
  const res = await svc.api(DELIVER, { method: 'POST', headers: { 'content-type': 'application/json' }, body: raw });
  await assertProblem(t, res, 400);
  const objects = '{"a":'.repeat(10_000) + '1' + '}'.repeat(10_000);
  const res2 = await svc.api(DELIVER, { method: 'POST', headers: { 'content-type': 'application/json' }, body: `{"url": "${NOWHERE}", "payload": ${objects}}` });
  await assertProblem(t, res2, 400);
  t.is(await webhookCount(), count);
  await assertResponsive(t);
});

test.serial('a payload with 100 000 keys: refused by size (413) with the default limit; the service stays responsive', async (t) => {
  const count = await webhookCount();
  const keys: string[] = [];
  for (let i = 0; i < 100_000; i++) keys.push(`"k${i}":0`);
  const payload = `{${keys.join(',')}}`;
  t.log(`100 000 keys: ${payload.length} bytes`);
  const started = Date.now();
  const res = await svc.api(DELIVER, { method: 'POST', headers: { 'content-type': 'application/json' }, body: `{"url": "${NOWHERE}", "payload": ${payload}}` });
  t.log(`answered ${res.status} in ${Date.now() - started} ms`);
  await assertProblem(t, res, 413, 'payload_too_large');
  t.is(await webhookCount(), count);
  await assertResponsive(t);
});

test.serial('a payload with more than 10 000 keys is refused (400 naming payload), 10 000 are accepted, and the service stays responsive', async (t) => {
  const build = (n: number) => `{${Array.from({ length: n }, (_, i) => `"k${i}":0`).join(',')}}`;
  const started = Date.now();
  // While it is being handled, another client is served.
  const [res, health] = await Promise.all([
    svc.api(DELIVER, { method: 'POST', headers: { 'content-type': 'application/json' }, body: `{"url": "${NOWHERE}/many-keys", "payload": ${build(20_000)}, "retryPolicy": {"maxAttempts": 1}}` }),
    fetch(`${svc.url}/healthz`, { signal: AbortSignal.timeout(3_000) }),
  ]);
  const took = Date.now() - started;
  t.log(`20 000 keys: ${res.status} in ${took} ms`);
  t.is(res.status, 400);
  const problem = (await res.json()) as { errors: { field: string }[] };
  t.is(problem.errors[0]?.field, 'payload');
  t.is(health.status, 200);
  const ok = await svc.api(DELIVER, { method: 'POST', headers: { 'content-type': 'application/json' }, body: `{"url": "${NOWHERE}/many-keys", "payload": ${build(10_000)}, "retryPolicy": {"maxAttempts": 1}}` });
  t.is(ok.status, 202);
  await assertResponsive(t);
});

// ---------------------------------------------------------------------------------------------
// Header injection

for (const [label, value] of [
  ['CR LF', 'a\r\nX-Injected: 1'],
  ['a bare LF', 'a\nX-Injected: 1'],
  ['NUL', 'a\u0000b'],
  ['DEL', 'a\u007fb'],
  ['a vertical tab', 'a\u000bb'],
  ['a character beyond Latin-1 (U+2028)', 'a\u2028b'],
  ['a character beyond Latin-1 (U+0100)', 'a\u0100b'],
] as const) {
  test.serial(`a webhook header value with ${label} is a 400 problem naming it; nothing is stored`, async (t) => {
    const count = await webhookCount();
    const res = await svc.api(DELIVER, { method: 'POST', json: { url: NOWHERE, payload: 1, headers: { 'X-A': value } } });
    const body = await assertProblem(t, res, 400) as { errors?: { field: string }[] };
    t.true((body.errors ?? []).some((e) => e.field === 'headers.X-A'), JSON.stringify(body));
    t.is(await webhookCount(), count);
  });
}

test.serial('an endpoint header value with CR LF or NUL is a 400 problem; nothing is stored', async (t) => {
  for (const value of ['a\r\nX-Injected: 1', 'a\u0000b']) {
    const res = await svc.api('/api/v1/endpoints', { method: 'POST', json: { url: `${NOWHERE}/ep-inject`, headers: { 'X-A': value } } });
    await assertProblem(t, res, 400);
  }
  const rows = await query(svc.dbUrl, "SELECT id FROM hookrelay.endpoints WHERE url LIKE '%ep-inject%'");
  t.is(rows.length, 0);
});

test.serial('a header name with CR LF is a 400 problem', async (t) => {
  const res = await svc.api(DELIVER, { method: 'POST', json: { url: NOWHERE, payload: 1, headers: { 'X-A\r\nX-Injected': '1' } } });
  await assertProblem(t, res, 400);
});

// ---------------------------------------------------------------------------------------------
// Slow clients (these take the longest: last)

test.serial('a client that sends its headers one byte per second is cut off by headersTimeout (10 s)', async (t) => {
  t.timeout(30_000);
  const conn = await rawConnect(t);
  const started = Date.now();
  const head = `POST ${DELIVER} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${svc.token}\r\nContent-Type: application/json\r\nX-Padding: ${'p'.repeat(100)}\r\n\r\n`;
  let closedAt: number | undefined;
  void conn.closed.then((at) => { closedAt = at; });
  // At most 22 s of dripping: the request line and headers are 200+ bytes, never finished.
  for (let i = 0; i < head.length && closedAt === undefined && Date.now() - started < 22_000; i++) {
    const ok = await write(conn.socket, head[i]!);
    if (!ok) break;
    await sleep(1_000);
  }
  if (closedAt === undefined) closedAt = await Promise.race([conn.closed, sleep(500).then(() => undefined)]);
  const after = closedAt === undefined ? undefined : closedAt - started;
  t.log(`connection closed by the server after ${after ?? 'more than 22 000'} ms; it answered ${JSON.stringify(conn.received().split('\r\n')[0] ?? '')}`);
  t.not(after, undefined, 'the server did not cut the slow client within 22 s');
  // headersTimeout is 10 s; allow a few seconds for the server's check interval.
  t.true(after !== undefined && after >= 9_000 && after <= 15_000, `cut after ${after} ms`);
  await assertResponsive(t);
});
