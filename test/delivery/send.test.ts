import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import net, { type AddressInfo } from 'node:net';
import test, { type ExecutionContext } from 'ava';
import { createSender, ERROR_CLASS, POOL_SHARD_SIZE, type ErrorClass, type SendRequest, type SendResult, type Sender } from '../../src/delivery/send.ts';
import { parseAllowList } from '../../src/delivery/address-policy.ts';

/** send() against real servers on 127.0.0.1: every receiver failure is a result, never a throw. */

function sender(t: ExecutionContext): Sender {
  const s = createSender({ allowNetworks: parseAllowList('127.0.0.0/8,::1/128') });
  t.teardown(() => s.close());
  return s;
}

interface Seen {
  /** The connection the request came on. */
  socket: object;
  method: string;
  path: string;
  rawHeaders: string[];
  body: Buffer;
}

/** An HTTP server on 127.0.0.1 that records requests and answers with `handler`. */
async function httpServer(t: ExecutionContext, handler: (req: IncomingMessage, res: ServerResponse, body: Buffer) => void) {
  const seen: Seen[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      seen.push({ socket: req.socket, method: req.method ?? '', path: req.url ?? '', rawHeaders: req.rawHeaders, body });
      handler(req, res, body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  }));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

/** A raw TCP server on 127.0.0.1: `onConnection` gets the socket and what the client sent so far. */
async function tcpServer(t: ExecutionContext, onRequest: (socket: net.Socket, head: string) => void) {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let data = '';
    let answered = false;
    socket.on('data', (chunk: Buffer) => {
      data += chunk.toString('latin1');
      if (!answered && data.includes('\r\n\r\n')) {
        answered = true;
        onRequest(socket, data);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => {
    for (const s of sockets) s.destroy();
    server.close(() => resolve());
  }));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, sockets };
}

const request = (url: string, over: Partial<SendRequest> = {}): SendRequest => ({
  url,
  headers: { 'content-type': 'application/json' },
  body: '{"hello":"world"}',
  timeoutMs: 5_000,
  maxResponseBytes: 64 * 1024,
  ...over,
});

function assertFailure(t: ExecutionContext, result: SendResult, errorClass: ErrorClass) {
  t.false(result.ok);
  t.is(result.errorClass, errorClass, `error: ${result.error}`);
  t.is(typeof result.error, 'string');
  t.true((result.error ?? '').length > 0);
  t.true(Number.isInteger(result.durationMs) && result.durationMs >= 0);
}

test('a 2xx answer is ok, with its status, headers and body', async (t) => {
  const srv = await httpServer(t, (_req, res) => {
    res.writeHead(201, { 'x-answer': '42', 'content-type': 'text/plain' });
    res.end('created');
  });
  const result = await sender(t).send(request(`${srv.url}/in`));
  t.true(result.ok);
  t.is(result.statusCode, 201);
  t.is(result.errorClass, null);
  t.is(result.error, null);
  t.is(result.responseBody.toString(), 'created');
  t.is(result.responseHeaders['x-answer'], '42');
  t.is(result.responseHeaders['content-type'], 'text/plain');
  t.true(result.durationMs >= 0 && result.durationMs < 5_000);
  t.is(srv.seen.length, 1);
  t.is(srv.seen[0]!.method, 'POST');
  t.is(srv.seen[0]!.path, '/in');
});

for (const status of [200, 202, 204, 299]) {
  test(`status ${status} is ok`, async (t) => {
    const srv = await httpServer(t, (_req, res) => {
      res.writeHead(status);
      res.end();
    });
    const result = await sender(t).send(request(srv.url));
    t.true(result.ok);
    t.is(result.statusCode, status);
    t.is(result.errorClass, null);
    t.is(result.responseBody.length, 0);
  });
}

for (const status of [400, 401, 404, 410, 429, 500, 502, 503, 599]) {
  test(`status ${status} is an http_status failure with the body kept`, async (t) => {
    const srv = await httpServer(t, (_req, res) => {
      res.writeHead(status, { 'retry-after': '5' });
      res.end(`nope ${status}`);
    });
    const result = await sender(t).send(request(srv.url));
    assertFailure(t, result, ERROR_CLASS.httpStatus);
    t.is(result.statusCode, status);
    t.true(result.error!.includes(String(status)), result.error!);
    t.is(result.responseBody.toString(), `nope ${status}`);
    t.is(result.responseHeaders['retry-after'], '5');
  });
}

