import test from 'ava';
import { randomBytes } from 'node:crypto';
import { createCursorCodec } from '../../src/api/cursor.ts';

const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

test('a cursor decodes to the position it was made from', (t) => {
  const codec = createCursorCodec(randomBytes(32), 'webhooks');
  const position = { id: 'wh_01JF3Y8Q6ZV7W3K2T9H4N5B6C7', createdAt: '2026-12-07T00:00:00.000Z' };
  t.deepEqual(codec.decode(codec.encode(position)), position);
});

test('every one-character change of a cursor is refused, the signature\'s last character too', (t) => {
  // The last base64url character of a 16-byte MAC carries 4 unused bits; a decoder that
  // compared decoded bytes would take a change there for the same signature.
  const codec = createCursorCodec(randomBytes(32), 'dead-letters');
  let checked = 0;
  for (let n = 0; n < 20; n++) {
    const cursor = codec.encode({ id: `dl_${n}` });
    for (let i = 0; i < cursor.length; i++) {
      if (cursor[i] === '.') continue;
      for (const c of BASE64URL) {
        if (c === cursor[i]) continue;
        const changed = cursor.slice(0, i) + c + cursor.slice(i + 1);
        const error = t.throws(() => codec.decode(changed), undefined, changed);
        t.regex(String((error as any)?.message ?? ''), /cursor|malformed/i);
        checked++;
      }
    }
  }
  t.true(checked > 20 * 30 * 60);
});

test('a cursor of another kind or another key is refused', (t) => {
  const key = randomBytes(32);
  const cursor = createCursorCodec(key, 'webhooks').encode({ id: 'wh_1' });
  t.throws(() => createCursorCodec(key, 'endpoints').decode(cursor));
  t.throws(() => createCursorCodec(randomBytes(32), 'webhooks').decode(cursor));
  for (const bad of ['', '.', 'abc', 'abc.', `.${cursor.split('.')[1]}`, `${cursor}.x`]) t.throws(() => createCursorCodec(key, 'webhooks').decode(bad), undefined, bad);
});
