import { spawn } from 'node:child_process';
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
