import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { loadSpec, type Operation } from '../../src/api/spec.ts';

/**
 * Response validators compiled from openapi.yaml, as src/api/spec.ts compiles the request
 * schemas, with every object that lists its properties closed: an answer carrying a field the
 * document does not describe fails too. startTestService checks every answer the service
 * gives with checkResponse(); test/api/contract.test.ts uses the validators directly.
 */

export const spec = loadSpec();
export const doc = spec.document;

const SPEC_ID = 'urn:hookrelay:openapi:responses';

function rewriteRefs(schema: unknown): any {
  if (Array.isArray(schema)) return schema.map(rewriteRefs);
  if (schema === null || typeof schema !== 'object') return schema;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(schema)) out[k] = k === '$ref' && typeof v === 'string' && v.startsWith('#/') ? SPEC_ID + v : rewriteRefs(v);
  return out;
}

/** Adds `unevaluatedProperties: false` to every object schema that lists properties and says nothing of others. */
function closeObjects(schema: unknown): any {
  if (Array.isArray(schema)) return schema.map(closeObjects);
  if (schema === null || typeof schema !== 'object') return schema;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(schema)) out[k] = k === 'examples' ? v : closeObjects(v);
  if (out.properties && out.additionalProperties === undefined && out.unevaluatedProperties === undefined) out.unevaluatedProperties = false;
  return out;
}

export const ajv = new Ajv2020({ allErrors: true, strict: false });
(addFormats as unknown as (a: Ajv2020) => void)(ajv);
ajv.addSchema({ $id: SPEC_ID, components: closeObjects(doc.components) });

/** Follows local `$ref`s to the object they name. */
export function resolve<T = any>(node: any): T {
  if (!node?.$ref) return node as T;
  const target = (node.$ref as string).replace(/^#\//, '').split('/').reduce<any>((n, key) => n?.[key], doc);
  if (!target) throw new Error(`unresolved ${node.$ref}`);
  return resolve(target);
}

export function op(operationId: string): Operation {
  const found = spec.operations.get(operationId);
  if (!found) throw new Error(`no operation ${operationId}`);
  return found;
}

/** The responses an operation declares, by status code (as text: '200', '4XX', 'default'). */
export function declaredResponses(operationId: string): Record<string, any> {
  const o = op(operationId);
  return doc.paths[o.path][o.method.toLowerCase()].responses ?? {};
}

/** The response object for a status: the exact code, else its range (`4XX`), else `default`. */
function findResponse(operationId: string, status: number): any {
  const responses = declaredResponses(operationId);
  const def = responses[String(status)] ?? responses[`${String(status)[0]}XX`] ?? responses.default;
  return def ? resolve(def) : undefined;
}

export function responseDef(operationId: string, status: number): any {
  const def = findResponse(operationId, status);
  if (!def) throw new Error(`${operationId} documents no ${status} response`);
  return def;
}

const validators = new Map<string, ValidateFunction>();
export function validatorFor(operationId: string, status: number, mediaType: string): ValidateFunction {
  const key = `${operationId} ${status} ${mediaType}`;
  let v = validators.get(key);
  if (!v) {
    const schema = responseDef(operationId, status).content?.[mediaType]?.schema;
    if (!schema) throw new Error(`${key}: no schema in the document`);
    v = ajv.compile(closeObjects(rewriteRefs(schema)));
    validators.set(key, v);
  }
  return v;
}

export interface ResponseSeen {
  method: string;
  status: number;
  /** The media type without parameters, e.g. `application/problem+json`; '' when none. */
  contentType: string;
  headers: Record<string, string | string[] | number | undefined>;
  /** The body as sent: parsed JSON for JSON media types, text otherwise, undefined when empty. */
  body: unknown;
}

const baseType = (mediaType: string) => mediaType.split(';')[0]!.trim().toLowerCase();
const isJson = (mediaType: string) => mediaType === 'application/json' || mediaType.endsWith('+json');

/**
 * What is wrong with an answer, measured against the operation's declared responses: an
 * undeclared status, an undeclared media type, a declared header with a value outside its
 * enum, a body that does not match its schema. Empty when the answer conforms.
 */
export function checkResponse(operationId: string, res: ResponseSeen): string[] {
  const where = `${operationId} ${res.status}`;
  const def = findResponse(operationId, res.status);
  if (!def) return [`${where}: status not declared (declared: ${Object.keys(declaredResponses(operationId)).join(', ')})`];
  const problems: string[] = [];
  for (const [name, header] of Object.entries<any>(def.headers ?? {})) {
    const raw = res.headers[name.toLowerCase()];
    const h = resolve(header);
    if (raw === undefined) {
      if (h.required) problems.push(`${where}: required header ${name} missing`);
      continue;
    }
    const enumValues: unknown[] | undefined = h.schema?.enum;
    if (enumValues && !enumValues.includes(String(raw))) problems.push(`${where}: header ${name}=${String(raw)} not in ${enumValues.join(', ')}`);
    if (h.schema?.type === 'integer' && !/^\d+$/.test(String(raw))) problems.push(`${where}: header ${name}=${String(raw)} is not an integer`);
  }
  const content: Record<string, any> = def.content ?? {};
  const mediaTypes = Object.keys(content);
  if (mediaTypes.length === 0) {
    if (res.body !== undefined && res.body !== '' && res.method !== 'HEAD') problems.push(`${where}: a body where the document declares none`);
    return problems;
  }
  if (res.method === 'HEAD') return problems;
  // A declared media type may carry parameters (`text/plain; version=0.0.4`); Koa's type has none.
  const mediaType = mediaTypes.find((m) => m === res.contentType || baseType(m) === res.contentType);
  if (!mediaType) {
    problems.push(`${where}: content type ${res.contentType || '(none)'} is not one of ${mediaTypes.join(', ')}`);
    return problems;
  }
  const schema = content[mediaType]?.schema;
  // A streamed body is not at hand (undefined): its status and media type were checked.
  if (!schema || res.body === undefined) return problems;
  if (isJson(res.contentType) || typeof res.body === 'string') {
    const validate = validatorFor(operationId, res.status, mediaType);
    if (!validate(res.body)) problems.push(`${where}: ${ajv.errorsText(validate.errors)} in ${JSON.stringify(res.body)?.slice(0, 500)}`);
  }
  return problems;
}

/** Koa's view of an answer, serialized as the wire would carry it. */
export function seenFromKoa(ctx: { method: string; status: number; body: unknown; response: { type: string; headers: Record<string, any> } }): ResponseSeen {
  let body: unknown = ctx.body;
  const contentType = (ctx.response.type ?? '').split(';')[0]!.trim();
  if (body === null || body === undefined) {
    body = undefined;
  } else if (Buffer.isBuffer(body) || typeof body === 'string') {
    const text = body.toString();
    body = isJson(contentType) ? safeParse(text) : text;
  } else if (typeof (body as { pipe?: unknown }).pipe === 'function') {
    // A stream: its bytes are not at hand here; the status and type are still checked.
    body = undefined;
  } else {
    body = JSON.parse(JSON.stringify(body));
  }
  return { method: ctx.method, status: ctx.status, contentType, headers: ctx.response.headers, body };
}

function safeParse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
