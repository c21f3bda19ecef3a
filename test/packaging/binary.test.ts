import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { Webhook } from 'standardwebhooks';
import { build } from '../../scripts/build.ts';
import { SERVICE_NODE_FLAGS } from '../../src/node-flags.ts';
import { freshDatabase, query } from '../helpers/db.ts';
import { ROOT } from '../helpers/process.ts';
import { startReceiver } from '../helpers/receiver.ts';
import { eventually, TEST_ALLOW_NETWORKS, TEST_MASTER_KEY } from '../helpers/service.ts';

/**
 * dist/hookrelay, the single binary, as an operator runs it: from an empty folder, with an
 * environment that holds only hookrelay's settings (no PATH, so no node to fall back on, and
 * no node_modules anywhere near). It migrates, creates a token, serves, and delivers a signed
 * webhook to a loopback receiver. The binary is built first unless a build of the same inputs
 * exists (`npm test` builds it before the suite).
 */

let binary: string;

test.before(async () => {
  binary = (await build({ log: () => {} })).path;
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A scratch folder with nothing in it, removed at teardown. */
function emptyFolder(t: ExecutionContext): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'hookrelay-binary-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Runs the binary to its end with exactly `env` (killed after 60 s). */
function runBinary(t: ExecutionContext, args: string[], env: Record<string, string>): Promise<Run> {
  const child = spawn(binary, args, { cwd: emptyFolder(t), env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** `serve` in the background; resolves with its port once the API listens. Killed at teardown. */
function serveBinary(t: ExecutionContext, env: Record<string, string>): Promise<{ child: ChildProcess; port: number; output: () => string }> {
  const child = spawn(binary, ['serve'], { cwd: emptyFolder(t), env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not listen within 60 s:\n${output}`)), 60_000);
    const onData = (c: Buffer) => {
      output += c.toString('utf8');
      // The log is JSON lines; the API's port is in the 'api listening' line.
      const listening = output.split('\n').filter((line) => line.startsWith('{') && line.includes('api listening')).map((line) => {
        try {
          return JSON.parse(line) as { message?: string; port?: number };
        } catch {
          return {};
        }
      }).find((entry) => entry.message === 'api listening' && typeof entry.port === 'number');
      if (listening) {
        clearTimeout(timer);
        resolve({ child, port: listening.port!, output: () => output });
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.on('exit', (code) => reject(new Error(`serve exited with ${code}:\n${output}`)));
  });
}

test('--version answers with no environment at all', async (t) => {
  const run = await runBinary(t, ['--version'], {});
  t.is(run.code, 0, run.stderr);
  t.is(run.stdout.trim(), `hookrelay ${(JSON.parse(readFileSync(`${ROOT}package.json`, 'utf8')) as { version: string }).version}`);
});

test('without DATABASE_URL, database commands exit 2 saying DATABASE_URL is required', async (t) => {
  for (const args of [['serve'], ['migrate'], ['token', 'create', '--name', 'x']]) {
    const run = await runBinary(t, args, {});
    t.is(run.code, 2, args.join(' '));
    t.regex(run.stderr, /DATABASE_URL is required/, args.join(' '));
  }
  // Commands that need no database still work.
  const settings = await runBinary(t, ['settings'], {});
  t.is(settings.code, 0);
  t.regex(settings.stdout, /^DATABASE_URL/m);
});

test('the operators\' SQL scripts come out of the binary byte for byte (hookrelay sql)', async (t) => {
  const list = await runBinary(t, ['sql'], {});
  t.is(list.code, 0, list.stderr);
  const expected = ['ops', 'replay'].flatMap((dir) => readdirSync(`${ROOT}sql/${dir}`).filter((f) => f.endsWith('.sql')).sort().map((f) => `${dir}/${f.slice(0, -4)}`));
  t.deepEqual(list.stdout.trim().split('\n'), expected);
  for (const name of expected) {
    const script = await runBinary(t, ['sql', name], {});
    t.is(script.stdout, readFileSync(`${ROOT}sql/${name}.sql`, 'utf8'), name);
  }
  const unknown = await runBinary(t, ['sql', 'ops/nothing'], {});
  t.is(unknown.code, 2);
});

test('migrate, token create and serve from an empty folder deliver a signed webhook to a receiver', async (t) => {
  t.timeout(180_000);
  const dbUrl = await freshDatabase(t, { migrate: false });

  // migrate applies every shipped migration (read from the binary's assets).
  const migrated = await runBinary(t, ['migrate'], { DATABASE_URL: dbUrl });
  t.is(migrated.code, 0, migrated.stderr);
  t.regex(migrated.stdout, /migrations applied/);
  const versions = (await query(dbUrl, 'SELECT version FROM hookrelay.schema_migrations ORDER BY version')).map((r) => r.version);
  const shipped = readdirSync(`${ROOT}sql/migrations`).filter((f) => f.endsWith('.sql'));
  t.deepEqual(versions, shipped.map((_, i) => i + 1));

  const created = await runBinary(t, ['token', 'create', '--name', 'binary'], { DATABASE_URL: dbUrl });
  t.is(created.code, 0, created.stderr);
  const token = created.stdout.trim().split('\n').pop()!;
  t.regex(token, /^\S{20,}$/);

  const receiver = await startReceiver(t);
  const { child, port, output } = await serveBinary(t, {
    DATABASE_URL: dbUrl,
    HOOKRELAY_MASTER_KEY: TEST_MASTER_KEY,
    HOOKRELAY_ALLOW_NETWORKS: TEST_ALLOW_NETWORKS,
    HOST: '127.0.0.1',
    PORT: '0',
  });
  const base = `http://127.0.0.1:${port}`;
  const auth = { authorization: `Bearer ${token}` };

  const ready = await eventually(async () => {
    const res = await fetch(`${base}/readyz`);
    return res.status === 200 ? ((await res.json()) as Record<string, unknown>) : undefined;
  });
  t.is(ready.status, 'ok');

  const payload = { type: 'order.paid', orderId: 42, note: 'through the single binary' };
  const submitted = await fetch(`${base}/api/v1/webhooks/deliver`, {
    method: 'POST',
    headers: { ...auth, 'content-type': 'application/json' },
    body: JSON.stringify({ url: `${receiver.url}/hook`, payload }),
  });
  t.is(submitted.status, 202);
  const { id, endpointId } = (await submitted.json()) as { id: string; endpointId: string };

  const [delivery] = await receiver.waitFor(1, 30_000);
  t.is(delivery!.path, '/hook');
  t.deepEqual(JSON.parse(delivery!.body), payload);
  t.is(delivery!.headers['webhook-id'], id);
  const status = await eventually(async () => {
    const res = await fetch(`${base}/api/v1/webhooks/${id}/status`, { headers: auth });
    const body = (await res.json()) as { status: string; attempts: number };
    return body.status === 'delivered' ? body : undefined;
  });
  t.is(status.attempts, 1);

  // The receiver can verify the signature with the endpoint's secret.
  const secret = (await (await fetch(`${base}/api/v1/endpoints/${endpointId}/secret`, { headers: auth })).json()) as { secret: string };
  t.notThrows(() => new Webhook(secret.secret).verify(delivery!.body, delivery!.headers));

  // The API reference and the document come out of the binary as well.
  const spec = await fetch(`${base}/openapi.yaml`);
  t.is(await spec.text(), readFileSync(`${ROOT}openapi.yaml`, 'utf8'));
  const docs = await fetch(`${base}/docs`);
  t.is(docs.status, 200);
  const bundle = await fetch(`${base}/docs/swagger-ui-bundle.js`);
  t.true(Buffer.from(await bundle.arrayBuffer()).equals(readFileSync(`${ROOT}node_modules/swagger-ui-dist/swagger-ui-bundle.js`)));

  // So does the dashboard, when the checkout has one.
  if (existsSync(`${ROOT}ui/index.html`)) {
    const ui = await fetch(`${base}/ui/`);
    t.is(ui.status, 200);
    t.is(await ui.text(), readFileSync(`${ROOT}ui/index.html`, 'utf8'));
  }

  // It runs on the service's Node.js flags, which its SEA configuration carries (Node 24.8+
  // applies them; older builds ignore the field).
  const started = output().split('\n').filter((line) => line.includes('"hookrelay started"')).map((line) => JSON.parse(line) as { execArgv?: string[] })[0];
  t.truthy(started, output());
  const [major, minor] = process.versions.node.split('.').map(Number) as [number, number];
  if (major > 24 || (major === 24 && minor >= 8)) t.deepEqual(started!.execArgv, [...SERVICE_NODE_FLAGS]);

  // SIGTERM drains and exits 0.
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.kill('SIGTERM');
  t.is(await exited, 0, output());
  t.regex(output(), /"message":"hookrelay stopped"/);
});
