/**
 * Writes src/api/openapi-types.ts from openapi.yaml. With --check it writes nothing and
 * fails when the committed file differs from what the document generates.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import openapiTS, { astToString } from 'openapi-typescript';

const root = new URL('../', import.meta.url);
const target = fileURLToPath(new URL('src/api/openapi-types.ts', root));
const header = '// DO NOT EDIT: generated from openapi.yaml by `npm run gen:api`.\n';

const ast = await openapiTS(new URL('openapi.yaml', root), { alphabetize: false });
const generated = header + astToString(ast);

if (process.argv.includes('--check')) {
  const committed = await readFile(target, 'utf8').catch(() => '');
  if (committed !== generated) {
    console.error('src/api/openapi-types.ts is stale: openapi.yaml changed. Run `npm run gen:api` and commit the result.');
    process.exit(1);
  }
  console.log('src/api/openapi-types.ts matches openapi.yaml');
} else {
  await writeFile(target, generated);
  console.log(`wrote ${target}`);
}
