import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes } from 'node:crypto';

/**
 * Envelope encryption of signing secrets at rest: AES-256-GCM under the master key
 * (HOOKRELAY_MASTER_KEY), with the endpoint id and key id as additional authenticated data,
 * so a ciphertext copied into another row does not decrypt.
 *
 * Stored form: 1 byte version (1) ‖ 8 bytes master-key fingerprint ‖ 12 bytes nonce ‖
 * ciphertext ‖ 16 bytes tag. The fingerprint says which master key sealed a row, so the
 * master key can be rotated without downtime: run with the new key as HOOKRELAY_MASTER_KEY
 * and the old one in HOOKRELAY_PREVIOUS_MASTER_KEYS, then `hookrelay keys rewrap`.
 */

const VERSION = 1;
const FINGERPRINT_BYTES = 8;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;

export class KeyringError extends Error {
  override name = 'KeyringError';
}

export interface Keyring {
  /** Fingerprint of the current master key, hex; safe to log. */
  readonly fingerprint: string;
  seal(plaintext: string, endpointId: string, keyId: string): Buffer;
  open(sealed: Buffer, endpointId: string, keyId: string): string;
  /** True when the row was sealed with the current master key (nothing to rewrap). */
  isCurrent(sealed: Buffer): boolean;
  /** A 32-byte key for one purpose (e.g. signing pagination cursors), derived from the master key. */
  derive(purpose: string): Buffer;
}

export function fingerprintOf(masterKey: Buffer): Buffer {
  return createHash('sha256').update('hookrelay master key fingerprint').update(masterKey).digest().subarray(0, FINGERPRINT_BYTES);
}

/** Parses a base64 master key; it must decode to exactly 32 bytes. */
export function parseMasterKey(text: string, name = 'HOOKRELAY_MASTER_KEY'): Buffer {
  const trimmed = text.trim();
  const key = Buffer.from(trimmed, 'base64');
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(trimmed) || key.length !== 32) {
    throw new KeyringError(`${name} must be the base64 of exactly 32 bytes (e.g. \`openssl rand -base64 32\`)`);
  }
  return key;
}

export function generateMasterKey(): string {
  return randomBytes(32).toString('base64');
}

function aad(endpointId: string, keyId: string): Buffer {
  return Buffer.from(`hookrelay:signing-key:${endpointId}:${keyId}`, 'utf8');
}

export function createKeyring(current: Buffer, previous: Buffer[] = []): Keyring {
  const keys = new Map<string, Buffer>();
  for (const key of [...previous, current]) keys.set(fingerprintOf(key).toString('hex'), key);
  const currentPrint = fingerprintOf(current);
  return {
    fingerprint: currentPrint.toString('hex'),
    seal(plaintext, endpointId, keyId) {
      const nonce = randomBytes(NONCE_BYTES);
      const cipher = createCipheriv('aes-256-gcm', current, nonce);
      cipher.setAAD(aad(endpointId, keyId));
      const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
      return Buffer.concat([Buffer.from([VERSION]), currentPrint, nonce, body, cipher.getAuthTag()]);
    },
    open(sealed, endpointId, keyId) {
      if (sealed.length < 1 + FINGERPRINT_BYTES + NONCE_BYTES + TAG_BYTES || sealed[0] !== VERSION) {
        throw new KeyringError(`signing key ${keyId}: not a sealed secret`);
      }
      const print = sealed.subarray(1, 1 + FINGERPRINT_BYTES).toString('hex');
      const key = keys.get(print);
      if (!key) throw new KeyringError(`signing key ${keyId} was sealed with a master key this process does not have (fingerprint ${print})`);
      const nonce = sealed.subarray(1 + FINGERPRINT_BYTES, 1 + FINGERPRINT_BYTES + NONCE_BYTES);
      const body = sealed.subarray(1 + FINGERPRINT_BYTES + NONCE_BYTES, sealed.length - TAG_BYTES);
      const decipher = createDecipheriv('aes-256-gcm', key, nonce);
      decipher.setAAD(aad(endpointId, keyId));
      decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
      try {
        return Buffer.concat([decipher.update(body), decipher.final()]).toString('utf8');
      } catch {
        throw new KeyringError(`signing key ${keyId} does not decrypt for endpoint ${endpointId}: wrong row, wrong master key, or tampered`);
      }
    },
    isCurrent(sealed) {
      return sealed.subarray(1, 1 + FINGERPRINT_BYTES).equals(currentPrint);
    },
    derive(purpose) {
      return createHmac('sha256', current).update(`hookrelay:derive:${purpose}`).digest();
    },
  };
}
