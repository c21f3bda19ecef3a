import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { CLI, ROOT, run } from './helpers/process.ts';

/**
 * `npm start` and `npm run hookrelay` preload src/compile-cache.ts, which turns on Node's
 * compile cache before the entry's modules load: what Node compiles (TypeScript stripped of its
 * types, V8's code) is kept on disk and read back at the next start.
 */

function cacheFiles(dir: string): number {
  return readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).length;
}

function environment(tmp: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, TMPDIR: tmp };
  delete env.NODE_COMPILE_CACHE;
  delete env.NODE_DISABLE_COMPILE_CACHE;
  return env;
}

test('with the preload, a start writes the compile cache of its modules and the next start runs from it', async (t) => {
  const tmp = mkdtempSync(join(tmpdir(), 'hookrelay-cc-'));
  t.teardown(() => rmSync(tmp, { recursive: true, force: true }));
  const args = ['--import', './src/compile-cache.ts', CLI, '--version'];
  const first = await run(t, process.execPath, args, { env: environment(tmp) });
  t.is(first.code, 0, first.stderr);
  const written = cacheFiles(join(tmp, 'node-compile-cache'));
  // The CLI's own modules and those of its dependencies: hundreds of entries.
  t.true(written > 50, `${written} cache files`);
  const second = await run(t, process.execPath, args, { env: environment(tmp) });
  t.is(second.code, 0, second.stderr);
  t.is(second.stdout, first.stdout);
  t.is(cacheFiles(join(tmp, 'node-compile-cache')), written, 'nothing new to compile the second time');
});

test('without it nothing is cached, and the npm scripts carry it', async (t) => {
  const tmp = mkdtempSync(join(tmpdir(), 'hookrelay-cc-'));
  t.teardown(() => rmSync(tmp, { recursive: true, force: true }));
  const plain = await run(t, process.execPath, [CLI, '--version'], { env: environment(tmp) });
  t.is(plain.code, 0, plain.stderr);
  t.deepEqual(readdirSync(tmp), []);
  const { scripts } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  // The service's Node flags come first (test/packaging/node-flags.test.ts checks them).
  t.regex(scripts.start!, /^node (--\S+ )*--import \.\/src\/compile-cache\.ts src\/main\.ts$/);
  t.regex(scripts.hookrelay!, /^node (--\S+ )*--import \.\/src\/compile-cache\.ts src\/cli\.ts$/);
});
