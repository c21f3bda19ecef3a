import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Files the service ships with (SQL, openapi.yaml, the API reference and dashboard pages),
 * addressed by their path from the project root ('sql/migrations/0001_init.sql'). Every read
 * goes through here so that a packaged build can serve them from wherever it keeps them.
 */

export const PROJECT_ROOT = fileURLToPath(new URL('../', import.meta.url));

/** The bytes of a shipped file; throws ENOENT when there is none. */
export function readAsset(relPath: string): Buffer {
  return readFileSync(path.join(PROJECT_ROOT, relPath));
}

/** The names of the files directly inside a shipped folder, sorted. */
export function listAssets(relDir: string): string[] {
  return readdirSync(path.join(PROJECT_ROOT, relDir), { withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => entry.name)
    .sort();
}
