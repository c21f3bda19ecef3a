/**
 * `npm test`: type-check, check the generated API types against openapi.yaml, run the suite
 * with coverage on a real PostgreSQL, and end with the line `N passed, N failed`.
 *
 * The database server is DATABASE_URL's when it is set (each test file creates and drops its
 * own database there); otherwise an embedded PostgreSQL under .hookrelay-test is started for
 * the run and stopped after it.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startEmbeddedPostgres } from '../src/db/embedded.ts';
import { createLogger } from '../src/log.ts';

const root = fileURLToPath(new URL('../', import.meta.url));
const bin = (name: string) => fileURLToPath(new URL(`../node_modules/.bin/${name}`, import.meta.url));

function run(cmd: string, args: string[], onLine?: (line: string) => void): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: root, stdio: ['ignore', onLine ? 'pipe' : 'inherit', 'inherit'], env: process.env });
    if (onLine && child.stdout) {
      let rest = '';
      child.stdout.on('data', (chunk: Buffer) => {
        process.stdout.write(chunk);
        const lines = (rest + chunk.toString('utf8')).split('\n');
        rest = lines.pop() ?? '';
        lines.forEach(onLine);
      });
      child.stdout.on('end', () => rest && onLine(rest));
    }
    child.on('error', reject);
    child.on('close', (code) => resolve(code ?? 1));
  });
}

const step = (title: string) => console.log(`\n== ${title}`);

step('type check (tsc --noEmit)');
if ((await run(bin('tsc'), ['--noEmit', '-p', '.'])) !== 0) {
  console.log('\n0 passed, 1 failed');
  process.exit(1);
}
step('generated API types match openapi.yaml');
if ((await run(process.execPath, ['scripts/gen-api.ts', '--check'])) !== 0) {
  console.log('\n0 passed, 1 failed');
  process.exit(1);
}

step('dependency audit (npm audit --omit=dev)');
// Runtime dependencies must have no known advisory of high severity or worse. Some registries
// (mirrors) do not serve the audit endpoint: then the step says so and the suite goes on, since
// there is nothing to check against; any other audit failure fails the run.
{
  let output = '';
  const code = await new Promise<number>((resolve) => {
    const child = spawn('npm', ['audit', '--omit=dev', '--audit-level=high'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', (c: Buffer) => (output += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (output += c.toString('utf8')));
    child.on('error', () => resolve(1));
    child.on('close', (c) => resolve(c ?? 1));
  });
  if (code === 0) {
    console.log(output.trim().split('\n').slice(-1)[0] ?? 'no advisories');
  } else if (/audit endpoint returned an error|ENOAUDIT|EAI_AGAIN|ENOTFOUND|ECONNREFUSED/.test(output)) {
    console.log('the registry does not answer audit requests here; no advisories could be checked');
  } else {
    console.log(output.trim());
    console.log('\n0 passed, 1 failed');
    process.exit(1);
  }
}

step('strict lint of openapi.yaml (redocly, redocly.yaml)');
{
  const env = { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' };
  const code = await new Promise<number>((resolve) => {
    const child = spawn(bin('redocly'), ['lint', 'openapi.yaml', '--format', 'stylish'], { cwd: root, stdio: ['ignore', 'inherit', 'inherit'], env });
    child.on('error', () => resolve(1));
    child.on('close', (c) => resolve(c ?? 1));
  });
  if (code !== 0) {
    console.log('\n0 passed, 1 failed');
    process.exit(1);
  }
}

step('single binary (npm run build → dist/hookrelay; skipped when its inputs are unchanged)');
// test/packaging/binary.test.ts runs this binary; building it here keeps that test short.
if ((await run(process.execPath, ['scripts/build.ts'])) !== 0) {
  console.log('\n0 passed, 1 failed');
  process.exit(1);
}

let embedded: Awaited<ReturnType<typeof startEmbeddedPostgres>> | undefined;
if (!process.env.DATABASE_URL) {
  step('no DATABASE_URL: starting an embedded PostgreSQL under .hookrelay-test');
  embedded = await startEmbeddedPostgres({ dataDir: `${root}.hookrelay-test`, log: createLogger({ level: 'warn' }) });
  process.env.DATABASE_URL = embedded.connectionString;
}

step('test suite (ava, coverage by c8)');
let passed = 0;
let failed = 0;
let notOk = 0;
const extra = process.argv.slice(2);
const code = await run(
  bin('c8'),
  ['--reporter=text-summary', '--reporter=lcov', '--include=src/**', '--exclude=src/api/openapi-types.ts', bin('ava'), '--tap', ...extra],
  (line) => {
    const pass = /^# pass (\d+)/.exec(line);
    const fail = /^# fail (\d+)/.exec(line);
    if (pass) passed = Number(pass[1]);
    if (fail) failed = Number(fail[1]);
    if (/^not ok /.test(line)) notOk += 1;
  },
);
await embedded?.stop();
// A crashed worker or an uncaught error shows as `not ok` without always reaching the counts.
failed = Math.max(failed, notOk);
if (code !== 0 && failed === 0) failed = 1;
console.log(`\n${passed} passed, ${failed} failed`);
process.exit(failed > 0 ? 1 : 0);
