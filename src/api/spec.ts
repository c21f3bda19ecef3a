import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { parse } from 'yaml';
import { readAsset } from '../assets.ts';
import { fieldError, type FieldError } from '../errors.ts';
import { isScope } from './tokens.ts';

/**
 * openapi.yaml, loaded once and compiled into validators. The document is the contract: the
 * routes are registered from its paths and every request is checked against its schemas.
 */

export const OPENAPI_PATH = fileURLToPath(new URL('../../openapi.yaml', import.meta.url));

interface ParameterObject {
  name: string;
  in: 'header' | 'query' | 'path' | 'cookie';
  required?: boolean;
  schema?: object;
}

export interface Operation {
  operationId: string;
  method: string;
  /** The OpenAPI path, e.g. `/api/v1/webhooks/{id}`. */
  path: string;
  /** The same path in the router's syntax, e.g. `/api/v1/webhooks/:id`. */
  routerPath: string;
  /** Whether the operation needs a bearer token (the document's security, with `[]` for none). */
  secured: boolean;
  /**
   * The scopes a token needs, all of them, as the operation's security requirement lists them
   * (`security: [{ bearerAuth: [webhooks:write] }]`; OpenAPI 3.1 allows role names for
   * non-OAuth schemes). Empty for open operations.
   */
  scopes: readonly string[];
  body: { required: boolean; validate: ValidateFunction } | undefined;
  headers: { name: string; required: boolean; validate: ValidateFunction }[];
  query: QueryParam[];
}

export interface QueryParam {
  name: string;
  required: boolean;
  validate: ValidateFunction;
  /** Query strings are text: integers and booleans are converted before validation. */
  coerce(value: string): unknown;
}

function coercer(schema: Record<string, any> | undefined): (value: string) => unknown {
  const type = schema?.type;
  if (type === 'integer' || type === 'number') return (v) => (/^-?\d+(\.\d+)?$/.test(v) ? Number(v) : v);
  if (type === 'boolean') return (v) => (v === 'true' ? true : v === 'false' ? false : v);
  return (v) => v;
}

export interface Spec {
  document: Record<string, any>;
  operations: Map<string, Operation>;
}

const SPEC_ID = 'urn:hookrelay:openapi';
const METHODS = ['get', 'put', 'post', 'delete', 'patch'];

/** The document (openapi.yaml as shipped, or `file` when given). */
export function loadSpec(file?: string): Spec {
  const document = parse(file === undefined ? readAsset('openapi.yaml').toString('utf8') : readFileSync(file, 'utf8')) as Record<string, any>;
  const ajv = new Ajv2020({ allErrors: true, strict: false, coerceTypes: false, verbose: true });
  (addFormats as unknown as (a: Ajv2020) => void)(ajv);
  ajv.addSchema({ $id: SPEC_ID, components: document.components });
  const resolve = <T>(obj: T): T => {
    const ref = (obj as { $ref?: string })?.$ref;
    if (!ref) return obj;
    const target = ref.replace(/^#\//, '').split('/').reduce<any>((node, key) => node?.[key], document);
    if (!target) throw new Error(`openapi.yaml: unresolved ${ref}`);
    return resolve(target);
  };
  const compile = (schema: object) => ajv.compile(rewriteRefs(schema));
  const operations = new Map<string, Operation>();
  const globalSecurity: unknown[] = Array.isArray(document.security) ? document.security : [];
  for (const [path, item] of Object.entries<Record<string, any>>(document.paths ?? {})) {
    for (const method of METHODS) {
      const op = item[method];
      if (!op) continue;
      const params: ParameterObject[] = [...(item.parameters ?? []), ...(op.parameters ?? [])].map(resolve);
      const bodyDef = op.requestBody ? resolve(op.requestBody) : undefined;
      const bodySchema = bodyDef?.content?.['application/json']?.schema;
      const security = securityOf(op.operationId, Array.isArray(op.security) ? op.security : globalSecurity);
      operations.set(op.operationId, {
        operationId: op.operationId,
        method: method.toUpperCase(),
        path,
        routerPath: path.replace(/\{([^}]+)\}/g, ':$1'),
        secured: security.secured,
        scopes: security.scopes,
        body: bodySchema ? { required: Boolean(bodyDef.required), validate: compile(bodySchema) } : undefined,
        headers: params
          .filter((p) => p.in === 'header')
          .map((p) => ({ name: p.name, required: Boolean(p.required), validate: compile(p.schema ?? {}) })),
        query: params
          .filter((p) => p.in === 'query')
          .map((p) => ({ name: p.name, required: Boolean(p.required), validate: compile(p.schema ?? {}), coerce: coercer(resolve(p.schema) as Record<string, any>) })),
      });
    }
  }
  return { document, operations };
}

