import { parseArgs } from 'node:util';
import { listAssets, readAsset } from './assets.ts';
import { ConfigError, loadConfig, SETTINGS, type Config } from './config.ts';
import { rewrapKeys } from './endpoints/keys.ts';
import { KeyringError } from './endpoints/keyring.ts';
import { loadKeyring } from './endpoints/master-key.ts';
import { createDb } from './db/database.ts';
import { migrate } from './db/migrate.ts';
import { createLogger, type Logger } from './log.ts';
import { openDatabase, serve } from './main.ts';
import { createToken, DEFAULT_SCOPES, isScope, listTokens, revokeToken, SCOPES, type Scope, type TokenOptions } from './api/tokens.ts';
import * as replay from './replay.ts';
import { parseDuration } from './duration.ts';

const USAGE = `usage: hookrelay <command>

commands:
  serve [--role api|worker|all]
                              run the API, the workers, or both (default: all, or as
                              HOOKRELAY_ROLES says); run more against one database to scale out
  migrate                     apply pending database migrations and exit
  token create --name NAME [--scopes S,S] [--expires-in 30d | --expires-at T] [--rate N] [--burst N]
                              create an API token; the token is printed once, on the last line
                              (default scopes: webhooks:write,webhooks:read,endpoints:write,endpoints:read;
                              also admin, which implies every other)
  token list                  list tokens: id, name, scopes, created, expires, revoked
  token revoke ID|TOKEN       revoke a token, by its id or by the token itself
  replay --endpoint ID --since T [--until T] [--reason R] [--dry-run]
                              replay an endpoint's dead letters (progress on a terminal)
  keys rewrap                 re-encrypt every signing secret under HOOKRELAY_MASTER_KEY
                              (old master keys in HOOKRELAY_PREVIOUS_MASTER_KEYS)
  settings                    list every setting with its default
  sql [NAME]                  list the operators' SQL scripts (sql/ops, sql/replay), or print one:
                              hookrelay sql ops/backlog-by-endpoint | psql "$DATABASE_URL" -f -
  --version                   print the version

With DATABASE_URL unset, commands use the embedded PostgreSQL under HOOKRELAY_DATA_DIR
(shared with a running 'hookrelay serve').`;

function fail(message: string, code = 2): never {
  console.error(`hookrelay: ${message}`);
  process.exit(code);
}

async function withDatabase<T>(fn: (connectionString: string, context: { config: Config; log: Logger; embedded: boolean }) => Promise<T>): Promise<T> {
  const config = loadConfig();
  // CLI commands log only warnings and errors, to stderr, so their stdout stays clean.
  const log = createLogger({ level: 'warn', stream: process.stderr });
  const { connectionString, embedded } = await openDatabase(config, log);
  try {
    await migrate(connectionString, log);
    return await fn(connectionString, { config, log, embedded: Boolean(embedded) });
  } finally {
    await embedded?.stop();
  }
}

async function withTokenDb<T>(fn: (db: ReturnType<typeof createDb>['db']) => Promise<T>): Promise<T> {
  return withDatabase(async (connectionString) => {
    const db = createDb(connectionString, { max: 1 });
    try {
      return await fn(db.db);
    } finally {
      await db.close();
    }
  });
}

function positiveInt(text: string | undefined, option: string): number | null {
  if (text === undefined) return null;
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n) || n < 1 || n > 1_000_000) fail(`${option} must be a whole number from 1 to 1000000 (got ${JSON.stringify(text)})`);
  return n;
}

async function tokenCreate(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: { name: { type: 'string' }, scopes: { type: 'string' }, 'expires-in': { type: 'string' }, 'expires-at': { type: 'string' }, rate: { type: 'string' }, burst: { type: 'string' } },
    strict: true,
  });
  const name = values.name?.trim();
  if (!name || name.length > 200) fail('token create needs --name NAME (1 to 200 characters)');
  let scopes: Scope[] = [...DEFAULT_SCOPES];
  if (values.scopes !== undefined) {
    const given = values.scopes.split(',').map((s) => s.trim()).filter(Boolean);
    const unknown = given.filter((s) => !isScope(s));
    if (given.length === 0 || unknown.length > 0) fail(`--scopes must list scopes from ${SCOPES.join(', ')} (unknown: ${unknown.join(', ') || 'none given'})`);
    scopes = given as Scope[];
  }
  if (values['expires-in'] !== undefined && values['expires-at'] !== undefined) fail('give --expires-in or --expires-at, not both');
  let expiresAt: Date | null = null;
  if (values['expires-in'] !== undefined) {
    const ms = parseDuration(values['expires-in']);
    if (ms === undefined) fail(`--expires-in must be a number and a unit: s, m, h, d or w (e.g. 30d; got ${JSON.stringify(values['expires-in'])})`);
    expiresAt = new Date(Date.now() + ms);
  } else if (values['expires-at'] !== undefined) {
    const text = values['expires-at'];
    expiresAt = new Date(text);
    if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/i.test(text) || Number.isNaN(expiresAt.getTime())) fail(`--expires-at must be an RFC 3339 date-time such as 2030-01-31T00:00:00Z (got ${JSON.stringify(text)})`);
    if (expiresAt.getTime() <= Date.now()) fail('--expires-at must be in the future');
  }
  const options: TokenOptions = { scopes, expiresAt, rateLimitPerSecond: positiveInt(values.rate, '--rate'), rateLimitBurst: positiveInt(values.burst, '--burst') };
  const created = await withTokenDb((db) => createToken(db, name, options));
  const expires = expiresAt ? `, expires ${expiresAt.toISOString()}` : '';
  console.log(`created token ${created.id} (${name}; scopes ${[...new Set(scopes)].join(',')}${expires}); it is shown only this once:`);
  console.log(created.token);
}