for (const status of [301, 302, 303, 307, 308]) {
  test(`status ${status} is a redirect failure and is not followed`, async (t) => {
    const srv = await httpServer(t, (req, res) => {
      if (req.url === '/start') {
        res.writeHead(status, { location: '/elsewhere' });
        res.end();
      } else {
        res.writeHead(200);
        res.end('followed');
      }
    });
    const result = await sender(t).send(request(`${srv.url}/start`));
    assertFailure(t, result, ERROR_CLASS.redirect);
    t.is(result.statusCode, status);
    t.is(result.responseHeaders.location, '/elsewhere');
    // Give a follow-up request (if one were made) a moment to arrive.
    await new Promise((r) => setTimeout(r, 100));
    t.deepEqual(srv.seen.map((s) => s.path), ['/start']);
  });
}

test('a refused connection is connection_refused', async (t) => {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  const result = await sender(t).send(request(`http://127.0.0.1:${port}/`));
  assertFailure(t, result, ERROR_CLASS.connectionRefused);
  t.is(result.statusCode, null);
  t.deepEqual(result.responseHeaders, {});
  t.is(result.responseBody.length, 0);
});

test('a server that accepts, reads the request and destroys the socket is connection_reset', async (t) => {
  const srv = await tcpServer(t, (socket) => socket.destroy());
  const result = await sender(t).send(request(srv.url));
  assertFailure(t, result, ERROR_CLASS.connectionReset);
  t.is(result.statusCode, null);
});

test('a server that resets the connection (RST) is connection_reset', async (t) => {
  const srv = await tcpServer(t, (socket) => socket.resetAndDestroy());
  const result = await sender(t).send(request(srv.url));
  assertFailure(t, result, ERROR_CLASS.connectionReset);
});

test('a server that closes in the middle of the body is connection_reset', async (t) => {
  const srv = await tcpServer(t, (socket) => {
    socket.write('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly ten.');
    setTimeout(() => socket.destroy(), 50);
  });
  const result = await sender(t).send(request(srv.url));
  // The headers said 200, but the answer was never complete: not a delivery.
  assertFailure(t, result, ERROR_CLASS.connectionReset);
});

test('a garbage status line is invalid_response', async (t) => {
  const srv = await tcpServer(t, (socket) => {
    socket.end('SMTP ready, not HTTP at all\r\n\r\n');
  });
  const result = await sender(t).send(request(srv.url));
  assertFailure(t, result, ERROR_CLASS.invalidResponse);
  t.is(result.statusCode, null);
});

test('a malformed header line is invalid_response', async (t) => {
  const srv = await tcpServer(t, (socket) => {
    socket.end('HTTP/1.1 200 OK\r\nthis line has no colon\r\ncontent-length: 0\r\n\r\n');
  });
  const result = await sender(t).send(request(srv.url));
  assertFailure(t, result, ERROR_CLASS.invalidResponse);
});

test('response headers larger than 16 KiB are invalid_response', async (t) => {
  const srv = await tcpServer(t, (socket) => {
    socket.end(`HTTP/1.1 200 OK\r\nx-big: ${'a'.repeat(32 * 1024)}\r\ncontent-length: 0\r\n\r\n`);
  });
  const result = await sender(t).send(request(srv.url));
  assertFailure(t, result, ERROR_CLASS.invalidResponse);
});

test('a server that never answers is cut at the deadline (timeout)', async (t) => {
  const srv = await tcpServer(t, () => {
    /* read the request, say nothing */
  });
  const deadline = 400;
  const result = await sender(t).send(request(srv.url, { timeoutMs: deadline }));
  assertFailure(t, result, ERROR_CLASS.timeout);
  t.is(result.statusCode, null);
  t.true(result.durationMs >= deadline - 20 && result.durationMs < deadline + 1_000, `durationMs ${result.durationMs}`);
  t.true(result.error!.includes(String(deadline)), result.error!);
});

