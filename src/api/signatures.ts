import { PUBLIC_KEY_PREFIX } from '../delivery/sign.ts';
import { verifySignature, DEFAULT_TOLERANCE_SECONDS, type VerifyKey } from '../delivery/verify.ts';
import { activeKeys } from '../endpoints/keys.ts';
import { requireEndpoint } from '../endpoints/store.ts';
import { AppError, badField, fieldError } from '../errors.ts';
import type { components } from './openapi-types.ts';
import type { Handler } from './app.ts';
import { checkSecret } from './endpoints.ts';

type VerifyRequest = components['schemas']['VerifyRequest'];

/** A key given to the verify API: a `whsec_` secret, or the `whpk_` public key of an ed25519 endpoint. */
function givenKey(secret: string): VerifyKey {
  if (secret.startsWith(PUBLIC_KEY_PREFIX)) {
    const body = secret.slice(PUBLIC_KEY_PREFIX.length);
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(body) || Buffer.from(body, 'base64').length !== 32) {
      throw badField('secret', 'must be whpk_ followed by the base64 of a 32-byte ed25519 public key', 'invalid_secret');
    }
    return { publicKey: secret };
  }
  return { secret: checkSecret(secret, 'hmac') };
}

const verifySignatureHandler: Handler = async (ctx, deps) => {
  const body = ctx.request.body as VerifyRequest;
  if ((body.endpointId === undefined) === (body.secret === undefined)) {
    throw new AppError(400, 'validation_failed', 'give exactly one of endpointId and secret', {
      errors: [fieldError(body.endpointId === undefined ? 'secret' : 'endpointId', body.endpointId === undefined ? 'is required (or endpointId)' : 'cannot be given together with secret')],
    });
  }
  let keys: VerifyKey[];
  if (body.endpointId !== undefined) {
    const endpoint = await requireEndpoint(deps.db, body.endpointId);
    keys = (await activeKeys(deps.db, deps.keyring, [endpoint.id])).get(endpoint.id) ?? [];
  } else {
    keys = [givenKey(body.secret!)];
  }
  const result = verifySignature({
    body: body.body,
    headers: body.headers,
    keys,
    toleranceSeconds: body.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS,
    now: Date.now(),
  });
  ctx.body = {
    valid: result.valid,
    scheme: result.scheme,
    reason: result.reason,
    ...(result.keyId ? { keyId: result.keyId } : {}),
  };
};

export const signatureHandlers: Record<string, Handler> = { verifySignature: verifySignatureHandler };
