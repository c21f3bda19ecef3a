import { PACKAGED } from './assets.ts';

/**
 * The entry of the single binary (`npm run build` bundles this file into dist/hookrelay): the
 * CLI, as `node src/cli.ts` runs it. The binary carries no embedded PostgreSQL (its server
 * binaries are a platform package of their own, ~100 MB, that cannot run from inside an
 * executable), so commands that need a database say at once that DATABASE_URL is required.
 */

const DATABASE_COMMANDS = new Set(['serve', 'migrate', 'token', 'replay', 'keys']);

if (PACKAGED && !process.env.DATABASE_URL && DATABASE_COMMANDS.has(process.argv[2] ?? '')) {
  console.error('hookrelay: DATABASE_URL is required (postgres://user:pass@host:5432/db): the single binary has no embedded PostgreSQL; run `npm start` from the sources for that');
  process.exit(2);
}

// Imported after the check: the CLI runs its command as soon as it is loaded.
void import('./cli.ts');
