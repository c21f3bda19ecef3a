import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { ExecutionContext } from 'ava';
import { SETTINGS } from '../../src/config.ts';
import { TEST_ALLOW_NETWORKS } from './service.ts';

/** Child processes of the tests: the CLI, psql. Each is killed by pid if it outlives its test. */

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const CLI = fileURLToPath(new URL('../../src/cli.ts', import.meta.url));

export interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * The environment for a hookrelay child process: this process's, without any hookrelay
 * setting it may carry, plus loopback delivery for test receivers, plus `env`.
 */
export function hookrelayEnv(env: Record<string, string> = {}): NodeJS.ProcessEnv {
  const base: NodeJS.ProcessEnv = { ...process.env };
  for (const s of SETTINGS) delete base[s.env];
  return { ...base, HOOKRELAY_ALLOW_NETWORKS: TEST_ALLOW_NETWORKS, ...env };
}

/** Runs `command` to its end (killed after timeoutMs) and collects its output. */
export function run(t: ExecutionContext | undefined, command: string, args: string[], options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<Run> {
  const child = spawn(command, args, { cwd: ROOT, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
  const done = new Promise<Run>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
  t?.teardown(async () => {
    clearTimeout(timer);
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await done.catch(() => undefined);
    }
  });
  return done;
}

/** `node src/cli.ts …` with only the given hookrelay settings. */
export function runCli(t: ExecutionContext, args: string[], env: Record<string, string>): Promise<Run> {
  return run(t, process.execPath, [CLI, ...args], { env: hookrelayEnv(env) });
}

export interface ServiceProcess {
  child: ChildProcess;
  pid: number;
  /** Every JSON log line written to stdout so far (a line that is not JSON as `{message, unparsed}`). */
  logs: Record<string, any>[];
  stderr: () => string;
  /** The API's port, once 'api listening' was logged (api role only). */
  port: number | undefined;
  /** Resolves with the first log line (past or future) for which `match` is true. */
  waitForLog(match: (line: Record<string, any>) => boolean, timeoutMs?: number): Promise<Record<string, any>>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
}

/**
 * A long-running hookrelay process (`node <args>`) whose JSON log lines are collected as they
 * come; it is SIGKILLed by pid at the end of the test if still running.
 */
export function spawnService(t: ExecutionContext, args: string[], env: NodeJS.ProcessEnv): ServiceProcess {
  const child = spawn(process.execPath, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal, at: Date.now() }));
  });
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      process.kill(child.pid!, 'SIGKILL');
      await exited;
    }
  });
  const logs: Record<string, any>[] = [];
  const watchers: { match: (l: Record<string, any>) => boolean; resolve: (l: Record<string, any>) => void }[] = [];
  let rest = '';
  let stderr = '';
  const recent = () => `stderr: ${stderr.slice(-2000)}; last logs: ${JSON.stringify(logs.slice(-5))}`;
  const proc: ServiceProcess = {
    child,
    pid: child.pid!,
    logs,
    stderr: () => stderr,
    port: undefined,
    waitForLog(match, timeoutMs = 60_000) {
      const found = logs.find(match);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`process ${child.pid} did not log the expected line within ${timeoutMs} ms; ${recent()}`)), timeoutMs);
        void exited.then(() => reject(new Error(`process ${child.pid} exited before logging the expected line; ${recent()}`)));
        watchers.push({ match, resolve: (l) => { clearTimeout(timer); resolve(l); } });
      });
    },
    exited,
  };
  child.stdout!.on('data', (chunk: Buffer) => {
    rest += chunk.toString('utf8');
    const lines = rest.split('\n');
    rest = lines.pop() ?? '';
    for (const line of lines) {
      if (!line.trim()) continue;
      let entry: Record<string, any>;
      try {
        entry = JSON.parse(line);
      } catch {
        entry = { message: line, unparsed: true };
      }
      logs.push(entry);
      if (entry.message === 'api listening') proc.port = entry.port;
      for (let i = watchers.length - 1; i >= 0; i--) {
        if (watchers[i]!.match(entry)) watchers.splice(i, 1)[0]!.resolve(entry);
      }
    }
  });
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  return proc;
}
