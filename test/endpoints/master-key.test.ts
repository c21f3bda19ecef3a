import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import test, { type ExecutionContext } from 'ava';
import { ConfigError } from '../../src/config.ts';
import { createKeyring, fingerprintOf, generateMasterKey, KeyringError } from '../../src/endpoints/keyring.ts';
import { loadKeyring, MASTER_KEY_FILE } from '../../src/endpoints/master-key.ts';
import { createLogger } from '../../src/log.ts';

/** Where the master key comes from: the setting, or a file generated once for the embedded database. */

async function tempDir(t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'hookrelay-master-key-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function capturingLog() {
  const lines: Record<string, any>[] = [];
  const stream = new PassThrough();
  stream.on('data', (chunk: Buffer) => {
    for (const line of chunk.toString('utf8').split('\n')) if (line.trim()) lines.push(JSON.parse(line));
  });
  return { log: createLogger({ level: 'debug', stream }), lines };
}

const KEY_A = Buffer.alloc(32, 0xa).toString('base64');
const KEY_B = Buffer.alloc(32, 0xb).toString('base64');

test('HOOKRELAY_MASTER_KEY is used when set, embedded or not, and no file is written', async (t) => {
  const dir = await tempDir(t);
  const { log } = capturingLog();
  for (const embedded of [false, true]) {
    const ring = await loadKeyring({ masterKey: KEY_A, previousMasterKeys: [], dataDir: dir }, log, embedded);
    t.is(ring.fingerprint, fingerprintOf(Buffer.from(KEY_A, 'base64')).toString('hex'));
    const sealed = ring.seal('whsec_x', 'ep_1', 'key_1');
    t.is(createKeyring(Buffer.from(KEY_A, 'base64')).open(sealed, 'ep_1', 'key_1'), 'whsec_x');
  }
  await t.throwsAsync(stat(path.join(dir, MASTER_KEY_FILE)), { code: 'ENOENT' });
});

test('previous master keys are loaded: rows sealed with them open', async (t) => {
  const dir = await tempDir(t);
  const { log } = capturingLog();
  const old = createKeyring(Buffer.from(KEY_A, 'base64')).seal('whsec_old', 'ep_1', 'key_1');
  const ring = await loadKeyring({ masterKey: KEY_B, previousMasterKeys: [KEY_A], dataDir: dir }, log, false);
  t.is(ring.open(old, 'ep_1', 'key_1'), 'whsec_old');
  t.false(ring.isCurrent(old));
  const err = await t.throwsAsync(loadKeyring({ masterKey: KEY_B, previousMasterKeys: ['nope'], dataDir: dir }, log, false), { instanceOf: KeyringError });
  t.regex(err!.message, /HOOKRELAY_PREVIOUS_MASTER_KEYS/);
});

test('without a key and without the embedded database: a ConfigError naming HOOKRELAY_MASTER_KEY, and nothing written', async (t) => {
  const dir = await tempDir(t);
  const { log } = capturingLog();
  const err = await t.throwsAsync(loadKeyring({ masterKey: undefined, previousMasterKeys: [], dataDir: dir }, log, false), { instanceOf: ConfigError });
  t.regex(err!.message, /HOOKRELAY_MASTER_KEY/);
  await t.throwsAsync(stat(path.join(dir, MASTER_KEY_FILE)), { code: 'ENOENT' });
});

test('without a key, embedded: master.key is generated once (mode 0600) and reused', async (t) => {
  const dir = await tempDir(t);
  const { log, lines } = capturingLog();
  const config = { masterKey: undefined, previousMasterKeys: [], dataDir: dir };
  const first = await loadKeyring(config, log, true);
  const file = path.join(dir, MASTER_KEY_FILE);
  const info = await stat(file);
  t.is(info.mode & 0o777, 0o600);
  const text = await readFile(file, 'utf8');
  t.regex(text, /^[A-Za-z0-9+/]{43}=\n$/);
  t.is(first.fingerprint, fingerprintOf(Buffer.from(text.trim(), 'base64')).toString('hex'));
  const warnings = lines.filter((l) => l.level === 'warn' && /HOOKRELAY_MASTER_KEY/.test(l.message));
  t.is(warnings.length, 1);
  t.false(JSON.stringify(lines).includes(text.trim()), 'the generated key is never logged');

  const sealed = first.seal('whsec_kept', 'ep_1', 'key_1');
  const second = await loadKeyring(config, log, true);
  t.is(second.fingerprint, first.fingerprint);
  t.is(second.open(sealed, 'ep_1', 'key_1'), 'whsec_kept');
  t.is(await readFile(file, 'utf8'), text, 'the file is not rewritten');
  t.is(lines.filter((l) => l.level === 'warn' && /HOOKRELAY_MASTER_KEY/.test(l.message)).length, 1, 'warned only when generated');
});

