import { readFileSync } from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { parse } from 'yaml';
import { SERVICE_NODE_FLAGS } from '../../src/node-flags.ts';
import { ROOT } from '../helpers/process.ts';

/**
 * The service's Node.js flags (src/node-flags.ts) are on every command that starts it from the
 * checkout: `npm start`, `npm run hookrelay` and the services of docker-compose.yml, each before
 * the script it runs (Node takes flags only there). The single binary carries them in its SEA
 * configuration; test/packaging/binary.test.ts reads them back from its start-up log line.
 */

test('the flags are a non-empty list of Node options', (t) => {
  t.true(SERVICE_NODE_FLAGS.length > 0);
  for (const flag of SERVICE_NODE_FLAGS) t.regex(flag, /^--[a-z-]+(=\S+)?$/);
});

test('npm start and npm run hookrelay pass the service flags to node, before the script', (t) => {
  const { scripts } = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  for (const [name, script] of [['start', 'src/main.ts'], ['hookrelay', 'src/cli.ts']] as const) {
    const words = scripts[name]!.split(/\s+/);
    t.is(words[0], 'node', name);
    const at = words.indexOf(script);
    t.true(at > 0, `${name} runs ${script}`);
    for (const flag of SERVICE_NODE_FLAGS) t.true(words.slice(1, at).includes(flag), `${name} passes ${flag}`);
  }
});

test('every docker-compose service that runs hookrelay passes the service flags, before the script', (t) => {
  const compose = parse(readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as { services: Record<string, { command?: string[] }> };
  const serving = Object.entries(compose.services).filter(([, s]) => s.command?.includes('serve'));
  t.true(serving.length >= 2);
  for (const [name, { command }] of serving) {
    t.is(command![0], 'node', name);
    const at = command!.indexOf('src/cli.ts');
    t.true(at > 0, name);
    for (const flag of SERVICE_NODE_FLAGS) t.true(command!.slice(1, at).includes(flag), `${name} passes ${flag}`);
  }
});