async function tokenList(args: string[]): Promise<void> {
  parseArgs({ args, options: {}, strict: true });
  const rows = await withTokenDb((db) => listTokens(db));
  const table = [['ID', 'NAME', 'SCOPES', 'CREATED', 'EXPIRES', 'REVOKED']];
  for (const r of rows) {
    table.push([r.id, r.name, r.scopes.join(','), r.created_at.toISOString(), r.expires_at?.toISOString() ?? '-', r.revoked_at?.toISOString() ?? '-']);
  }
  const widths = table[0]!.map((_, i) => Math.max(...table.map((row) => row[i]!.length)));
  for (const row of table) console.log(row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  '));
}

async function tokenRevoke(args: string[]): Promise<void> {
  const { positionals } = parseArgs({ args, options: {}, allowPositionals: true, strict: true });
  if (positionals.length !== 1 || !positionals[0]!.trim()) fail('token revoke needs one token id or token');
  const target = positionals[0]!.trim();
  const record = await withTokenDb((db) => revokeToken(db, target));
  if (!record) fail(`no token with that id or text`, 1);
  // Never echo the argument back: it may be the token itself.
  console.log(`revoked token ${record.id} (${record.name}) at ${record.revoked_at!.toISOString()}`);
}

/** `--role` values and the HOOKRELAY_ROLES they stand for. */
const ROLE_FLAG: Readonly<Record<string, string>> = Object.freeze({ api: 'api', worker: 'worker', all: 'api,worker' });

function serveCommand(args: string[]): Promise<void> {
  const { values } = parseArgs({ args, options: { role: { type: 'string' } }, strict: true });
  if (values.role !== undefined) {
    const roles = Object.hasOwn(ROLE_FLAG, values.role) ? ROLE_FLAG[values.role] : undefined;
    if (!roles) fail(`--role must be api, worker or all (got ${JSON.stringify(values.role)})`);
    // The flag is HOOKRELAY_ROLES by another name (and wins over it): set here, it is read and
    // checked with every other setting.
    process.env.HOOKRELAY_ROLES = roles;
  }
  return serve();
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'serve':
      return serveCommand(rest);
    case 'migrate':
      await withDatabase(async () => undefined);
      console.log('migrations applied');
      return;
    case 'token': {
      const [sub, ...args] = rest;
      if (sub === 'create') return tokenCreate(args);
      if (sub === 'list') return tokenList(args);
      if (sub === 'revoke') return tokenRevoke(args);
      fail(`unknown token command ${JSON.stringify(sub ?? '')}\n${USAGE}`);
    }
    case 'keys': {
      const [sub] = rest;
      if (sub !== 'rewrap') fail(`unknown keys command ${JSON.stringify(sub ?? '')}\n${USAGE}`);
      const result = await withDatabase(async (connectionString, { config, log, embedded }) => {
        const keyring = await loadKeyring(config, log, embedded);
        const db = createDb(connectionString, { max: 2 });
        try {
          return await rewrapKeys(db.db, keyring);
        } finally {
          await db.close();
        }
      });
      console.log(`rewrapped ${result.rewrapped} of ${result.total} signing keys under the current master key`);
      return;
    }
    case 'replay': {
      const parsed = replay.parseReplayArgs(rest);
      if ('help' in parsed) {
        console.log(replay.REPLAY_USAGE);
        return;
      }
      if ('error' in parsed) fail(`${parsed.error}\n${replay.REPLAY_USAGE}`);
      const progress = replay.progressDisplay(process.stderr);
      const result = await withDatabase(async (connectionString) => {
        const db = createDb(connectionString, { max: 1, applicationName: 'hookrelay-replay' });
        try {
          return await replay.replayDeadLetters(db.db, parsed.filter, {
            batchSize: parsed.batchSize,
            dryRun: parsed.dryRun,
            by: replay.replayedBy(),
            onProgress: (p) => progress.update(p),
          });
        } finally {
          progress.end();
          await db.close();
        }
      });
      if (!result.endpointEnabled && result.held > 0) {
        console.error(`hookrelay: endpoint ${parsed.filter.endpointId} is disabled: ${result.held} ${result.dryRun ? 'would be' : 'are'} held until it is enabled`);
      }
      console.log(replay.summaryLine(result));
      return;
    }
    case 'settings':
      for (const s of SETTINGS) console.log(`${s.env.padEnd(34)} ${(s.default ?? '(unset)').padEnd(14)} ${s.doc}`);
      return;
    case 'sql': {
      // The operators' SQL ships inside the single binary too: print a script for psql.
      const [name] = rest;
      const scripts = ['sql/ops', 'sql/replay'].flatMap((dir) => listAssets(dir).filter((f) => f.endsWith('.sql')).map((f) => `${dir.slice(4)}/${f.slice(0, -4)}`));
      if (name === undefined) {
        for (const script of scripts) console.log(script);
        return;
      }
      if (!scripts.includes(name)) fail(`unknown SQL script ${JSON.stringify(name)}; \`hookrelay sql\` lists them`);
      process.stdout.write(readAsset(`sql/${name}.sql`));
      return;
    }
    case '--version':
    case 'version':
      console.log(`hookrelay ${(JSON.parse(readAsset('package.json').toString('utf8')) as { version: string }).version}`);
      return;
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      console.log(USAGE);
      return;
    default:
      fail(`unknown command ${JSON.stringify(command)}\n${USAGE}`);
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  if (err instanceof ConfigError || err instanceof KeyringError) fail(err.message);
  if (err instanceof TypeError && (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) fail(err.message);
  console.error(`hookrelay: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