test('an existing master.key (e.g. restored from a backup) is used as is', async (t) => {
  const dir = await tempDir(t);
  const { log } = capturingLog();
  const key = generateMasterKey();
  await writeFile(path.join(dir, MASTER_KEY_FILE), key + '\n', { mode: 0o600 });
  const ring = await loadKeyring({ masterKey: undefined, previousMasterKeys: [], dataDir: dir }, log, true);
  t.is(ring.fingerprint, fingerprintOf(Buffer.from(key, 'base64')).toString('hex'));
});

test('a corrupt master.key is refused with a message naming the file', async (t) => {
  const dir = await tempDir(t);
  const { log } = capturingLog();
  const file = path.join(dir, MASTER_KEY_FILE);
  await writeFile(file, 'not a key\n', { mode: 0o600 });
  const err = await t.throwsAsync(loadKeyring({ masterKey: undefined, previousMasterKeys: [], dataDir: dir }, log, true), { instanceOf: KeyringError });
  t.true(err!.message.includes(file), err!.message);
  t.is(await readFile(file, 'utf8'), 'not a key\n', 'left alone, not overwritten');
});

test('two concurrent calls on a fresh directory agree on one key', async (t) => {
  const { log } = capturingLog();
  // Repeated: the race between creating the file and writing its content is a narrow one.
  const rounds = 500;
  const failures: string[] = [];
  for (let i = 0; i < rounds; i++) {
    const dir = await tempDir(t);
    const config = { masterKey: undefined, previousMasterKeys: [], dataDir: dir };
    const results = await Promise.allSettled([loadKeyring(config, log, true), loadKeyring(config, log, true)]);
    const errors = results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason));
    if (errors.length > 0) {
      failures.push(`round ${i}: ${errors.join('; ')}`);
      continue;
    }
    const [a, b] = results.map((r) => (r as PromiseFulfilledResult<Awaited<ReturnType<typeof loadKeyring>>>).value);
    const text = (await readFile(path.join(dir, MASTER_KEY_FILE), 'utf8')).trim();
    const expected = fingerprintOf(Buffer.from(text, 'base64')).toString('hex');
    if (a!.fingerprint !== b!.fingerprint || a!.fingerprint !== expected) failures.push(`round ${i}: ${a!.fingerprint} / ${b!.fingerprint} / file ${expected}`);
  }
  t.deepEqual(failures, [], `${failures.length} of ${rounds} rounds disagreed or failed`);
});

test.serial('two concurrent calls agree even when writing the new key is slow (the file exists before its content)', async (t) => {
  // writeFile(…, { flag: 'wx' }) is open(O_CREAT|O_EXCL) and then write: between the two, the
  // file exists and is empty. A slow disk or a descheduled process widens that window; here it
  // is widened to 100 ms by wrapping fs/promises.writeFile for this test process only.
  const require = createRequire(import.meta.url);
  const fsp = require('node:fs/promises') as typeof import('node:fs/promises');
  const original = fsp.writeFile;
  const slow = async (file: Parameters<typeof original>[0], data: Parameters<typeof original>[1], options?: Parameters<typeof original>[2]): Promise<void> => {
    if (typeof options === 'object' && options !== null && options.flag === 'wx') {
      const handle = await fsp.open(file as string, 'wx', options.mode ?? 0o666);
      try {
        await new Promise((r) => setTimeout(r, 100));
        await handle.writeFile(data as string);
      } finally {
        await handle.close();
      }
      return;
    }
    return original(file, data, options);
  };
  fsp.writeFile = slow as typeof original;
  syncBuiltinESMExports();
  t.teardown(() => {
    fsp.writeFile = original;
    syncBuiltinESMExports();
  });

  const dir = await tempDir(t);
  const { log } = capturingLog();
  const config = { masterKey: undefined, previousMasterKeys: [], dataDir: dir };
  const results = await Promise.allSettled([loadKeyring(config, log, true), loadKeyring(config, log, true)]);
  const text = (await readFile(path.join(dir, MASTER_KEY_FILE), 'utf8')).trim();
  t.regex(text, /^[A-Za-z0-9+/]{43}=$/, 'the winner wrote its key');
  const expected = fingerprintOf(Buffer.from(text, 'base64')).toString('hex');
  t.deepEqual(results.map((r) => (r.status === 'fulfilled' ? r.value.fingerprint : `rejected: ${String(r.reason)}`)), [expected, expected]);
});
