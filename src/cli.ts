import { parseArgs } from 'node:util';
import { ConfigError, loadConfig, SETTINGS, type Config } from './config.ts';
import { rewrapKeys } from './endpoints/keys.ts';
import { KeyringError } from './endpoints/keyring.ts';
import { loadKeyring } from './endpoints/master-key.ts';
import { createDb } from './db/database.ts';
import { migrate } from './db/migrate.ts';
import { createLogger, type Logger } from './log.ts';
import { openDatabase, serve } from './main.ts';
import { createToken } from './api/tokens.ts';
import * as replay from './replay.ts';

const USAGE = `usage: hookrelay <command>

commands:
  serve                       run the API and workers (as HOOKRELAY_ROLES says)
  migrate                     apply pending database migrations and exit
  token create --name NAME    create an API token; the token is printed once, on the last line
  replay --endpoint ID --since T [--until T] [--reason R] [--dry-run]
                              replay an endpoint's dead letters (progress on a terminal)
  keys rewrap                 re-encrypt every signing secret under HOOKRELAY_MASTER_KEY
                              (old master keys in HOOKRELAY_PREVIOUS_MASTER_KEYS)
  settings                    list every setting with its default

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

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'serve':
      return serve();
    case 'migrate':
      await withDatabase(async () => undefined);
      console.log('migrations applied');
      return;
    case 'token': {
      const [sub, ...args] = rest;
      if (sub !== 'create') fail(`unknown token command ${JSON.stringify(sub ?? '')}\n${USAGE}`);
      const { values } = parseArgs({ args, options: { name: { type: 'string' } }, strict: true });
      const name = values.name?.trim();
      if (!name || name.length > 200) fail('token create needs --name NAME (1 to 200 characters)');
      const created = await withDatabase(async (connectionString) => {
        const db = createDb(connectionString, { max: 1 });
        try {
          return await createToken(db.db, name);
        } finally {
          await db.close();
        }
      });
      console.log(`created token ${created.id} (${name}); it is shown only this once:`);
      console.log(created.token);
      return;
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
