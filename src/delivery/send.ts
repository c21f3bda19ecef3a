import { Agent, errors as undiciErrors, request } from 'undici';
import type { AllowList } from './address-policy.ts';
import { BLOCKED_CODE, createGuardedConnector, type Resolver } from './guard.ts';

/**
 * One HTTP attempt. A receiver's failure is data, not an exception: `send` resolves with an
 * outcome for every answer, refusal, reset and timeout; it rejects only for our own faults.
 */

export const ERROR_CLASS = Object.freeze({
  timeout: 'timeout',
  connectionRefused: 'connection_refused',
  connectionReset: 'connection_reset',
  dns: 'dns',
  tls: 'tls',
  httpStatus: 'http_status',
  redirect: 'redirect',
  invalidResponse: 'invalid_response',
  network: 'network',
  /** The SSRF guard refused the destination (see address-policy.ts). */
  blocked: 'blocked',
} as const);
export type ErrorClass = (typeof ERROR_CLASS)[keyof typeof ERROR_CLASS];

export interface SendRequest {
  url: string;
  headers: Record<string, string>;
  body: string;
  /** Deadline of the whole attempt: connect, request, response headers and body. */
  timeoutMs: number;
  /** At most this many bytes of the response body are read; the socket is dropped after. */
  maxResponseBytes: number;
}

export interface SendResult {
  ok: boolean;
  statusCode: number | null;
  /** The response headers, lower-cased; empty when there was no response. */
  responseHeaders: Record<string, string>;
  /** The bytes read of the response body (at most maxResponseBytes). */
  responseBody: Buffer;
  durationMs: number;
  errorClass: ErrorClass | null;
  error: string | null;
}

/** Headers that describe one connection, not the message; a sender never forwards them. */
export const HOP_BY_HOP = Object.freeze(new Set([
  'connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'proxy-connection',
  'te', 'trailer', 'transfer-encoding', 'upgrade',
]));

export interface Sender {
  send(req: SendRequest): Promise<SendResult>;
  close(): Promise<void>;
}

export interface SenderOptions {
  /** Sockets per origin (kept alive between attempts); the service passes
   * HOOKRELAY_ENDPOINT_CONCURRENCY, so an endpoint's attempts in flight never wait for a socket. */
  connections?: number;
  /** Networks exempted from the SSRF guard (HOOKRELAY_ALLOW_NETWORKS); empty: public addresses only. */
  allowNetworks?: AllowList;
  /** Name resolution of the guard; the system resolver unless injected (tests). */
  resolve?: Resolver;
  /** Skip TLS certificate verification (HOOKRELAY_TLS_INSECURE): for testing against self-signed receivers only. */
  insecureTls?: boolean;
}

/**
 * Requests in flight to one origin that one undici pool carries. A pool finds a free socket
 * by walking its list of sockets, so with thousands of requests held open by one origin each
 * new request would walk thousands of busy ones (quadratic in the number in flight). Past
 * this many, further requests to the origin go to the pool of another agent. At the default
 * per-origin limit (64) there is only ever one agent.
 */
export const POOL_SHARD_SIZE = 256;

export function createSender(options: SenderOptions = {}): Sender {
  // Every socket is opened by the guard: names are resolved once, every address is checked,
  // and the connection goes to a checked address. The agent is explicit and never reads
  // HTTP_PROXY/HTTPS_PROXY/NO_PROXY, so no proxy can carry a request past the guard.
  const connect = createGuardedConnector({ allow: options.allowNetworks ?? [], resolve: options.resolve, timeout: 300_000, insecureTls: options.insecureTls ?? false });
  // Per origin, bounded so one endpoint cannot take every socket; the bound holds over all
  // the agents together.
  const pools = createPools(options.connections ?? 64, (connections) => new Agent({
    connections,
    // Sockets are kept alive between attempts: at thousands of deliveries a second, a
    // handshake per attempt would cost more than the attempt.
    keepAliveTimeout: 4_000,
    // Our own deadline (an AbortSignal) covers the whole attempt; these only need to be no
    // shorter than any deadline we set.
    headersTimeout: 0,
    bodyTimeout: 0,
    connect,
    // Large or lying response headers become an error rather than memory.
    maxHeaderSize: 16 * 1024,
  }));
  return {
    send: (req) => send(pools, req),
    // Called after the worker drained: whatever is still open belongs to attempts that were
    // handed back to the queue, so sockets are destroyed rather than waited on.
    close: () => pools.destroy(),
  };
}

interface Pools {
  /** The agent for the next request to `url`'s origin; `release` exactly once, when its answer is read. */
  lease(url: string): { agent: Agent; release(): void };
  destroy(): Promise<void>;
}

/**
 * Up to ceil(connections / POOL_SHARD_SIZE) agents, made when first needed. A request goes to
 * the first agent whose share of its origin (POOL_SHARD_SIZE sockets; what is left of
 * `connections` for the last) is not all in flight, so a quiet origin keeps reusing the
 * sockets of the first agent; when every share is in flight, to the least busy, where it
 * waits for a socket as it would in one pool.
 */
