import { randomBytes } from 'node:crypto';

/**
 * Prefixed, time-ordered ids (`msg_…`, `ep_…`, `tok_…`): 48 bits of milliseconds and 80 random
 * bits in Crockford base32, 26 characters after the prefix. Ordered by creation, so the primary
 * key index stays append-mostly and ids sort like their rows' created_at.
 */

const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

export const ID_PREFIX = Object.freeze({ webhook: 'msg', endpoint: 'ep', token: 'tok', key: 'key', deadLetter: 'dl' } as const);
export type IdKind = keyof typeof ID_PREFIX;

export function newId(kind: IdKind, now = Date.now()): string {
  let out = '';
  let time = now;
  for (let i = 0; i < 10; i++) {
    out = ALPHABET[time % 32] + out;
    time = Math.floor(time / 32);
  }
  const random = randomBytes(10);
  // 80 random bits as 16 base32 digits, 5 bits each.
  let bits = 0;
  let acc = 0;
  for (const byte of random) {
    acc = (acc << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += ALPHABET[(acc >> bits) & 31];
    }
    acc &= (1 << bits) - 1;
  }
  return `${ID_PREFIX[kind]}_${out}`;
}
