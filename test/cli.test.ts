import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import test, { type ExecutionContext } from 'ava';
import { createAuthenticator } from '../src/api/tokens.ts';
import { SETTINGS } from '../src/config.ts';
import { createDb } from '../src/db/database.ts';
import { freshDatabase, query } from './helpers/db.ts';
import { startTestService, TEST_ALLOW_NETWORKS, TEST_MASTER_KEY } from './helpers/service.ts';

/** The `hookrelay` command and `node src/main.ts`, run as real child processes. */

const CLI = fileURLToPath(new URL('../src/cli.ts', import.meta.url));
const MAIN = fileURLToPath(new URL('../src/main.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const TOKEN = /^hr_[0-9A-Za-z]{32}_[0-9A-Za-z]{6}$/;
const RUN_TIMEOUT_MS = 60_000;
/** Children run at most this many at a time: each one loads the whole service, and the tests
 * of this file would otherwise start twenty at once. */
const MAX_CHILDREN = 2;

let running = 0;
const waiting: (() => void)[] = [];
async function slot(): Promise<() => void> {
  if (running >= MAX_CHILDREN) await new Promise<void>((resolve) => waiting.push(resolve));
  running++;
  let released = false;
  return () => {
    if (released) return;
    released = true;
    running--;
    waiting.shift()?.();
  };
}

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** The parent's environment without any hookrelay setting, so only `env` configures the child. */
function childEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  const base: NodeJS.ProcessEnv = { ...process.env };
  for (const s of SETTINGS) delete base[s.env];
  return { ...base, HOOKRELAY_ALLOW_NETWORKS: TEST_ALLOW_NETWORKS, ...env };
}

/** Runs `node <script> ...args`, killed (by its pid) at teardown or after RUN_TIMEOUT_MS. */
async function run(t: ExecutionContext, script: string, args: string[], env: Record<string, string>): Promise<Run> {
  const release = await slot();
  try {
    return await runNow(t, script, args, env);
  } finally {
    release();
  }
}

function runNow(t: ExecutionContext, script: string, args: string[], env: Record<string, string>): Promise<Run> {
  const child = spawn(process.execPath, [script, ...args], { cwd: ROOT, env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
  const timer = setTimeout(() => child.kill('SIGKILL'), RUN_TIMEOUT_MS);
  const done = new Promise<Run>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
  t.teardown(async () => {
    clearTimeout(timer);
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await done.catch(() => undefined);
    }
  });
  return done;
}

const cli = (t: ExecutionContext, args: string[], env: Record<string, string> = {}) => run(t, CLI, args, env);
const lines = (text: string) => text.split('\n').filter((l) => l.trim() !== '');

test('token create --name ci prints a token that authenticates, and only its SHA-256 is stored', async (t) => {
  const url = await freshDatabase(t, { migrate: false });
  const r = await cli(t, ['token', 'create', '--name', 'ci'], { DATABASE_URL: url });
  t.is(r.code, 0, r.stderr);
  const out = lines(r.stdout);
  const token = out.at(-1)!;
  t.regex(token, TOKEN);
  // Nothing but the token on its line, and the token appears nowhere else.
  t.is(r.stdout.split(token).length, 2);
  t.false(r.stderr.includes(token));

  const rows = await query<{ id: string; name: string; token_hash: Buffer; revoked_at: Date | null }>(url, 'SELECT id, name, token_hash, revoked_at FROM hookrelay.api_tokens');
  t.is(rows.length, 1);
  t.is(rows[0]!.name, 'ci');
  t.is(rows[0]!.revoked_at, null);
  t.true(rows[0]!.token_hash.equals(createHash('sha256').update(token).digest()));
  // The token text is in no column of the row.
  const asText = await query<{ row: string }>(url, 'SELECT row_to_json(t)::text AS row FROM hookrelay.api_tokens t');
  t.false(asText[0]!.row.includes(token));
  t.false(asText[0]!.row.includes(token.slice(3, 35)));
  // The id printed in the first line is the row's id.
  t.true(r.stdout.includes(rows[0]!.id));

  const handle = createDb(url, { max: 1 });
  t.teardown(() => handle.close());
  const auth = createAuthenticator(handle.db);
  t.is(await auth.authenticate(token), rows[0]!.id);
  t.is(await auth.authenticate(token.slice(0, -1) + (token.endsWith('A') ? 'B' : 'A')), undefined);
});

test('a token made with the CLI authenticates against a service on the same database', async (t) => {
  const url = await freshDatabase(t, { migrate: false });
  const r = await cli(t, ['token', 'create', '--name', 'from the cli'], { DATABASE_URL: url });
  t.is(r.code, 0, r.stderr);
  const token = lines(r.stdout).at(-1)!;
  const svc = await startTestService(t, { DATABASE_URL: url });
  const path = '/api/v1/webhooks/msg_00000000000000000000000000/status';
  const ok = await svc.api(path, { headers: { authorization: `Bearer ${token}` } });
  t.is(ok.status, 404); // authenticated; the webhook just does not exist
  const bad = await svc.api(path, { headers: { authorization: `Bearer ${token.slice(0, -6)}AAAAAA` } });
  t.is(bad.status, 401);
  const none = await svc.api(path, { auth: false });
  t.is(none.status, 401);
});

test('two tokens with the same name are distinct', async (t) => {
  const url = await freshDatabase(t);
  const a = await cli(t, ['token', 'create', '--name=ci'], { DATABASE_URL: url });
  const b = await cli(t, ['token', 'create', '--name', 'ci'], { DATABASE_URL: url });
  t.is(a.code, 0, a.stderr);
  t.is(b.code, 0, b.stderr);
  t.not(lines(a.stdout).at(-1), lines(b.stdout).at(-1));
  t.is((await query(url, 'SELECT 1 FROM hookrelay.api_tokens')).length, 2);
});

for (const [what, args] of [
  ['without --name', ['token', 'create']],
  ['with an empty --name', ['token', 'create', '--name', '']],
  ['with a blank --name', ['token', 'create', '--name', '   ']],
  ['with a name over 200 characters', ['token', 'create', '--name', 'n'.repeat(201)]],
  ['with an unknown option', ['token', 'create', '--name', 'ci', '--admin']],
] as const) {
  test(`token create ${what} exits 2 with a message and creates nothing`, async (t) => {
    const url = await freshDatabase(t);
    const r = await cli(t, [...args], { DATABASE_URL: url });
    t.is(r.code, 2, r.stdout + r.stderr);
    t.regex(r.stderr, /^hookrelay: /);
    t.true(r.stderr.length > 'hookrelay: '.length);
    t.notRegex(r.stdout, /hr_[0-9A-Za-z]{32}/);
    t.deepEqual(await query(url, 'SELECT id FROM hookrelay.api_tokens'), []);
  });
}

test('token create without --name names the missing option', async (t) => {
  const r = await cli(t, ['token', 'create'], { DATABASE_URL: 'postgres://root@127.0.0.1:1/unused' });
  t.is(r.code, 2);
  t.regex(r.stderr, /--name/);
});

test('an unknown command exits 2 with the usage', async (t) => {
  const r = await cli(t, ['frobnicate'], { DATABASE_URL: 'postgres://root@127.0.0.1:1/unused' });
  t.is(r.code, 2);
  t.regex(r.stderr, /unknown command "frobnicate"/);
  t.regex(r.stderr, /usage: hookrelay/);
  t.is(r.stdout, '');
});

test('an unknown token subcommand exits 2', async (t) => {
  const r = await cli(t, ['token', 'rotate'], { DATABASE_URL: 'postgres://root@127.0.0.1:1/unused' });
  t.is(r.code, 2);
  t.regex(r.stderr, /unknown token command "rotate"/);
});

test('help and no command print the usage and exit 0', async (t) => {
  for (const args of [[], ['help'], ['--help'], ['-h']]) {
    const r = await cli(t, args);
    t.is(r.code, 0, args.join(' '));
    t.regex(r.stdout, /^usage: hookrelay <command>/, args.join(' '));
    for (const command of ['serve', 'migrate', 'token create', 'keys rewrap', 'settings']) t.true(r.stdout.includes(command));
  }
});

test('migrate exits 0 and applies the schema; a second run applies nothing and still exits 0', async (t) => {
  const url = await freshDatabase(t, { migrate: false });
  const r = await cli(t, ['migrate'], { DATABASE_URL: url });
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout.trim(), 'migrations applied');
  // Logs go to stderr at warn level only: nothing at info.
  t.notRegex(r.stderr, /"level":"info"/);
  const tables = await query<{ table_name: string }>(url, `SELECT table_name FROM information_schema.tables WHERE table_schema = 'hookrelay' AND table_type = 'BASE TABLE' ORDER BY 1`);
  t.deepEqual(tables.map((x) => x.table_name), ['api_tokens', 'attempts', 'dead_letters', 'endpoint_health', 'endpoints', 'schema_migrations', 'signing_keys', 'webhooks']);
  const versions = await query(url, 'SELECT version FROM hookrelay.schema_migrations');
  t.true(versions.length >= 1);
  const again = await cli(t, ['migrate'], { DATABASE_URL: url });
  t.is(again.code, 0, again.stderr);
  t.deepEqual(await query(url, 'SELECT version FROM hookrelay.schema_migrations'), versions);
});

test('migrate against an unreachable database exits 1 with a message', async (t) => {
  const r = await cli(t, ['migrate'], { DATABASE_URL: 'postgres://root@127.0.0.1:1/nowhere' });
  t.is(r.code, 1);
  t.regex(r.stderr, /^hookrelay: /m);
});

test('a bad setting makes a CLI command exit 2 naming the variable', async (t) => {
  const r = await cli(t, ['migrate'], { DATABASE_URL: 'postgres://root@127.0.0.1:1/unused', HOOKRELAY_RETRY_MAX_ATTEMPTS: '0' });
  t.is(r.code, 2);
  t.regex(r.stderr, /HOOKRELAY_RETRY_MAX_ATTEMPTS/);
});

test('settings lists every key in SETTINGS, one a line, in order, with its default', async (t) => {
  const r = await cli(t, ['settings']);
  t.is(r.code, 0, r.stderr);
  const out = lines(r.stdout);
  t.is(out.length, SETTINGS.length);
  SETTINGS.forEach((s, i) => {
    const line = out[i]!;
    t.is(line.split(/\s+/)[0], s.env);
    t.true(line.includes(s.default ?? '(unset)'), line);
    t.true(line.includes(s.doc), line);
  });
});

for (const [name, value] of [
  ['PORT', 'abc'],
  ['HOOKRELAY_RETRY_MAX_ATTEMPTS', '0'],
  ['LOG_LEVEL', 'loud'],
  ['HOOKRELAY_ROLES', 'api,cron'],
  ['DATABASE_URL', 'mysql://localhost/db'],
  ['HOOKRELAY_MASTER_KEY', 'dG9vIHNob3J0'],
  ['HOOKRELAY_MASTER_KEY', 'not base64 at all!'],
  ['HOOKRELAY_PREVIOUS_MASTER_KEYS', 'dG9vIHNob3J0'],
] as const) {
  test(`node src/main.ts with ${name}=${value} exits non-zero naming ${name}`, async (t) => {
    // Every other setting is valid (a master key included), so only the named one can fail.
    const env: Record<string, string> = { DATABASE_URL: 'postgres://root@127.0.0.1:1/unused', HOOKRELAY_MASTER_KEY: TEST_MASTER_KEY, [name]: value };
    const r = await run(t, MAIN, [], env);
    t.not(r.code, 0);
    t.is(r.code, 2);
    t.true(r.stderr.includes(name), r.stderr);
  });
}

test('node src/main.ts with DATABASE_URL and no HOOKRELAY_MASTER_KEY exits non-zero naming HOOKRELAY_MASTER_KEY', async (t) => {
  const url = await freshDatabase(t, { migrate: false });
  const r = await run(t, MAIN, [], { DATABASE_URL: url, PORT: '0', HOST: '127.0.0.1' });
  t.not(r.code, 0, r.stdout + r.stderr);
  t.is(r.signal, null);
  t.true((r.stdout + r.stderr).includes('HOOKRELAY_MASTER_KEY'), r.stdout + r.stderr);
  // It never came up: no API, no worker.
  t.false(r.stdout.includes('hookrelay started'), r.stdout);
  t.false(r.stdout.includes('api listening'), r.stdout);
});

test('an empty HOOKRELAY_MASTER_KEY counts as unset: with DATABASE_URL the start still fails naming it', async (t) => {
  const url = await freshDatabase(t, { migrate: false });
  const r = await run(t, MAIN, [], { DATABASE_URL: url, PORT: '0', HOST: '127.0.0.1', HOOKRELAY_MASTER_KEY: '' });
  t.not(r.code, 0, r.stdout + r.stderr);
  t.true((r.stdout + r.stderr).includes('HOOKRELAY_MASTER_KEY'), r.stdout + r.stderr);
  t.false(r.stdout.includes('hookrelay started'), r.stdout);
});

test('keys rewrap with DATABASE_URL and no HOOKRELAY_MASTER_KEY exits 2 naming it', async (t) => {
  const url = await freshDatabase(t);
  const r = await cli(t, ['keys', 'rewrap'], { DATABASE_URL: url });
  t.is(r.code, 2, r.stdout + r.stderr);
  t.regex(r.stderr, /^hookrelay: .*HOOKRELAY_MASTER_KEY/m);
});

test('an unknown keys subcommand exits 2', async (t) => {
  const r = await cli(t, ['keys', 'rotate'], { DATABASE_URL: 'postgres://root@127.0.0.1:1/unused', HOOKRELAY_MASTER_KEY: TEST_MASTER_KEY });
  t.is(r.code, 2);
  t.regex(r.stderr, /unknown keys command "rotate"/);
});

test('keys rewrap re-seals every key under a new master key; the service then reads them with the new key alone', async (t) => {
  const url = await freshDatabase(t, { migrate: false });
  const secret = 'whsec_' + Buffer.alloc(32, 9).toString('base64');
  let endpointId: string;
  {
    const svc = await startTestService(t, { DATABASE_URL: url, HOOKRELAY_ROLES: 'api' });
    const res = await svc.api('/api/v1/endpoints', { method: 'POST', json: { url: 'https://rewrap.example.com/hook', secret } });
    t.is(res.status, 201);
    endpointId = ((await res.json()) as { id: string }).id;
    await svc.service.stop();
  }
  const before = await query<{ sealed_secret: Buffer }>(url, 'SELECT sealed_secret FROM hookrelay.signing_keys');
  const newKey = Buffer.alloc(32, 8).toString('base64');
  const r = await cli(t, ['keys', 'rewrap'], { DATABASE_URL: url, HOOKRELAY_MASTER_KEY: newKey, HOOKRELAY_PREVIOUS_MASTER_KEYS: TEST_MASTER_KEY });
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout.trim(), 'rewrapped 1 of 1 signing keys under the current master key');
  const after = await query<{ sealed_secret: Buffer }>(url, 'SELECT sealed_secret FROM hookrelay.signing_keys');
  t.false(after[0]!.sealed_secret.equals(before[0]!.sealed_secret));
  // Run again: nothing left to do.
  const again = await cli(t, ['keys', 'rewrap'], { DATABASE_URL: url, HOOKRELAY_MASTER_KEY: newKey });
  t.is(again.code, 0, again.stderr);
  t.is(again.stdout.trim(), 'rewrapped 0 of 1 signing keys under the current master key');
  const svc = await startTestService(t, { DATABASE_URL: url, HOOKRELAY_ROLES: 'api', HOOKRELAY_MASTER_KEY: newKey });
  const got = await svc.api(`/api/v1/endpoints/${endpointId}/secret`);
  t.is(got.status, 200);
  t.deepEqual(await got.json(), { secret });
});
