import { execFile, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import { parse } from 'yaml';
import { ROOT } from '../helpers/process.ts';
import { startTestService } from '../helpers/service.ts';

/**
 * docker-compose.yml, checked without Docker: its structure (PostgreSQL with a named volume
 * and a health check, an API, two workers, a demo receiver), that everything it points to in
 * the checkout exists, and that its health-check commands work against a live service. Where
 * Compose is installed (`docker compose` or `docker-compose`), `config -q` must accept the file too.
 */

const FILE = path.join(ROOT, 'docker-compose.yml');
const run = promisify(execFile);

interface Service {
  image?: string;
  command?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  networks?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
  ports?: string[];
}

interface Compose {
  services: Record<string, Service>;
  volumes: Record<string, unknown>;
  networks: Record<string, { ipam?: { config: { subnet: string }[] } } | null>;
}

// `<<:` merge keys (the shared x-hookrelay block) resolved as Compose resolves them.
const compose = parse(readFileSync(FILE, 'utf8'), { merge: true }) as Compose;
const services = Object.entries(compose.services);
const withRole = (role: string) => services.filter(([, s]) => s.command?.join(' ').includes(`serve --role ${role}`));

test('PostgreSQL with a named volume and a health check; API and workers wait for it', (t) => {
  const pg = compose.services.postgres!;
  t.regex(pg.image ?? '', /^postgres:\d+/);
  t.regex(pg.healthcheck?.test.join(' ') ?? '', /pg_isready/);
  const volume = pg.volumes?.find((v) => v.endsWith(':/var/lib/postgresql/data'))?.split(':')[0];
  t.truthy(volume && !volume.startsWith('.') && !volume.startsWith('/'), 'a named volume holds the data');
  t.true(Object.hasOwn(compose.volumes, volume!));
  for (const [name, service] of [...withRole('api'), ...withRole('worker')]) {
    t.is(service.depends_on?.postgres?.condition, 'service_healthy', name);
    t.regex(service.environment?.DATABASE_URL ?? '', /^postgres:\/\/[^@]+@postgres:5432\//, name);
    t.truthy(service.environment?.HOOKRELAY_MASTER_KEY, `${name} has the master key`);
  }
});

test('one API process (serve --role api) with a readyz health check, and two workers (--role worker)', (t) => {
  const api = withRole('api');
  t.is(api.length, 1);
  const [, apiService] = api[0]!;
  t.regex(apiService.healthcheck?.test.join(' ') ?? '', /\/readyz/);
  t.true(apiService.ports?.some((p) => p.endsWith(`:${apiService.environment?.PORT ?? '8080'}`)));
  const workers = withRole('worker');
  t.is(workers.length, 2);
  for (const [name, worker] of workers) {
    t.falsy(worker.ports, `${name} publishes no port`);
    // Its probes and /metrics on the backend network (HOOKRELAY_WORKER_PORT), checked like the API's.
    t.is(worker.environment?.HOOKRELAY_WORKER_PORT, '8080', name);
    t.deepEqual(worker.healthcheck?.test, apiService.healthcheck?.test, name);
  }
  // All hookrelay processes share one master key and one database.
  const keys = new Set([...api, ...workers].map(([, s]) => `${s.environment?.HOOKRELAY_MASTER_KEY} ${s.environment?.DATABASE_URL}`));
  t.is(keys.size, 1);
});

test('the demo receiver is examples/receiver, on the one private network workers may deliver to', (t) => {
  const receiver = compose.services.receiver!;
  const script = receiver.command?.find((arg) => arg.startsWith('examples/receiver/'));
  t.truthy(script);
  t.true(existsSync(path.join(ROOT, script!)));
  const secret = /whsec_([A-Za-z0-9+/=]+)/.exec(receiver.environment?.HOOKRELAY_SECRETS ?? '')?.[1];
  t.truthy(secret);
  const bytes = Buffer.from(secret!, 'base64').length;
  t.true(bytes >= 24 && bytes <= 64, `secret of ${bytes} bytes`);
  // The receivers network's subnet is exactly what the workers may deliver to.
  const subnet = compose.networks.receivers?.ipam?.config[0]?.subnet;
  t.truthy(subnet);
  for (const [name, worker] of withRole('worker')) {
    t.is(worker.environment?.HOOKRELAY_ALLOW_NETWORKS, subnet, name);
    t.true(worker.networks?.includes('receivers'), name);
  }
  t.true(receiver.networks?.includes('receivers'));
  t.false(compose.services.postgres!.networks?.includes('receivers') ?? true, 'PostgreSQL is not reachable from the receivers network');
});

test('every bind mount, named volume and network the services use exists', (t) => {
  for (const [name, service] of services) {
    for (const volume of service.volumes ?? []) {
      const source = volume.split(':')[0]!;
      if (source.startsWith('.') || source.startsWith('/')) t.true(existsSync(path.resolve(ROOT, source)), `${name}: ${source}`);
      else t.true(Object.hasOwn(compose.volumes, source), `${name}: volume ${source}`);
    }
    for (const network of service.networks ?? []) t.true(Object.hasOwn(compose.networks, network), `${name}: network ${network}`);
    for (const dependency of Object.keys(service.depends_on ?? {})) t.true(Object.hasOwn(compose.services, dependency), `${name} depends on ${dependency}`);
  }
});

test('the API health check command passes against a ready service and fails against a closed port', async (t) => {
  const svc = await startTestService(t);
  const [, api] = withRole('api')[0]!;
  const [node, ...args] = api.healthcheck!.test.slice(1);
  t.is(node, 'node');
  const port = Number(new URL(svc.url).port);
  const against = (p: number) => args.map((a) => a.replace('127.0.0.1:8080', `127.0.0.1:${p}`));
  await t.notThrowsAsync(run(process.execPath, against(port), { timeout: 20_000 }));
  // A port nothing listens on: take a free one and close it again.
  const closed = await new Promise<number>((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port: p } = server.address() as { port: number };
      server.close(() => resolve(p));
    });
  });
  await t.throwsAsync(run(process.execPath, against(closed), { timeout: 20_000 }));
});

// The Compose v2 plugin (`docker compose`) or the standalone v1 (`docker-compose`), whichever is here.
const composeCommand = [['docker', 'compose'], ['docker-compose']].find(([cmd, ...sub]) => spawnSync(cmd!, [...sub, 'version'], { timeout: 10_000 }).status === 0);
if (composeCommand) {
  test(`${composeCommand.join(' ')} config accepts the file`, async (t) => {
    const [cmd, ...sub] = composeCommand;
    const env: NodeJS.ProcessEnv = { ...process.env, HOOKRELAY_MASTER_KEY: Buffer.alloc(32, 1).toString('base64') };
    await t.notThrowsAsync(run(cmd!, [...sub, '-f', FILE, 'config', '-q'], { env, timeout: 30_000 }));
    // Without a master key Compose refuses to start anything, naming the variable.
    delete env.HOOKRELAY_MASTER_KEY;
    const refused = await run(cmd!, [...sub, '-f', FILE, 'config', '-q'], { env, timeout: 30_000 }).then(() => '', (err: { stderr?: string }) => err.stderr ?? 'failed');
    t.regex(refused, /HOOKRELAY_MASTER_KEY/);
  });
} else {
  test.skip('docker compose config: neither the docker compose plugin nor docker-compose is installed here', () => {});
}
