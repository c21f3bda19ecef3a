import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ExecutionContext } from 'ava';

/**
 * A real HTTP receiver on 127.0.0.1 whose answers a test scripts. It records every request
 * (headers and the exact body bytes) and answers with the next scripted reply, or 200.
 */

export interface Received {
  path: string;
  headers: Record<string, string>;
  body: string;
  at: number;
}

export type Reply =
  | { status: number; body?: string; headers?: Record<string, string>; delayMs?: number }
  | { hang: true }
  | ((req: IncomingMessage, res: ServerResponse, body: string) => void);

export interface Receiver {
  url: string;
  received: Received[];
  /** Queue replies for the next requests, in order; after them every request gets `fallback`. */
  script(...replies: Reply[]): void;
  fallback: Reply;
  /** Resolves once `count` requests have arrived (rejects after timeoutMs). */
  waitFor(count: number, timeoutMs?: number): Promise<Received[]>;
  close(): Promise<void>;
}

export async function startReceiver(t: ExecutionContext, host = '127.0.0.1'): Promise<Receiver> {
  const received: Received[] = [];
  const queue: Reply[] = [];
  const waiters: { count: number; resolve: () => void }[] = [];
  const hung = new Set<ServerResponse>();
  const receiver: Receiver = {
    url: '',
    received,
    fallback: { status: 200, body: 'ok' },
    script: (...replies) => queue.push(...replies),
    waitFor(count, timeoutMs = 20_000) {
      if (received.length >= count) return Promise.resolve(received.slice());
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`receiver got ${received.length} of ${count} requests within ${timeoutMs} ms`)), timeoutMs);
        waiters.push({ count, resolve: () => { clearTimeout(timer); resolve(received.slice()); } });
      });
    },
    close: () => new Promise((resolve) => {
      for (const res of hung) res.destroy();
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) if (v !== undefined) headers[k] = Array.isArray(v) ? v.join(', ') : v;
      received.push({ path: req.url ?? '/', headers, body, at: Date.now() });
      for (const w of waiters.splice(0)) {
        if (received.length >= w.count) w.resolve();
        else waiters.push(w);
      }
      const reply = queue.shift() ?? receiver.fallback;
      if (typeof reply === 'function') return reply(req, res, body);
      if ('hang' in reply) {
        hung.add(res);
        return;
      }
      const send = () => {
        res.writeHead(reply.status, reply.headers ?? {});
        res.end(reply.body ?? '');
      };
      if (reply.delayMs) setTimeout(send, reply.delayMs);
      else send();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  receiver.url = `http://${host}:${(server.address() as AddressInfo).port}`;
  t.teardown(() => receiver.close());
  return receiver;
}
