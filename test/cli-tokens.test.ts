import test, { type ExecutionContext } from 'ava';
import { createAuthenticator } from '../src/api/tokens.ts';
import { createDb } from '../src/db/database.ts';
import { freshDatabase, query } from './helpers/db.ts';
import { TEST_MASTER_KEY } from './helpers/service.ts';
import { runCli } from './helpers/process.ts';

/** `hookrelay token create | list | revoke`, run as child processes. */

const TOKEN = /^hr_[0-9A-Za-z]{32}_[0-9A-Za-z]{6}$/;

const cli = (t: ExecutionContext, url: string, args: string[]) => runCli(t, args, { DATABASE_URL: url, HOOKRELAY_MASTER_KEY: TEST_MASTER_KEY });

const lastLine = (text: string) => text.split('\n').filter((l) => l.trim() !== '').at(-1)!;

async function authenticator(t: ExecutionContext, url: string) {
  const handle = createDb(url, { max: 1 });
  t.teardown(() => handle.close());
  return createAuthenticator(handle.db);
}

test('token create --scopes and --expires-in store the scopes and the expiry; the token works', async (t) => {
  const url = await freshDatabase(t, { migrate: false });
  const before = Date.now();
  const r = await cli(t, url, ['token', 'create', '--name', 'reader', '--scopes', 'webhooks:read,endpoints:read', '--expires-in', '30d', '--rate', '7', '--burst', '9']);
  t.is(r.code, 0, r.stderr);
  const token = lastLine(r.stdout);
  t.regex(token, TOKEN);
  const [row] = await query(url, 'SELECT id, scopes, expires_at, rate_limit_per_second, rate_limit_burst FROM hookrelay.api_tokens');
  t.deepEqual(row!.scopes, ['webhooks:read', 'endpoints:read']);
  const expires = (row!.expires_at as Date).getTime();
  t.true(expires >= before + 30 * 86_400_000 - 1000 && expires <= Date.now() + 30 * 86_400_000 + 1000);
  t.is(row!.rate_limit_per_second, 7);
  t.is(row!.rate_limit_burst, 9);
  const info = await (await authenticator(t, url)).lookup(token);
  t.is(info?.id, row!.id);
  t.deepEqual(info?.scopes, ['webhooks:read', 'endpoints:read']);
});

test('token create defaults to every scope but admin; --expires-at takes RFC 3339; bad options exit 2', async (t) => {
  const url = await freshDatabase(t, { migrate: false });
  t.is((await cli(t, url, ['token', 'create', '--name', 'plain'])).code, 0);
  const at = '2099-01-31T00:00:00Z';
  const r = await cli(t, url, ['token', 'create', '--name', 'dated', '--expires-at', at, '--scopes', 'admin']);
  t.is(r.code, 0, r.stderr);
  const rows = await query(url, 'SELECT name, scopes, expires_at FROM hookrelay.api_tokens ORDER BY id');
  t.deepEqual(rows.map((x) => [x.name, x.scopes, x.expires_at?.toISOString() ?? null]), [
    ['plain', ['webhooks:write', 'webhooks:read', 'endpoints:write', 'endpoints:read'], null],
    ['dated', ['admin'], '2099-01-31T00:00:00.000Z'],
  ]);
  for (const [args, message] of [
    [['--scopes', 'webhooks:delete'], /scopes/],
    [['--expires-in', 'soon'], /expires-in/],
    [['--expires-at', '2001-01-01T00:00:00Z'], /future/],
    [['--expires-at', 'tomorrow'], /RFC 3339/],
    [['--expires-in', '1d', '--expires-at', '2099-01-01T00:00:00Z'], /not both/],
    [['--rate', '0'], /--rate/],
  ] as const) {
    const bad = await cli(t, url, ['token', 'create', '--name', 'bad', ...args]);
    t.is(bad.code, 2, args.join(' '));
    t.regex(bad.stderr, message, args.join(' '));
  }
  t.is((await query(url, 'SELECT count(*)::int AS n FROM hookrelay.api_tokens'))[0]!.n, 2);
});

test('token list prints id, name, scopes, created, expires and revoked, never a token or hash; token revoke by id and by token', async (t) => {
  const url = await freshDatabase(t, { migrate: false });
  const a = lastLine((await cli(t, url, ['token', 'create', '--name', 'alpha', '--scopes', 'webhooks:write', '--expires-in', '2h'])).stdout);
  const b = lastLine((await cli(t, url, ['token', 'create', '--name', 'beta'])).stdout);
  const rows = await query(url, `SELECT id, name, encode(token_hash, 'hex') AS hex, encode(token_hash, 'base64') AS b64 FROM hookrelay.api_tokens ORDER BY id`);
  const [alpha, beta] = rows;

  const list = await cli(t, url, ['token', 'list']);
  t.is(list.code, 0, list.stderr);
  const lines = list.stdout.trim().split('\n');
  t.regex(lines[0]!, /^ID\s+NAME\s+SCOPES\s+CREATED\s+EXPIRES\s+REVOKED$/);
  t.is(lines.length, 3);
  t.regex(lines[1]!, new RegExp(`^${alpha!.id}\\s+alpha\\s+webhooks:write\\s+\\S+Z\\s+\\S+Z\\s+-$`));
  t.regex(lines[2]!, new RegExp(`^${beta!.id}\\s+beta\\s+webhooks:write,webhooks:read,endpoints:write,endpoints:read\\s+\\S+Z\\s+-\\s+-$`));
  for (const secret of [a, b, alpha!.hex, beta!.hex, alpha!.b64, beta!.b64]) t.false(list.stdout.includes(secret));

  const auth = await authenticator(t, url);
  t.is(await auth.authenticate(a), alpha!.id);
  const byId = await cli(t, url, ['token', 'revoke', alpha!.id]);
  t.is(byId.code, 0, byId.stderr);
  t.true(byId.stdout.includes(alpha!.id));
  t.is(await auth.authenticate(a), undefined, 'revoked by id');
  const byToken = await cli(t, url, ['token', 'revoke', b]);
  t.is(byToken.code, 0, byToken.stderr);
  t.false(byToken.stdout.includes(b), 'the token is not echoed');
  t.is(await auth.authenticate(b), undefined, 'revoked by its text');
  // Idempotent, and an unknown one is an error.
  t.is((await cli(t, url, ['token', 'revoke', alpha!.id])).code, 0);
  const unknown = await cli(t, url, ['token', 'revoke', 'tok_unknown']);
  t.is(unknown.code, 1);

  const after = (await cli(t, url, ['token', 'list'])).stdout.trim().split('\n');
  t.regex(after[1]!, /\S+Z$/);
  t.regex(after[2]!, /\S+Z$/);
});