function createPools(connections: number, make: (connections: number) => Agent): Pools {
  const shareOf = (i: number) => Math.min(POOL_SHARD_SIZE, connections - i * POOL_SHARD_SIZE);
  const count = Math.max(1, Math.ceil(connections / POOL_SHARD_SIZE));
  const agents: Agent[] = [];
  const agent = (i: number) => (agents[i] ??= make(shareOf(i)));
  // In flight per origin, per agent; an origin with nothing in flight has no entry.
  const busy = new Map<string, number[]>();
  return {
    lease(url) {
      if (count === 1) return { agent: agent(0), release: () => undefined };
      let origin: string;
      try {
        origin = new URL(url).origin;
      } catch {
        // undici refuses it with its own error; which agent does so does not matter.
        return { agent: agent(0), release: () => undefined };
      }
      const counts = busy.get(origin) ?? new Array<number>(count).fill(0);
      busy.set(origin, counts);
      let pick = -1;
      for (let i = 0; i < count && pick < 0; i++) if (counts[i]! < shareOf(i)) pick = i;
      if (pick < 0) pick = counts.indexOf(Math.min(...counts));
      counts[pick]! += 1;
      return {
        agent: agent(pick),
        release() {
          counts[pick]! -= 1;
          if (counts.every((n) => n === 0)) busy.delete(origin);
        },
      };
    },
    async destroy() {
      await Promise.all(agents.filter(Boolean).map((a) => a.destroy()));
    },
  };
}

async function send(pools: Pools, req: SendRequest): Promise<SendResult> {
  const started = performance.now();
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new DeadlineError(req.timeoutMs)), req.timeoutMs);
  const elapsed = () => Math.round(performance.now() - started);
  const lease = pools.lease(req.url);
  try {
    const res = await request(req.url, {
      dispatcher: lease.agent,
      method: 'POST',
      headers: req.headers,
      body: req.body,
      signal: controller.signal,
      // Redirects are never followed: a 3xx is a failure. Following one would let a receiver
      // steer our requests (and its signed payload) to any address, past every check made
      // on the registered URL.
    });
    const responseHeaders: Record<string, string> = {};
    for (const [k, v] of Object.entries(res.headers)) {
      if (v !== undefined) responseHeaders[k] = Array.isArray(v) ? v.join(', ') : v;
    }
    const responseBody = await readCapped(res.body, req.maxResponseBytes);
    const statusCode = res.statusCode;
    const ok = statusCode >= 200 && statusCode < 300;
    return {
      ok,
      statusCode,
      responseHeaders,
      responseBody,
      durationMs: elapsed(),
      errorClass: ok ? null : statusCode >= 300 && statusCode < 400 ? ERROR_CLASS.redirect : ERROR_CLASS.httpStatus,
      error: ok ? null : statusCode >= 300 && statusCode < 400
        ? `redirect (${statusCode}) not followed`
        : `receiver answered ${statusCode}`,
    };
  } catch (err) {
    const { errorClass, message } = classify(err, controller.signal);
    return { ok: false, statusCode: null, responseHeaders: {}, responseBody: Buffer.alloc(0), durationMs: elapsed(), errorClass, error: message };
  } finally {
    clearTimeout(timer);
    lease.release();
  }
}

class DeadlineError extends Error {
  constructor(ms: number) {
    super(`no complete answer within ${ms} ms`);
    this.name = 'DeadlineError';
  }
}

/** Reads at most `cap` bytes, then destroys the stream so the rest never reaches memory. */
async function readCapped(body: AsyncIterable<Buffer> & { destroy(): unknown }, cap: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    const room = cap - size;
    if (chunk.length >= room) {
      chunks.push(chunk.subarray(0, room));
      size = cap;
      body.destroy();
      break;
    }
    chunks.push(chunk);
    size += chunk.length;
  }
  return Buffer.concat(chunks, size);
}

const TLS_CODES = /^(CERT_|ERR_TLS_|UNABLE_TO_|DEPTH_ZERO_|SELF_SIGNED_|ERR_SSL_|EPROTO$)/;

function classify(err: unknown, signal: AbortSignal): { errorClass: ErrorClass; message: string } {
  if (signal.aborted && signal.reason instanceof DeadlineError) {
    return { errorClass: ERROR_CLASS.timeout, message: signal.reason.message };
  }
  const e = err as { code?: string; message?: string; cause?: { code?: string; message?: string } };
  const code = e?.code ?? e?.cause?.code ?? '';
  const message = e?.message ?? String(err);
  // Generic on purpose: neither the resolved address nor the reason reaches the attempt record.
  if (code === BLOCKED_CODE) return { errorClass: ERROR_CLASS.blocked, message: 'destination not allowed' };
  if (code === 'ECONNREFUSED') return { errorClass: ERROR_CLASS.connectionRefused, message: 'connection refused' };
  if (code === 'ECONNRESET' || code === 'EPIPE' || err instanceof undiciErrors.SocketError) {
    return { errorClass: ERROR_CLASS.connectionReset, message: 'connection closed by the receiver before a complete answer' };
  }
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'EAI_NONAME' || code === 'EAI_FAIL') {
    return { errorClass: ERROR_CLASS.dns, message: `host name not resolved (${code})` };
  }
  if (TLS_CODES.test(code)) return { errorClass: ERROR_CLASS.tls, message: `TLS failure (${code})` };
  // undici's parser errors do not always carry their HPE_ code, so the class is checked too.
  if (err instanceof undiciErrors.HTTPParserError || code.startsWith('HPE_') || code === 'UND_ERR_HEADERS_OVERFLOW' || code === 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH' || code === 'UND_ERR_INFO') {
    return { errorClass: ERROR_CLASS.invalidResponse, message: `invalid HTTP response (${code})` };
  }
  if (code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'ETIMEDOUT') {
    return { errorClass: ERROR_CLASS.timeout, message: `timed out (${code})` };
  }
  return { errorClass: ERROR_CLASS.network, message: code ? `${code}: ${message}` : message };
}
