import { randomBytes } from 'node:crypto';
import test from 'ava';
import { createKeyring, fingerprintOf, generateMasterKey, KeyringError, parseMasterKey } from '../../src/endpoints/keyring.ts';

/** The envelope encryption of signing secrets, as pure functions: no database, no clock. */

const A = Buffer.alloc(32, 1);
const B = Buffer.alloc(32, 2);
const SECRET = 'whsec_' + Buffer.alloc(32, 9).toString('base64');

test('seal then open gives the secret back; sealing twice gives different bytes', (t) => {
  const ring = createKeyring(A);
  const one = ring.seal(SECRET, 'ep_1', 'key_1');
  const two = ring.seal(SECRET, 'ep_1', 'key_1');
  t.is(ring.open(one, 'ep_1', 'key_1'), SECRET);
  t.is(ring.open(two, 'ep_1', 'key_1'), SECRET);
  t.false(one.equals(two), 'a fresh nonce per seal');
  // 1 version + 8 fingerprint + 12 nonce + ciphertext + 16 tag.
  t.is(one.length, 1 + 8 + 12 + Buffer.byteLength(SECRET) + 16);
  t.is(one[0], 1);
  t.true(one.subarray(1, 9).equals(fingerprintOf(A)));
  t.false(one.includes(Buffer.from(SECRET)), 'the plaintext does not appear in the sealed bytes');
  // Unicode and the empty string survive too.
  t.is(ring.open(ring.seal('ünïcødé ✓', 'ep_1', 'key_1'), 'ep_1', 'key_1'), 'ünïcødé ✓');
  t.is(ring.open(ring.seal('', 'ep_1', 'key_1'), 'ep_1', 'key_1'), '');
});

test('a sealed secret copied to another endpoint or key id does not open', (t) => {
  const ring = createKeyring(A);
  const sealed = ring.seal(SECRET, 'ep_1', 'key_1');
  for (const [endpointId, keyId] of [['ep_2', 'key_1'], ['ep_1', 'key_2'], ['ep_2', 'key_2'], ['', ''], ['ep_1:key_1', ''], ['ep', '1:key_1']]) {
    const err = t.throws(() => ring.open(sealed, endpointId!, keyId!), { instanceOf: KeyringError }, `${endpointId} / ${keyId}`);
    t.notRegex(err?.message ?? '', /whsec_/);
  }
  t.is(ring.open(sealed, 'ep_1', 'key_1'), SECRET);
});

test('a flipped byte anywhere in the sealed bytes fails to open', (t) => {
  const ring = createKeyring(A);
  const sealed = ring.seal(SECRET, 'ep_1', 'key_1');
  for (let i = 0; i < sealed.length; i++) {
    for (const mask of [0x01, 0x80, 0xff]) {
      const bad = Buffer.from(sealed);
      bad[i] = bad[i]! ^ mask;
      t.throws(() => ring.open(bad, 'ep_1', 'key_1'), { instanceOf: KeyringError }, `byte ${i} ^ ${mask}`);
    }
  }
  // Truncated or extended bytes fail too.
  t.throws(() => ring.open(sealed.subarray(0, sealed.length - 1), 'ep_1', 'key_1'), { instanceOf: KeyringError });
  t.throws(() => ring.open(Buffer.concat([sealed, Buffer.from([0])]), 'ep_1', 'key_1'), { instanceOf: KeyringError });
  t.throws(() => ring.open(Buffer.alloc(0), 'ep_1', 'key_1'), { instanceOf: KeyringError });
  t.throws(() => ring.open(sealed.subarray(0, 1 + 8 + 12 + 16 - 1), 'ep_1', 'key_1'), { instanceOf: KeyringError });
});