test('headers then a body dripped 1 byte every 100 ms is cut at the deadline (timeout)', async (t) => {
  const timers = new Set<NodeJS.Timeout>();
  t.teardown(() => timers.forEach((x) => clearInterval(x)));
  const srv = await httpServer(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '1000' });
    res.flushHeaders();
    const timer = setInterval(() => {
      if (res.destroyed) return clearInterval(timer);
      res.write('x');
    }, 100);
    timers.add(timer);
    res.on('close', () => clearInterval(timer));
  });
  const deadline = 800;
  const started = Date.now();
  const result = await sender(t).send(request(srv.url, { timeoutMs: deadline }));
  const wall = Date.now() - started;
  // The headers said 200, yet the whole answer did not arrive in time: a failure, not a delivery.
  t.false(result.ok);
  t.is(result.errorClass, ERROR_CLASS.timeout, `${result.errorClass}: ${result.error}`);
  t.true(result.durationMs >= deadline - 20 && result.durationMs < deadline + 1_000, `durationMs ${result.durationMs}`);
  t.true(wall < deadline + 2_000, `wall ${wall}`);
});

test('a response body larger than maxResponseBytes: only the cap is returned', async (t) => {
  const big = Buffer.alloc(3 * 1024 * 1024, 'y');
  const srv = await httpServer(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(big);
  });
  const result = await sender(t).send(request(srv.url, { maxResponseBytes: 1_000 }));
  t.true(result.ok);
  t.is(result.statusCode, 200);
  t.is(result.responseBody.length, 1_000);
  t.true(result.responseBody.equals(big.subarray(0, 1_000)));
});

test('a large body sent in many chunks is capped exactly, and a failure status keeps its capped body', async (t) => {
  const srv = await httpServer(t, (_req, res) => {
    res.writeHead(500, { 'content-type': 'text/plain' });
    let i = 0;
    const more = () => {
      while (i < 200) {
        i++;
        if (!res.write(`${String(i).padStart(4, '0')}|`.repeat(100))) return res.once('drain', more);
      }
      res.end();
    };
    more();
  });
  const result = await sender(t).send(request(srv.url, { maxResponseBytes: 1_234 }));
  assertFailure(t, result, ERROR_CLASS.httpStatus);
  t.is(result.responseBody.length, 1_234);
  t.is(result.responseBody.toString().slice(0, 10), '0001|0001|');
});

test('a body exactly the size of the cap, and one byte under it, is returned whole', async (t) => {
  for (const size of [1_024, 1_023]) {
    const srv = await httpServer(t, (_req, res) => {
      res.writeHead(200);
      res.end(Buffer.alloc(size, 'z'));
    });
    const result = await sender(t).send(request(srv.url, { maxResponseBytes: 1_024 }));
    t.true(result.ok);
    t.is(result.responseBody.length, size);
  }
});

test('the sender stays usable after a capped response (the connection is not left half-read)', async (t) => {
  const srv = await httpServer(t, (req, res) => {
    res.writeHead(200);
    res.end(req.url === '/big' ? Buffer.alloc(1024 * 1024, 'b') : 'small');
  });
  const s = sender(t);
  const first = await s.send(request(`${srv.url}/big`, { maxResponseBytes: 10 }));
  t.is(first.responseBody.toString(), 'b'.repeat(10));
  const second = await s.send(request(`${srv.url}/small`));
  t.true(second.ok);
  t.is(second.responseBody.toString(), 'small');
});

test('the request carries exactly the given headers and body, as a POST', async (t) => {
  const srv = await httpServer(t, (_req, res) => {
    res.writeHead(204);
    res.end();
  });
  const body = JSON.stringify({ type: 'invoice.paid', note: 'ünïcødé ✓', n: [1, 2, 3] });
  const headers = {
    'content-type': 'application/json',
    'user-agent': 'hookrelay/test',
    'webhook-id': 'msg_TEST',
    'webhook-timestamp': '1700000000',
    'webhook-signature': 'v1,abc=',
    'x-tenant': 'acme',
    'accept-encoding': 'identity',
  };
  const result = await sender(t).send(request(`${srv.url}/hooks?x=1`, { headers, body }));
  t.true(result.ok, result.error ?? '');
  const got = srv.seen[0]!;
  t.is(got.method, 'POST');
  t.is(got.path, '/hooks?x=1');
  t.true(got.body.equals(Buffer.from(body, 'utf8')));

  const pairs: Array<[string, string]> = [];
  for (let i = 0; i < got.rawHeaders.length; i += 2) pairs.push([got.rawHeaders[i]!.toLowerCase(), got.rawHeaders[i + 1]!]);
  const names = pairs.map(([n]) => n);
  t.is(new Set(names).size, names.length, `a header was sent twice: ${names.join(', ')}`);
  for (const [name, value] of Object.entries(headers)) {
    t.deepEqual(pairs.filter(([n]) => n === name).map(([, v]) => v), [value], name);
  }
  // Besides the given headers, only what HTTP/1.1 framing needs.
  const extra = names.filter((n) => !(n in headers)).sort();
  t.true(extra.every((n) => ['connection', 'content-length', 'host'].includes(n)), `unexpected headers: ${extra.join(', ')}`);
  t.true(extra.includes('host'));
  const contentLength = pairs.find(([n]) => n === 'content-length');
  t.is(contentLength?.[1], String(Buffer.byteLength(body)));
  t.false(names.includes('transfer-encoding'));
});

