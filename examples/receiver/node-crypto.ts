// A hookrelay receiver with nothing but node:crypto: no dependencies.
// Run: HOOKRELAY_SECRETS=whsec_new,whsec_old PORT=3000 node node-crypto.ts
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingHttpHeaders } from 'node:http';

const TOLERANCE_SECONDS = 5 * 60;
const MAX_BODY_BYTES = 1024 * 1024;

// One or more endpoint secrets, comma-separated: during a key rotation list both, so deliveries
// signed with either verify. The HMAC key is the base64-decoded part after `whsec_`.
const keys = (process.env.HOOKRELAY_SECRETS ?? '').split(',').map((s) => s.trim()).filter((s) => s !== '').map((s) => {
  if (!s.startsWith('whsec_')) throw new Error('every HOOKRELAY_SECRETS entry must start with whsec_');
  return Buffer.from(s.slice('whsec_'.length), 'base64');
});
if (keys.length === 0) throw new Error('set HOOKRELAY_SECRETS to one or more endpoint secrets (whsec_…), comma-separated');

/** The webhook id when some signature entry matches some key, else undefined. */
function verify(headers: IncomingHttpHeaders, body: Buffer): string | undefined {
  // hookrelay sends both header families; the Standard Webhooks one is preferred, and the
  // X-Webhook one (which can carry sha512=) is used when only it is present.
  const prefix = headers['webhook-signature'] ? 'webhook-' : 'x-webhook-';
  const id = headers[`${prefix}id`];
  const timestamp = headers[`${prefix}timestamp`];
  const signature = headers[`${prefix}signature`];
  if (typeof id !== 'string' || typeof timestamp !== 'string' || typeof signature !== 'string') return undefined;
  // Rejecting old (and future) timestamps stops a captured request from being replayed later.
  if (!/^\d+$/.test(timestamp) || Math.abs(Math.floor(Date.now() / 1000) - Number(timestamp)) > TOLERANCE_SECONDS) return undefined;

  // Signed content: `{id}.{timestamp}.{body}`, with the body's bytes exactly as received.
  const content = Buffer.concat([Buffer.from(`${id}.${timestamp}.`), body]);
  // `v1,<base64 sha256>` entries separated by spaces, or `sha256=<hex>` / `sha512=<hex>` by commas.
  const entries = prefix === 'webhook-'
    ? signature.split(' ').map((e) => e.split(',')).filter(([v]) => v === 'v1').map(([, s]) => ['sha256', Buffer.from(s ?? '', 'base64')] as const)
    : signature.split(',').map((e) => e.trim().split('=')).filter(([alg]) => alg === 'sha256' || alg === 'sha512').map(([alg, s]) => [alg!, Buffer.from(s ?? '', 'hex')] as const);
  const matches = entries.some(([alg, sig]) => keys.some((key) => {
    const expected = createHmac(alg, key).update(content).digest();
    // Constant-time comparison, so response timing reveals nothing about the expected value.
    return sig.length === expected.length && timingSafeEqual(sig, expected);
  }));
  return matches ? id : undefined;
}

createServer(async (req, res) => {
  // The raw bytes: parsing and re-serialising JSON would change them and break the signature.
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) return void res.writeHead(413, { connection: 'close' }).end();
    chunks.push(chunk as Buffer);
  }
  const id = verify(req.headers, Buffer.concat(chunks));
  // 400 with no details: which check failed is of use only to a forger.
  if (id === undefined) return void res.writeHead(400).end();
  console.log(`verified ${id}`);
  // Handle the event here (JSON.parse of the body); answer quickly, hookrelay retries on errors.
  res.writeHead(204).end();
}).listen(Number(process.env.PORT ?? 3000));
