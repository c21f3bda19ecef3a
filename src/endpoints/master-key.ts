import { randomBytes } from 'node:crypto';
import { link, readFile, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ConfigError, type Config } from '../config.ts';
import type { Logger } from '../log.ts';
import { createKeyring, generateMasterKey, parseMasterKey, type Keyring } from './keyring.ts';

export const MASTER_KEY_FILE = 'master.key';

/**
 * The keyring for this process. HOOKRELAY_MASTER_KEY when set. Without it, the embedded
 * database gets a key generated once into its data directory (a laptop needs no setup, and
 * the key sits next to the data it protects, which is no worse than the data itself). With
 * DATABASE_URL and no key there is no safe default, so the start fails.
 */
export async function loadKeyring(config: Pick<Config, 'masterKey' | 'previousMasterKeys' | 'dataDir'>, log: Logger, embedded: boolean): Promise<Keyring> {
  const previous = config.previousMasterKeys.map((k) => parseMasterKey(k, 'HOOKRELAY_PREVIOUS_MASTER_KEYS'));
  if (config.masterKey) return createKeyring(parseMasterKey(config.masterKey), previous);
  if (!embedded) {
    throw new ConfigError('HOOKRELAY_MASTER_KEY is required when DATABASE_URL is set: it encrypts signing secrets at rest (generate one with `openssl rand -base64 32`)');
  }
  const file = path.join(config.dataDir, MASTER_KEY_FILE);
  let text = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  if (text === undefined) {
    const generated = generateMasterKey();
    // Written whole to a private temporary file, then linked into place: link() fails if the
    // name exists, so when two processes start at once exactly one key wins, and nobody ever
    // reads a half-written file.
    const temp = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
    await writeFile(temp, generated + '\n', { mode: 0o600, flag: 'wx' });
    try {
      await link(temp, file);
      log.warn('HOOKRELAY_MASTER_KEY is not set: generated one for the embedded database; back it up with the data, and set HOOKRELAY_MASTER_KEY in production', { file });
      text = generated;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      text = await readFile(file, 'utf8');
    } finally {
      await unlink(temp).catch(() => {});
    }
  }
  return createKeyring(parseMasterKey(text, file), previous);
}
