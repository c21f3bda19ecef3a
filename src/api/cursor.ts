import { createHmac, timingSafeEqual } from 'node:crypto';
import { badField } from '../errors.ts';

/**
 * Opaque, tamper-evident pagination cursors: base64url(JSON position) + "." + a 16-byte
 * HMAC. A cursor is only a position; filters travel with each request. An edited cursor
 * (or one made by another installation) is a 400 rather than a surprising page.
 */

export interface CursorCodec {
  encode(position: Record<string, string>): string;
  decode(cursor: string): Record<string, string>;
}

export function createCursorCodec(key: Buffer, kind: string): CursorCodec {
  const mac = (data: string) => createHmac('sha256', key).update(`${kind}:${data}`).digest().subarray(0, 16);
  return {
    encode(position) {
      const data = Buffer.from(JSON.stringify(position)).toString('base64url');
      return `${data}.${mac(data).toString('base64url')}`;
    },
    decode(cursor) {
      const [data, sig, extra] = cursor.split('.');
      // The signature's text is compared, not its decoded bytes: base64url's last character of
      // 16 bytes carries 4 unused bits, so a changed character could decode to the same MAC.
      const given = Buffer.from(sig ?? '');
      const expected = Buffer.from(data ? mac(data).toString('base64url') : '');
      if (!data || extra !== undefined || given.length !== expected.length || !timingSafeEqual(given, expected)) {
        throw badField('cursor', 'is not a cursor this API gave out (was it changed, or taken from another list?)', 'invalid_cursor');
      }
      const position = JSON.parse(Buffer.from(data, 'base64url').toString('utf8')) as unknown;
      if (!position || typeof position !== 'object' || Array.isArray(position)) throw badField('cursor', 'is malformed', 'invalid_cursor');
      return position as Record<string, string>;
    },
  };
}
