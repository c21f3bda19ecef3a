import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as sea from 'node:sea';

/**
 * Files the service ships with (SQL, openapi.yaml, the API reference and dashboard pages),
 * addressed by their path from the project root ('sql/migrations/0001_init.sql'). Every read
 * goes through here so that a packaged build can serve them from wherever it keeps them.
 *
 * From the sources they are files under the project root. In the single binary
 * (`npm run build`, dist/hookrelay) they are the executable's own assets (node:sea), stored
 * under the same keys, with one more asset, MANIFEST_KEY, that lists the keys: an executable
 * has no folders to list.
 */

export const PROJECT_ROOT = fileURLToPath(new URL('../', import.meta.url));

/** The asset that lists every other asset's key in the single binary (JSON array of strings). */
export const MANIFEST_KEY = 'hookrelay-assets.json';

/** True inside the single binary. */
export const PACKAGED = sea.isSea();

let manifest: string[] | undefined;

function packagedKeys(): string[] {
  manifest ??= JSON.parse(Buffer.from(sea.getAsset(MANIFEST_KEY) as ArrayBuffer).toString('utf8')) as string[];
  return manifest;
}

const normalize = (relPath: string) => path.posix.normalize(relPath.replaceAll('\\', '/')).replace(/^\/+/, '').replace(/\/+$/, '');

/** The bytes of a shipped file; throws ENOENT when there is none. */
export function readAsset(relPath: string): Buffer {
  if (!PACKAGED) return readFileSync(path.join(PROJECT_ROOT, relPath));
  const key = normalize(relPath);
  if (!packagedKeys().includes(key)) {
    throw Object.assign(new Error(`ENOENT: no such file in this build, '${key}'`), { code: 'ENOENT', path: key });
  }
  // getAsset answers a copy; Buffer.from over it shares that copy's memory, no second copy.
  return Buffer.from(sea.getAsset(key) as ArrayBuffer);
}

/** The names of the files directly inside a shipped folder, sorted. */
export function listAssets(relDir: string): string[] {
  if (!PACKAGED) {
    return readdirSync(path.join(PROJECT_ROOT, relDir), { withFileTypes: true })
      .filter((entry) => entry.isFile())
      .map((entry) => entry.name)
      .sort();
  }
  const prefix = `${normalize(relDir)}/`;
  const names = packagedKeys()
    .filter((key) => key.startsWith(prefix) && !key.slice(prefix.length).includes('/'))
    .map((key) => key.slice(prefix.length))
    .sort();
  if (names.length === 0) throw Object.assign(new Error(`ENOENT: no such folder in this build, '${relDir}'`), { code: 'ENOENT', path: relDir });
  return names;
}