test('an empty body is sent with content-length 0', async (t) => {
  const srv = await httpServer(t, (_req, res) => {
    res.writeHead(200);
    res.end();
  });
  const result = await sender(t).send(request(srv.url, { body: '', headers: {} }));
  t.true(result.ok);
  t.is(srv.seen[0]!.body.length, 0);
});

test('many concurrent sends to one slow receiver all complete', async (t) => {
  let inFlight = 0;
  let most = 0;
  const srv = await httpServer(t, (_req, res) => {
    inFlight++;
    most = Math.max(most, inFlight);
    setTimeout(() => {
      inFlight--;
      res.writeHead(200);
      res.end('ok');
    }, 200);
  });
  const s = sender(t);
  const results = await Promise.all(Array.from({ length: 20 }, (_, i) => s.send(request(srv.url, { body: String(i) }))));
  t.true(results.every((r) => r.ok));
  // In parallel over several connections, not one after the other.
  t.true(most >= 10, `at most ${most} requests were in flight at once`);
  t.deepEqual(srv.seen.map((x) => Number(x.body.toString())).sort((a, b) => a - b), Array.from({ length: 20 }, (_, i) => i));
});

test('past one pool\'s share, requests to one origin go over more pools, and the per-origin limit holds over all of them', async (t) => {
  const limit = POOL_SHARD_SIZE + 44;
  const held: ServerResponse[] = [];
  const srv = await httpServer(t, (_req, res) => {
    held.push(res);
  });
  const s = createSender({ allowNetworks: parseAllowList('127.0.0.0/8,::1/128'), connections: limit });
  t.teardown(() => s.close());
  const sent = Array.from({ length: limit + 40 }, (_, i) => s.send(request(srv.url, { body: String(i), timeoutMs: 30_000 })));
  // One pool would stop at POOL_SHARD_SIZE; all of them together stop at the limit.
  const deadline = Date.now() + 20_000;
  while (held.length < limit && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  t.is(held.length, limit, `${held.length} requests reached the receiver at once`);
  await new Promise((r) => setTimeout(r, 200));
  t.is(held.length, limit, 'no request went past the per-origin limit');
  t.is(new Set(srv.seen.map((x) => x.socket)).size, limit, 'each held request has a socket of its own');
  // Answered, the held ones free their sockets for the 40 that waited.
  const answer = () => {
    for (const res of held.splice(0)) {
      res.writeHead(200);
      res.end('ok');
    }
  };
  answer();
  const timer = setInterval(answer, 20);
  const results = await Promise.all(sent);
  clearInterval(timer);
  t.true(results.every((r) => r.ok));
  t.is(srv.seen.length, limit + 40);
  t.true(new Set(srv.seen.map((x) => x.socket)).size <= limit, 'the waiting requests reused the sockets');
});

test('with more than one pool, a quiet origin keeps reusing the sockets of the first', async (t) => {
  const srv = await httpServer(t, (_req, res) => {
    res.writeHead(200);
    res.end('ok');
  });
  const s = createSender({ allowNetworks: parseAllowList('127.0.0.0/8,::1/128'), connections: POOL_SHARD_SIZE * 3 });
  t.teardown(() => s.close());
  for (let i = 0; i < 20; i++) t.true((await s.send(request(srv.url, { body: String(i) }))).ok);
  // One after the other: a socket, or two when the next request is sent before the pool has
  // seen the last answer end (as with one pool); not one per pool in turn.
  const sockets = new Set(srv.seen.map((x) => x.socket)).size;
  t.true(sockets <= 2, `${sockets} sockets for 20 requests sent one after the other`);
});

test('send never rejects for a receiver fault: a URL with no listener on an odd port resolves', async (t) => {
  const result = await sender(t).send(request('http://127.0.0.1:1/'));
  t.false(result.ok);
  t.is(result.errorClass, ERROR_CLASS.connectionRefused);
});
