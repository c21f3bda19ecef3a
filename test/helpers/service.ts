import { PassThrough } from 'node:stream';
import type { ExecutionContext } from 'ava';
import { loadConfig, type Config } from '../../src/config.ts';
import { createToken, SCOPES } from '../../src/api/tokens.ts';
import { createLogger } from '../../src/log.ts';
import { startService, type Service } from '../../src/main.ts';
import { freshDatabase } from './db.ts';
import { checkResponse, seenFromKoa } from './contract.ts';

/** A fixed master key for test services (any 32 bytes; tests never share databases). */
export const TEST_MASTER_KEY = Buffer.alloc(32, 7).toString('base64');

/** What test services may deliver to: the loopback receivers of the tests. */
export const TEST_ALLOW_NETWORKS = '127.0.0.0/8,::1/128';

export interface TestService {
  service: Service;
  url: string;
  dbUrl: string;
  token: string;
  config: Config;
  /** Every log line the service wrote, as parsed JSON. */
  logs: Record<string, any>[];
  /**
   * Answers that did not match openapi.yaml (status, media type, headers, body schema). Any
   * left at the end of the test fail it; a test that provokes one on purpose empties this.
   */
  contractViolations: string[];
  /** fetch against the API with the token set (pass `auth: false` to leave it out). */
  api(path: string, init?: RequestInit & { json?: unknown; auth?: boolean }): Promise<Response>;
}

/**
 * The whole service in this process (API and worker, as `npm start` runs it) on a fresh
 * database (or on `options.dbUrl`), listening on a free port. Stopped at teardown. Every
 * answer it gives is validated against openapi.yaml; a violation fails the test.
 */
export async function startTestService(t: ExecutionContext, env: Record<string, string> = {}, options: { dbUrl?: string } = {}): Promise<TestService> {
  const dbUrl = options.dbUrl ?? (await freshDatabase(t, { migrate: false }));
  const config = loadConfig({
    DATABASE_URL: dbUrl,
    PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'debug',
    HOOKRELAY_DB_POOL_MAX: '4',
    HOOKRELAY_SHUTDOWN_TIMEOUT_MS: '5000',
    HOOKRELAY_MASTER_KEY: TEST_MASTER_KEY,
    // Test receivers listen on loopback, which the SSRF guard refuses by default.
    HOOKRELAY_ALLOW_NETWORKS: TEST_ALLOW_NETWORKS,
    ...env,
  });
  const logs: Record<string, any>[] = [];
  const stream = new PassThrough();
  stream.on('data', (chunk: Buffer) => {
    for (const line of chunk.toString('utf8').split('\n')) if (line.trim()) logs.push(JSON.parse(line));
  });
  const contractViolations: string[] = [];
  const service = await startService(config, createLogger({ level: 'debug', stream }), {
    onResponse(operation, ctx) {
      const found = checkResponse(operation.operationId, seenFromKoa(ctx));
      for (const v of found) contractViolations.push(`${ctx.method} ${ctx.url} (request ${ctx.state.requestId}): ${v}`);
    },
  });
  t.teardown(() => service.stop());
  t.teardown(() => {
    if (contractViolations.length > 0) {
      // With the service's own error lines for those requests: a 500 says why only there.
      const explained = contractViolations.slice(0, 20).map((v) => {
        const id = /\(request ([^)]+)\)/.exec(v)?.[1];
        const errors = logs.filter((l) => l.requestId === id && l.level === 'error' && l.message !== 'request');
        return errors.length === 0 ? v : `${v}\n  log: ${errors.map((l) => JSON.stringify(l).slice(0, 600)).join('\n  log: ')}`;
      });
      throw new Error(`answers that do not match openapi.yaml:\n${explained.join('\n')}`);
    }
  });
  // Every scope, admin included, so that tests not about scopes are not affected by them.
  const { token } = await createToken(service.db.db, 'test', { scopes: SCOPES });
  const url = `http://127.0.0.1:${service.port}`;
  return {
    service,
    url,
    dbUrl,
    token,
    config,
    logs,
    contractViolations,
    api(path, init = {}) {
      const headers = new Headers(init.headers);
      if (init.auth !== false && !headers.has('authorization')) headers.set('authorization', `Bearer ${token}`);
      let body = init.body;
      if (init.json !== undefined) {
        body = JSON.stringify(init.json);
        if (!headers.has('content-type')) headers.set('content-type', 'application/json');
      }
      return fetch(url + path, { ...init, headers, body });
    },
  };
}

/** Polls `check` until it returns a value (not undefined) or the time is up. */
export async function eventually<T>(check: () => Promise<T | undefined>, timeoutMs = 20_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
