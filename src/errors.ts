/**
 * The one error shape of the API: RFC 9457 problem details. Anything thrown that is not an
 * AppError is our own fault: it becomes a 500 whose detail stays in the log.
 */

export interface FieldError {
  /** Dotted path of the field at fault, e.g. `retryPolicy.maxAttempts`; empty for the whole body. */
  field: string;
  /** JSON Pointer (RFC 6901) to the same place in the request body. */
  pointer: string;
  message: string;
}

export class AppError extends Error {
  override name = 'AppError';
  readonly status: number;
  readonly code: string;
  readonly detail: string;
  readonly errors: readonly FieldError[] | undefined;
  readonly headers: Readonly<Record<string, string>>;

  constructor(status: number, code: string, detail: string, extra: { errors?: FieldError[]; headers?: Record<string, string> } = {}) {
    super(detail);
    this.status = status;
    this.code = code;
    this.detail = detail;
    this.errors = extra.errors;
    this.headers = extra.headers ?? {};
  }
}

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Content',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

export interface Problem {
  type: string;
  title: string;
  status: number;
  code: string;
  detail: string;
  instance?: string;
  requestId?: string;
  errors?: FieldError[];
  [key: string]: unknown;
}

export function toProblem(err: AppError, requestId?: string, instance?: string): Problem {
  const problem: Problem = {
    type: `urn:hookrelay:problem:${err.code}`,
    title: TITLES[err.status] ?? 'Error',
    status: err.status,
    code: err.code,
    detail: err.detail,
  };
  if (instance) problem.instance = instance;
  if (requestId) problem.requestId = requestId;
  if (err.errors && err.errors.length > 0) problem.errors = [...err.errors];
  return problem;
}

export function fieldError(field: string, message: string): FieldError {
  const pointer = field === '' ? '' : '/' + field.split('.').map((p) => p.replace(/~/g, '~0').replace(/\//g, '~1')).join('/');
  return { field, pointer, message };
}

/** Shorthand for a 400 about one field. */
export function badField(field: string, message: string, code = 'validation_failed'): AppError {
  return new AppError(400, code, `${field || 'body'}: ${message}`, { errors: [fieldError(field, message)] });
}

/**
 * A date-time query or body field as a Date. The schema's format check lets through a few
 * RFC 3339 forms JavaScript cannot represent (a leap second, 23:59:60): those are a 400 too.
 */
export function parseTime(value: string, field: string): Date {
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) throw badField(field, 'is not a date-time this service can represent');
  return date;
}
