import net, { type AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import test, { type ExecutionContext } from 'ava';
import type { TestService } from '../helpers/service.ts';
import { eventually } from '../helpers/service.ts';
import { query } from '../helpers/db.ts';
import { sharedService } from './fixtures/shared-service.ts';

/**
 * Misbehaving receivers (raw TCP servers on 127.0.0.1) against the whole service: API,
 * queue, worker and sender, with a 1 s delivery deadline.
 */

let svc: TestService;
const shared = sharedService();

test.before(async () => {
  svc = await shared.start({ HOOKRELAY_DELIVERY_TIMEOUT_MS: '1000' });
});

test.after.always(() => shared.stop());

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const MiB = 1024 * 1024;

interface RawReceiver {
  url: string;
  port: number;
  /** The request heads received, in order. */
  heads: string[];
  /** Bytes written to each connection by the handler (as counted by `send`). */
  written: number[];
}

type OnRequest = (socket: net.Socket, head: string, n: number, count: (bytes: number) => void) => void;

/** A raw TCP "HTTP" server that hands each request's socket to `onRequest` once the head is in. */
async function rawReceiver(t: ExecutionContext, onRequest: OnRequest): Promise<RawReceiver> {
  const sockets = new Set<net.Socket>();
  const heads: string[] = [];
  const written: number[] = [];
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let data = '';
    socket.on('data', (chunk: Buffer) => {
      data += chunk.toString('latin1');
      // A connection may carry several requests (keep-alive); every head is one request.
      for (;;) {
        const end = data.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = data.slice(0, end);
        const length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
        if (data.length < end + 4 + length) return;
        data = data.slice(end + 4 + length);
        const n = heads.push(head) - 1;
        written[n] = 0;
        onRequest(socket, head, n, (bytes) => { written[n] = (written[n] ?? 0) + bytes; });
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => {
    for (const s of sockets) s.destroy();
    server.close(() => resolve());
  }));
  const port = (server.address() as AddressInfo).port;
  return { url: `http://127.0.0.1:${port}`, port, heads, written };
}

/** Writes `total` bytes of `fill` in 64 KiB chunks, waiting for drain, every `everyMs`; stops when the socket goes. */
async function stream(socket: net.Socket, total: number, everyMs: number, count: (bytes: number) => void): Promise<void> {
  const chunk = Buffer.alloc(64 * 1024, 'x');
  let sent = 0;
  while (sent < total && !socket.destroyed && socket.writable) {
    const piece = chunk.subarray(0, Math.min(chunk.length, total - sent));
    const flushed = socket.write(piece);
    sent += piece.length;
    count(piece.length);
    if (!flushed) {
      const ok = await Promise.race([new Promise((r) => socket.once('drain', () => r(true))), new Promise((r) => socket.once('close', () => r(false))), sleep(5_000).then(() => false)]);
      if (!ok) break;
    }
    if (everyMs) await sleep(everyMs);
  }
}

interface AttemptBody { number: number; durationMs: number; statusCode: number | null; outcome: string; errorClass: string | null; error: string | null; responseBody: string | null }
interface WebhookBody { id: string; status: string; attempts: AttemptBody[] }

async function deliver(url: string, payload: unknown = { hello: 'world' }): Promise<string> {
  const res = await svc.api('/api/v1/webhooks/deliver', { method: 'POST', json: { url, payload, retryPolicy: { maxAttempts: 1 } } });
  if (res.status !== 202) throw new Error(`deliver answered ${res.status}: ${await res.text()}`);
  return ((await res.json()) as { id: string }).id;
}

/** Waits until the webhook is delivered or dead (maxAttempts 1), and returns it with its attempts. */
async function settled(id: string, timeoutMs = 15_000): Promise<WebhookBody> {
  return eventually(async () => {
    const res = await svc.api(`/api/v1/webhooks/${id}`);
    const body = (await res.json()) as WebhookBody;
    return body.status === 'delivered' || body.status === 'dead' ? body : undefined;
  }, timeoutMs, 100);
}

/** The service still takes and delivers a webhook to a well-behaved receiver. */
async function assertStillWorks(t: ExecutionContext) {
  const good = await rawReceiver(t, (socket) => socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'));
  const w = await settled(await deliver(`${good.url}/good`));
  t.is(w.status, 'delivered');
  const health = await fetch(`${svc.url}/healthz`, { signal: AbortSignal.timeout(2_000) });
  t.is(health.status, 200);
}

function onlyAttempt(t: ExecutionContext, w: WebhookBody): AttemptBody {
  t.is(w.attempts.length, 1);
  return w.attempts[0]!;
}

// ---------------------------------------------------------------------------------------------

test.serial('a receiver that drips its body one byte every 200 ms is cut at the 1 s deadline: a timeout', async (t) => {
  const drip = await rawReceiver(t, (socket, _head, _n, count) => {
    socket.write('HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n');
    const timer = setInterval(() => {
      if (socket.destroyed) return clearInterval(timer);
      socket.write('x');
      count(1);
    }, 200);
    socket.on('close', () => clearInterval(timer));
  });
  const w = await settled(await deliver(`${drip.url}/drip`));
  const a = onlyAttempt(t, w);
  t.log(`drip: ${JSON.stringify(a)}; receiver wrote ${drip.written[0]} body bytes`);
  t.is(w.status, 'dead');
  t.is(a.outcome, 'failure');
  t.is(a.errorClass, 'timeout');
  t.true(a.durationMs >= 900 && a.durationMs < 3_000, `duration ${a.durationMs} ms`);
  t.true((drip.written[0] ?? 0) < 20, 'the socket was dropped at the deadline');
  await assertStillWorks(t);
});

test.serial('a 50 MiB answer: only the cap is read, the socket is dropped, and a 2xx counts as delivered', async (t) => {
  let closedAfter: number | undefined;
  const huge = await rawReceiver(t, (socket, _head, _n, count) => {
    socket.write('HTTP/1.1 200 OK\r\nContent-Length: 52428800\r\nContent-Type: text/plain\r\n\r\n');
    let total = 0;
    void stream(socket, 50 * MiB, 0, (b) => { total += b; count(b); }).then(() => { closedAfter = total; });
  });
  const w = await settled(await deliver(`${huge.url}/huge`));
  const a = onlyAttempt(t, w);
  t.is(w.status, 'delivered');
  t.is(a.outcome, 'success');
  t.is(a.statusCode, 200);
  t.is(a.responseBody?.length, 1024, 'the stored excerpt is 1 KiB');
  t.true(/^x+$/.test(a.responseBody ?? ''));
  await eventually(async () => (closedAfter === undefined ? undefined : true), 10_000);
  t.log(`50 MiB receiver: it could write ${(closedAfter! / MiB).toFixed(1)} MiB before the sender dropped the socket (duration ${a.durationMs} ms)`);
  // The sender reads 64 KiB; what else the receiver wrote sat in socket buffers.
  t.true(closedAfter! < 50 * MiB, 'the sender did not read the whole answer');
  await assertStillWorks(t);
});

test.serial('a Content-Length that claims more than is sent, then closes: a connection_reset failure, not a delivery', async (t) => {
  const liar = await rawReceiver(t, (socket) => {
    socket.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten..');
    setTimeout(() => socket.destroy(), 50);
  });
  const a = onlyAttempt(t, await settled(await deliver(`${liar.url}/lie-long`)));
  t.is(a.outcome, 'failure');
  t.is(a.errorClass, 'connection_reset');
  await assertStillWorks(t);
});

test.serial('a Content-Length that claims more than is sent, kept open: a timeout at the deadline', async (t) => {
  const liar = await rawReceiver(t, (socket) => {
    socket.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten..');
  });
  const a = onlyAttempt(t, await settled(await deliver(`${liar.url}/lie-long-open`)));
  t.is(a.outcome, 'failure');
  t.is(a.errorClass, 'timeout');
  t.true(a.durationMs < 3_000);
  await assertStillWorks(t);
});

test.serial('a Content-Length that claims less than is sent: the declared bytes are the answer, and the extra bytes do not poison the next delivery on that connection', async (t) => {
  const liar = await rawReceiver(t, (socket, _head, n) => {
    if (n === 0) socket.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 500 Smuggled\r\nContent-Length: 8\r\n\r\nsmuggled');
    else socket.write('HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond');
  });
  const first = onlyAttempt(t, await settled(await deliver(`${liar.url}/lie-short`)));
  t.is(first.outcome, 'success');
  t.is(first.responseBody, 'hello');
  const second = await settled(await deliver(`${liar.url}/lie-short`, { n: 2 }));
  const a = onlyAttempt(t, second);
  t.log(`second delivery to the lying receiver: ${JSON.stringify(a)}`);
  t.not(a.responseBody, 'smuggled', 'the bytes after the first answer were taken as the answer to the second request');
  t.not(a.statusCode, 500);
  await assertStillWorks(t);
});

test.serial('a gzip answer is not decompressed: the excerpt is the raw bytes, and accept-encoding: identity was sent', async (t) => {
  const plain = 'this text was gzipped by the receiver '.repeat(20);
  const zipped = gzipSync(plain);
  const gz = await rawReceiver(t, (socket) => {
    socket.write(`HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Type: text/plain\r\nContent-Length: ${zipped.length}\r\n\r\n`);
    socket.write(zipped);
  });
  const w = await settled(await deliver(`${gz.url}/gzip`));
  const a = onlyAttempt(t, w);
  t.is(w.status, 'delivered');
  t.regex(gz.heads[0]!, /\r\naccept-encoding: identity(\r\n|$)/i);
  t.false((a.responseBody ?? '').includes('gzipped by the receiver'), 'the body was decompressed');
  // The raw gzip magic (1f 8b) as stored: 0x1f, then 0x8b decoded as UTF-8 → U+FFFD.
  t.true((a.responseBody ?? '').startsWith('\u001f\uFFFD'), JSON.stringify(a.responseBody?.slice(0, 8)));
  t.true(Buffer.byteLength(a.responseBody ?? '') <= 1024);
});

const failures: [string, OnRequest | 'refused', string][] = [
  ['a reset (RST) after the request', (socket) => socket.resetAndDestroy(), 'connection_reset'],
  ['a close without any answer', (socket) => socket.destroy(), 'connection_reset'],
  ['a refused connection', 'refused', 'connection_refused'],
  ['a garbage status line', (socket) => socket.end('SSH-2.0-OpenSSH_9.6 not http\r\n\r\n'), 'invalid_response'],
  ['response headers over 16 KiB', (socket) => {
    socket.write(`HTTP/1.1 200 OK\r\n${Array.from({ length: 40 }, (_, i) => `X-Big-${i}: ${'b'.repeat(1000)}\r\n`).join('')}Content-Length: 2\r\n\r\nok`);
  }, 'invalid_response'],
  ['one header line of 1 MiB', (socket, _h, _n, count) => {
    socket.write('HTTP/1.1 200 OK\r\nX-Huge: ');
    void stream(socket, MiB, 0, count);
  }, 'invalid_response'],
  ['a redirect to a place the guard refuses', (socket) => socket.write('HTTP/1.1 302 Found\r\nLocation: http://169.254.169.254/latest/meta-data/\r\nContent-Length: 0\r\n\r\n'), 'redirect'],
];

for (const [what, onRequest, errorClass] of failures) {
  test.serial(`${what} is a recorded ${errorClass} failure, and the service keeps working`, async (t) => {
    let url: string;
    if (onRequest === 'refused') {
      const server = net.createServer();
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const { port } = server.address() as AddressInfo;
      await new Promise<void>((resolve) => server.close(() => resolve()));
      url = `http://127.0.0.1:${port}/refused`;
    } else {
      url = `${(await rawReceiver(t, onRequest)).url}/${errorClass}`;
    }
    const w = await settled(await deliver(url));
    const a = onlyAttempt(t, w);
    t.log(`${what}: ${JSON.stringify(a)}`);
    t.is(w.status, 'dead');
    t.is(a.outcome, 'failure');
    t.is(a.errorClass, errorClass, a.error ?? '');
    t.true(a.durationMs < 3_000);
    await assertStillWorks(t);
  });
}

test.serial('memory stays flat while 200 deliveries meet receivers that send 20 MiB slowly, garbage, resets and drips', async (t) => {
  t.timeout(90_000);
  const kinds: OnRequest[] = [
    // 200 with a 20 MiB body, 64 KiB every 5 ms (≈ 1.6 s for all of it; the deadline is 1 s).
    (socket, _h, _n, count) => {
      socket.write('HTTP/1.1 200 OK\r\nContent-Length: 20971520\r\n\r\n');
      void stream(socket, 20 * MiB, 5, count);
    },
    // 500 with a 20 MiB body as fast as the socket takes it.
    (socket, _h, _n, count) => {
      socket.write('HTTP/1.1 500 Internal Server Error\r\nContent-Length: 20971520\r\n\r\n');
      void stream(socket, 20 * MiB, 0, count);
    },
    // Garbage, endlessly: no status line ever completes.
    (socket, _h, _n, count) => void stream(socket, 20 * MiB, 5, count),
    // Chunked, never ending, slowly.
    (socket) => {
      socket.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n');
      const timer = setInterval(() => (socket.destroyed ? clearInterval(timer) : socket.write('1\r\nx\r\n')), 50);
      socket.on('close', () => clearInterval(timer));
    },
    (socket) => socket.resetAndDestroy(),
  ];
  const receivers = await Promise.all(kinds.map((k) => rawReceiver(t, k)));
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const before = process.memoryUsage();
  let peakRss = before.rss;
  const sampler = setInterval(() => { peakRss = Math.max(peakRss, process.memoryUsage().rss); }, 100);
  t.teardown(() => clearInterval(sampler));
  const started = Date.now();
  const ids: string[] = [];
  // A path of its own per webhook: every URL is its own endpoint, so no circuit opens and
  // every webhook is attempted at once.
  for (let i = 0; i < 200; i++) ids.push(await deliver(`${receivers[i % receivers.length]!.url}/m${i}`, { i }));
  const done = await eventually(async () => {
    const rows = await query<{ status: string; n: number }>(svc.dbUrl, "SELECT status, count(*)::int AS n FROM hookrelay.webhooks WHERE id = ANY($1) AND status IN ('delivered', 'dead') GROUP BY status", [ids]);
    const total = rows.reduce((s, r) => s + r.n, 0);
    return total === ids.length ? rows : undefined;
  }, 60_000, 250);
  clearInterval(sampler);
  gc?.();
  await sleep(500);
  const after = process.memoryUsage();
  const written = receivers.flatMap((r) => r.written).reduce((s, b) => s + (b ?? 0), 0);
  const classes = await query<{ error_class: string | null; n: number }>(svc.dbUrl, 'SELECT error_class, count(*)::int AS n FROM hookrelay.attempts WHERE webhook_id = ANY($1) GROUP BY error_class ORDER BY error_class', [ids]);
  const mib = (b: number) => `${(b / MiB).toFixed(1)} MiB`;
  t.log(`200 webhooks settled in ${Date.now() - started} ms: ${JSON.stringify(done)}; attempts by class ${JSON.stringify(classes)}`);
  t.log(`receivers wrote ${mib(written)} in all; global.gc ${gc ? 'available' : 'unavailable'}`);
  t.log(`rss before ${mib(before.rss)}, peak ${mib(peakRss)}, after ${mib(after.rss)} (growth ${mib(after.rss - before.rss)}); heapUsed before ${mib(before.heapUsed)}, after ${mib(after.heapUsed)}; external+arrayBuffers after ${mib(after.external + after.arrayBuffers)}`);
  t.true(after.rss - before.rss < 150 * MiB, `rss grew by ${mib(after.rss - before.rss)}`);
  t.true(peakRss - before.rss < 300 * MiB, `rss peaked ${mib(peakRss - before.rss)} above the start`);
  // The stored excerpts stay within 1 KiB whatever the receivers sent.
  const longest = await query<{ n: number | null }>(svc.dbUrl, 'SELECT max(octet_length(response_body))::int AS n FROM hookrelay.attempts WHERE webhook_id = ANY($1)', [ids]);
  t.true((longest[0]!.n ?? 0) <= 1024);
  await assertStillWorks(t);
});
