import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { eventually, startTestService, type TestService } from '../helpers/service.ts';

/**
 * Receivers' TLS certificates are verified; turning that off takes HOOKRELAY_TLS_INSECURE=true,
 * which the service logs as a warning at start. A self-signed certificate for 127.0.0.1 is made
 * with the openssl client for each run.
 */

function selfSigned(t: ExecutionContext): { key: Buffer; cert: Buffer } {
  const dir = mkdtempSync(path.join(tmpdir(), 'hookrelay-tls-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
    '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem'),
  ], { stdio: 'ignore' });
  return { key: readFileSync(path.join(dir, 'key.pem')), cert: readFileSync(path.join(dir, 'cert.pem')) };
}

async function httpsReceiver(t: ExecutionContext): Promise<{ url: string; hits: () => number }> {
  let hits = 0;
  const server = createServer(selfSigned(t), (req, res) => {
    req.resume();
    req.on('end', () => {
      hits += 1;
      res.end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  }));
  return { url: `https://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, hits: () => hits };
}

async function deliverOnce(svc: TestService, url: string) {
  const res = await svc.api('/api/v1/webhooks/deliver', { method: 'POST', json: { url, payload: { tls: true }, retryPolicy: { maxAttempts: 1 } } });
  const { id } = (await res.json()) as { id: string };
  return eventually(async () => {
    const w = (await (await svc.api(`/api/v1/webhooks/${id}`)).json()) as { status: string; attempts: { errorClass: string | null; error: string | null }[] };
    return w.status === 'delivered' || w.status === 'dead' ? w : undefined;
  });
}

test.serial('a receiver whose certificate does not verify is a recorded tls failure, and gets nothing', async (t) => {
  const rx = await httpsReceiver(t);
  const svc = await startTestService(t);
  const w = await deliverOnce(svc, rx.url);
  t.is(w.status, 'dead');
  t.is(w.attempts[0]?.errorClass, 'tls');
  t.is(rx.hits(), 0);
  t.false(svc.logs.some((l) => /TLS_INSECURE/.test(String(l.message))));
});

test.serial('HOOKRELAY_TLS_INSECURE=true delivers to it, and says so in the log at start', async (t) => {
  const rx = await httpsReceiver(t);
  const svc = await startTestService(t, { HOOKRELAY_TLS_INSECURE: 'true' });
  const warning = svc.logs.find((l) => /HOOKRELAY_TLS_INSECURE=true/.test(String(l.message)));
  t.truthy(warning);
  t.is(warning?.level, 'warn');
  const w = await deliverOnce(svc, rx.url);
  t.is(w.status, 'delivered');
  t.is(rx.hits(), 1);
});
