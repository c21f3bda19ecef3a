import { AppError } from '../errors.ts';

/**
 * Named constraints whose violation is the caller's doing, mapped to the API problem they
 * mean. A violation of any other constraint is our own fault and stays a 500.
 */
const PROBLEMS: Record<string, () => AppError> = {
  webhooks_idempotency_key_key: () => new AppError(409, 'idempotency_conflict', 'Idempotency-Key was already used for a different request'),
};

interface PgError {
  code?: string;
  constraint?: string;
}

export function violatedConstraint(err: unknown): string | undefined {
  const e = err as PgError;
  return e && typeof e === 'object' && typeof e.code === 'string' && e.code.startsWith('23') ? e.constraint : undefined;
}

export function isUniqueViolation(err: unknown, constraint: string): boolean {
  const e = err as PgError;
  return e?.code === '23505' && e.constraint === constraint;
}

/** The API problem for a constraint violation, or undefined when the error is not one we map. */
export function constraintProblem(err: unknown): AppError | undefined {
  const name = violatedConstraint(err);
  return name ? PROBLEMS[name]?.() : undefined;
}
