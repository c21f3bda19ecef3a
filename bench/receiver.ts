/**
 * The benchmark receiver, in a process of its own: answers every POST with 200 at once, or
 * after `--hold` ms. It counts what it was sent and when (wall clock, comparable with the
 * other processes of the machine), and says so on GET /_stats (with how late its event loop
 * ran, which delays those times) and GET /_arrivals.
 *
 *   node bench/receiver.ts [--hold 0] [--port 0]
 *
 * Prints {"port": n} once listening.
 */

import { createServer } from 'node:http';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { loopLateness, numArg, parseArgs, wallMs } from './lib.ts';

const args = parseArgs();
const holdMs = numArg(args, 'hold', 0);

let count = 0;
let inFlight = 0;
let peakInFlight = 0;
let firstAt: number | null = null;
let lastAt: number | null = null;
let arrivals = new Map<string, number>();
// How late this process's event loop ran: an arrival is timed when the loop reads it.
let loopDelay = monitorEventLoopDelay({ resolution: 10 });
loopDelay.enable();

const server = createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/_stats') {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ count, inFlight, peakInFlight, firstAt, lastAt, distinctIds: arrivals.size, eventLoopDelayMs: loopLateness(loopDelay) }));
    return;
  }
  if (req.method === 'GET' && req.url === '/_arrivals') {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(Object.fromEntries(arrivals)));
    return;
  }
  if (req.method === 'POST' && req.url === '/_reset') {
    count = 0;
    peakInFlight = inFlight;
    firstAt = lastAt = null;
    arrivals = new Map();
    loopDelay.disable();
    loopDelay = monitorEventLoopDelay({ resolution: 10 });
    loopDelay.enable();
    res.end('{}');
    return;
  }
  const at = wallMs();
  count += 1;
  firstAt ??= at;
  lastAt = at;
  const id = req.headers['webhook-id'];
  if (typeof id === 'string' && !arrivals.has(id)) arrivals.set(id, at);
  inFlight += 1;
  if (inFlight > peakInFlight) peakInFlight = inFlight;
  req.resume();
  req.on('end', () => {
    const answer = () => {
      inFlight -= 1;
      res.end('ok');
    };
    if (holdMs > 0) setTimeout(answer, holdMs);
    else answer();
  });
});
// Holding 10,000 requests for seconds is the point here, not an attack.
server.headersTimeout = 120_000;
server.requestTimeout = 0;
server.keepAliveTimeout = 60_000;
server.maxHeadersCount = 200;
server.listen(numArg(args, 'port', 0), '127.0.0.1', () => {
  const { port } = server.address() as { port: number };
  process.stdout.write(`${JSON.stringify({ port })}\n`);
});
process.on('SIGTERM', () => process.exit(0));
