import test from 'ava';
import { Webhook } from 'standardwebhooks';
import { createHmac } from 'node:crypto';
import { newSecret, secretKey, signatureHeaders } from '../../src/delivery/sign.ts';

// Test vector from the Standard Webhooks specification's reference implementations.
const SPEC_SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
const SPEC_ID = 'msg_p5jXN8AQM9LWM0D4loKWxJek';
const SPEC_TS = 1614265330;
const SPEC_BODY = '{"test": 2432232314}';
const SPEC_SIG = 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=';

test('matches the Standard Webhooks reference signature', (t) => {
  const h = signatureHeaders({ webhookId: SPEC_ID, timestamp: SPEC_TS, body: SPEC_BODY, keys: [{ id: 'k', secret: SPEC_SECRET }] });
  t.is(h['webhook-signature'], SPEC_SIG);
  t.is(h['webhook-id'], SPEC_ID);
  t.is(h['webhook-timestamp'], String(SPEC_TS));
});

test('X-Webhook-Signature carries the same HMAC as hex', (t) => {
  const h = signatureHeaders({ webhookId: SPEC_ID, timestamp: SPEC_TS, body: SPEC_BODY, keys: [{ id: 'k', secret: SPEC_SECRET }] });
  const b64 = h['webhook-signature']!.slice(3);
  t.is(h['x-webhook-signature'], `sha256=${Buffer.from(b64, 'base64').toString('hex')}`);
  t.is(h['x-webhook-id'], SPEC_ID);
  t.is(h['x-webhook-timestamp'], String(SPEC_TS));
});

test('the standardwebhooks package verifies fresh signatures over arbitrary bodies', (t) => {
  const secret = newSecret();
  const wh = new Webhook(secret);
  for (const body of ['{}', '[1,2,3]', '"ünïcødé ✓"', JSON.stringify({ nested: { a: [null, true, 1.5] } })]) {
    const headers = signatureHeaders({ webhookId: 'msg_x', timestamp: Math.floor(Date.now() / 1000), body, keys: [{ id: 'k', secret }] });
    t.deepEqual(wh.verify(body, headers), JSON.parse(body));
  }
});

test('a changed body, id or timestamp fails verification', (t) => {
  const secret = newSecret();
  const wh = new Webhook(secret);
  const ts = Math.floor(Date.now() / 1000);
  const headers = signatureHeaders({ webhookId: 'msg_a', timestamp: ts, body: '{"a":1}', keys: [{ id: 'k', secret }] });
  t.throws(() => wh.verify('{"a":2}', headers));
  t.throws(() => wh.verify('{"a":1}', { ...headers, 'webhook-id': 'msg_b' }));
  t.throws(() => wh.verify('{"a":1}', { ...headers, 'webhook-timestamp': String(ts + 1) }));
});

test('signing is pure: same input, same headers', (t) => {
  const input = { webhookId: 'msg_1', timestamp: 1700000000, body: Buffer.from('{"x":1}'), keys: [{ id: 'k', secret: SPEC_SECRET }] };
  t.deepEqual(signatureHeaders(input), signatureHeaders({ ...input }));
  const expected = createHmac('sha256', secretKey(SPEC_SECRET)).update('msg_1.1700000000.{"x":1}').digest('base64');
  t.is(signatureHeaders(input)['webhook-signature'], `v1,${expected}`);
});

test('new secrets are whsec_ and 32 random bytes', (t) => {
  const a = newSecret();
  t.regex(a, /^whsec_[A-Za-z0-9+/]{43}=$/);
  t.is(secretKey(a).length, 32);
  t.not(a, newSecret());
  t.throws(() => secretKey('nope'));
});
