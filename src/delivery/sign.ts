import { createHmac } from 'node:crypto';

/**
 * Signing is pure: the same (id, timestamp, body, secret) always gives the same headers.
 *
 * Two header families carry the same facts. `webhook-*` follow Standard Webhooks (the
 * signature is `v1,` + base64 HMAC-SHA256), which the `standardwebhooks` libraries verify;
 * `X-Webhook-*` serve receivers written against the older `sha256=<hex>` convention.
 * Both sign `{id}.{timestamp}.{body}` with the bytes of the endpoint's `whsec_` secret.
 */

export const SECRET_PREFIX = 'whsec_';

export interface SignInput {
  webhookId: string;
  /** Unix time in seconds of this attempt. */
  timestamp: number;
  /** Exactly the bytes that are sent as the request body. */
  body: string | Buffer;
  /** `whsec_<base64>` */
  secret: string;
}

export function secretKey(secret: string): Buffer {
  if (!secret.startsWith(SECRET_PREFIX)) throw new Error('signing secret must start with whsec_');
  return Buffer.from(secret.slice(SECRET_PREFIX.length), 'base64');
}

export function signatureHeaders(input: SignInput): Record<string, string> {
  const mac = createHmac('sha256', secretKey(input.secret))
    .update(`${input.webhookId}.${input.timestamp}.`)
    .update(input.body)
    .digest();
  const timestamp = String(input.timestamp);
  return {
    'webhook-id': input.webhookId,
    'webhook-timestamp': timestamp,
    'webhook-signature': `v1,${mac.toString('base64')}`,
    'x-webhook-id': input.webhookId,
    'x-webhook-timestamp': timestamp,
    'x-webhook-signature': `sha256=${mac.toString('hex')}`,
  };
}