/**
 * An operation's security requirement: none (`[]`) or one requirement object naming
 * bearerAuth with the scopes needed. Alternatives (several objects) are not supported, and an
 * unknown scope name is an error: a typo must not make a route usable by admins only.
 */
function securityOf(operationId: string, requirements: unknown[]): { secured: boolean; scopes: string[] } {
  if (requirements.length === 0) return { secured: false, scopes: [] };
  if (requirements.length > 1) throw new Error(`openapi.yaml: ${operationId} lists alternative security requirements, which the router does not support`);
  const requirement = requirements[0] as Record<string, unknown>;
  const names = Object.keys(requirement ?? {});
  if (names.length === 0) return { secured: false, scopes: [] };
  if (names.length !== 1 || names[0] !== 'bearerAuth') throw new Error(`openapi.yaml: ${operationId} names security schemes other than bearerAuth: ${names.join(', ')}`);
  const scopes = requirement.bearerAuth;
  if (!Array.isArray(scopes) || scopes.some((s) => typeof s !== 'string' || !isScope(s))) {
    throw new Error(`openapi.yaml: ${operationId} names an unknown scope in ${JSON.stringify(scopes)}`);
  }
  return { secured: true, scopes: [...new Set(scopes as string[])] };
}

/** Local `#/components/...` references, made absolute against the registered document. */
function rewriteRefs(schema: unknown): any {
  if (Array.isArray(schema)) return schema.map(rewriteRefs);
  if (schema === null || typeof schema !== 'object') return schema;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(schema)) {
    out[k] = k === '$ref' && typeof v === 'string' && v.startsWith('#/') ? SPEC_ID + v : rewriteRefs(v);
  }
  return out;
}

/** Ajv's errors as field errors a user can act on: which field, and what is wrong with it. */
export function toFieldErrors(errors: ErrorObject[] | null | undefined, prefix = ''): FieldError[] {
  const out: FieldError[] = [];
  const seen = new Set<string>();
  for (const e of errors ?? []) {
    const base = e.instancePath.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
    if (prefix) base.unshift(prefix);
    let path = base;
    let message = e.message ?? 'is invalid';
    const params = e.params as Record<string, any>;
    switch (e.keyword) {
      case 'required':
        path = [...base, params.missingProperty];
        message = 'is required';
        break;
      case 'additionalProperties':
        path = [...base, params.additionalProperty];
        message = 'is not a known field';
        break;
      case 'propertyNames':
        path = [...base, params.propertyName];
        message = 'is not a valid name';
        break;
      case 'pattern':
        message = (e.parentSchema as Record<string, any>)?.['x-message'] ?? 'has characters or a form that is not allowed';
        break;
      case 'format':
        message = (e.parentSchema as Record<string, any>)?.['x-message'] ?? `must be a valid ${params.format}`;
        break;
      case 'type':
        message = `must be ${Array.isArray(params.type) ? params.type.join(' or ') : params.type}`;
        break;
      case 'enum':
        message = `must be one of ${(params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
        break;
    }
    // propertyNames reports each bad name twice (the name's own error and the wrapper).
    if (e.propertyName !== undefined && e.keyword !== 'propertyNames') continue;
    const field = path.join('.');
    const key = `${field}\u0000${message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(fieldError(field, message));
  }
  return out;
}