test('a previous master key opens old rows, and isCurrent tells old from new', (t) => {
  const old = createKeyring(A);
  const oldRow = old.seal(SECRET, 'ep_1', 'key_1');
  t.true(old.isCurrent(oldRow));

  const rotated = createKeyring(B, [A]);
  t.is(rotated.fingerprint, fingerprintOf(B).toString('hex'));
  t.is(rotated.open(oldRow, 'ep_1', 'key_1'), SECRET);
  t.false(rotated.isCurrent(oldRow));
  const newRow = rotated.seal(SECRET, 'ep_1', 'key_1');
  t.true(rotated.isCurrent(newRow));
  t.true(newRow.subarray(1, 9).equals(fingerprintOf(B)), 'new rows are sealed with the current key, never a previous one');
  t.is(rotated.open(newRow, 'ep_1', 'key_1'), SECRET);

  // Several previous keys: each opens its own rows.
  const C = Buffer.alloc(32, 3);
  const cRow = createKeyring(C).seal('whsec_c', 'ep_9', 'key_9');
  const ring = createKeyring(B, [C, A]);
  t.is(ring.open(cRow, 'ep_9', 'key_9'), 'whsec_c');
  t.is(ring.open(oldRow, 'ep_1', 'key_1'), SECRET);
  t.false(ring.isCurrent(cRow));

  // The previous key does not open rows of the new one.
  t.throws(() => createKeyring(A).open(newRow, 'ep_1', 'key_1'), { instanceOf: KeyringError });
});

test('a row sealed with a master key the process does not have: a clear error naming its fingerprint', (t) => {
  const row = createKeyring(A).seal(SECRET, 'ep_1', 'key_1');
  const print = fingerprintOf(A).toString('hex');
  t.is(print.length, 16);
  const err = t.throws(() => createKeyring(B).open(row, 'ep_1', 'key_1'), { instanceOf: KeyringError });
  t.true(err!.message.includes(print), err!.message);
  t.regex(err!.message, /master key/);
  t.true(err!.message.includes('key_1'), 'names the key row');
  t.false(err!.message.includes(SECRET));
  // Not confused with a tampered row of a known key.
  t.false(createKeyring(B).isCurrent(row));
});

test('parseMasterKey accepts exactly 32 base64 bytes and rejects the rest, naming the setting', (t) => {
  const good = generateMasterKey();
  t.is(parseMasterKey(good).length, 32);
  t.true(parseMasterKey(`  ${good}\n`).equals(Buffer.from(good, 'base64')), 'surrounding white space is ignored');
  t.true(parseMasterKey(A.toString('base64')).equals(A));

  const bad = [
    '',
    '   ',
    randomBytes(31).toString('base64'),
    randomBytes(33).toString('base64'),
    randomBytes(16).toString('base64'),
    randomBytes(64).toString('base64'),
    randomBytes(32).toString('hex'), // 64 hex characters decode to 48 base64 bytes
    randomBytes(32).toString('base64url').replace(/[^-_]/, '-') + '-', // base64url alphabet
    '!'.repeat(44),
    good.slice(0, 20) + ' ' + good.slice(20),
    '=' + good,
  ];
  for (const text of bad) {
    const err = t.throws(() => parseMasterKey(text), { instanceOf: KeyringError }, JSON.stringify(text));
    t.regex(err!.message, /HOOKRELAY_MASTER_KEY/);
    t.regex(err!.message, /32 bytes/);
  }
  const named = t.throws(() => parseMasterKey('short', 'HOOKRELAY_PREVIOUS_MASTER_KEYS'), { instanceOf: KeyringError });
  t.regex(named!.message, /^HOOKRELAY_PREVIOUS_MASTER_KEYS/);
});

test('derive gives a 32-byte key per purpose and per master key, stable for the same pair', (t) => {
  const a = createKeyring(A);
  const b = createKeyring(B);
  t.is(a.derive('cursor').length, 32);
  t.true(a.derive('cursor').equals(createKeyring(A, [B]).derive('cursor')), 'same master key, same purpose: same key (previous keys do not matter)');
  t.false(a.derive('cursor').equals(a.derive('other')));
  t.false(a.derive('cursor').equals(a.derive('cursor ')));
  t.false(a.derive('cursor').equals(a.derive('')));
  t.false(a.derive('cursor').equals(b.derive('cursor')));
  t.false(createKeyring(B, [A]).derive('cursor').equals(a.derive('cursor')), 'derived from the current key, not a previous one');
  t.false(a.derive('cursor').equals(A), 'never the master key itself');
  t.false(a.derive('cursor').equals(fingerprintOf(A)));
});

test('the fingerprint identifies the master key and reveals nothing of it', (t) => {
  const ring = createKeyring(A);
  t.regex(ring.fingerprint, /^[0-9a-f]{16}$/);
  t.not(ring.fingerprint, createKeyring(B).fingerprint);
  t.false(A.toString('hex').includes(ring.fingerprint));
});
