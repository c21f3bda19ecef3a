import type { ColumnType, Generated, Insertable, Selectable } from 'kysely';
import type { RetryPolicy } from '../config.ts';
import type { SignatureAlgorithm } from '../delivery/sign.ts';

/**
 * Table types of the `hookrelay` schema, as sql/migrations leaves it. Kept by hand: the
 * migrations are the truth and a test compares these names with information_schema.
 */

type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;
type NullableTimestamp = ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;

/** Delivery states of a webhook, as a frozen object rather than an enum (Node runs the sources). */
export const WEBHOOK_STATUS = Object.freeze({
  pending: 'pending',
  retrying: 'retrying',
  delivered: 'delivered',
  dead: 'dead',
  /** Accepted for a disabled endpoint and kept until it is enabled again. */
  held: 'held',
} as const);
export type WebhookStatus = (typeof WEBHOOK_STATUS)[keyof typeof WEBHOOK_STATUS];

export interface ApiTokensTable {
  id: string;
  name: string;
  token_hash: Buffer;
  created_at: Generated<Date>;
  last_used_at: NullableTimestamp;
  revoked_at: NullableTimestamp;
  /** See src/api/tokens.ts SCOPES; the database default is DEFAULT_SCOPES. */
  scopes: ColumnType<string[], string[] | undefined, string[]>;
  expires_at: NullableTimestamp;
  /** Per-token rate limit; null: HOOKRELAY_RATE_LIMIT_PER_SECOND / _BURST. */
  rate_limit_per_second: number | null;
  rate_limit_burst: number | null;
}

export interface EndpointsTable {
  id: string;
  url: string;
  description: Generated<string>;
  enabled: Generated<boolean>;
  disabled_reason: string | null;
  headers: ColumnType<Record<string, string>, string | undefined, string>;
  retry_policy: ColumnType<Partial<RetryPolicy> | null, string | null | undefined, string | null>;
  timeout_ms: number | null;
  signature_algorithm: ColumnType<SignatureAlgorithm, SignatureAlgorithm | undefined, SignatureAlgorithm>;
  metadata: ColumnType<Record<string, unknown>, string | undefined, string>;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
  deleted_at: NullableTimestamp;
}

export interface SigningKeysTable {
  id: string;
  endpoint_id: string;
  kind: 'hmac' | 'ed25519';
  sealed_secret: Buffer;
  public_key: string | null;
  created_at: Generated<Date>;
  expires_at: NullableTimestamp;
}

export interface WebhooksTable {
  id: string;
  endpoint_id: string;
  url: string;
  /** The payload as serialized once at submission: the exact bytes signed and sent. */
  body: string;
  headers: ColumnType<Record<string, string>, string, string>;
  retry_policy: ColumnType<RetryPolicy, string, string>;
  status: ColumnType<WebhookStatus, WebhookStatus | undefined, WebhookStatus>;
  attempts: Generated<number>;
  /** Attempts made before the last replay; the retry policy counts attempts above it. */
  attempts_base: Generated<number>;
  next_attempt_at: NullableTimestamp;
  last_attempt_at: NullableTimestamp;
  delivered_at: NullableTimestamp;
  last_status_code: number | null;
  last_error: string | null;
  idempotency_key: string | null;
  request_hash: Buffer | null;
  request_id: string | null;
  /** W3C traceparent of the submission, normalized; NULL when absent or invalid. */
  traceparent: Generated<string | null>;
  created_at: Generated<Date>;
  updated_at: Timestamp;
}

export interface AttemptsTable {
  webhook_id: string;
  attempt: number;
  endpoint_id: string;
  started_at: Timestamp;
  duration_ms: number;
  status_code: number | null;
  outcome: 'success' | 'failure';
  error_class: string | null;
  error: string | null;
  response_body: string | null;
}

export type CircuitState = 'closed' | 'open' | 'half_open';

export interface EndpointHealthTable {
  endpoint_id: string;
  circuit_state: ColumnType<CircuitState, CircuitState | undefined, CircuitState>;
  consecutive_failures: Generated<number>;
  window_started_at: Generated<Date>;
  window_attempts: Generated<number>;
  window_failures: Generated<number>;
  opened_at: NullableTimestamp;
  open_count: Generated<number>;
  next_probe_at: NullableTimestamp;
  probe_started_at: NullableTimestamp;
  last_success_at: NullableTimestamp;
  last_failure_at: NullableTimestamp;
  failing_since: NullableTimestamp;
  health_score: Generated<number>;
  updated_at: Generated<Date>;
}

export type DeadLetterReason = 'attempts_exhausted' | 'gone' | 'endpoint_deleted';

export interface DeadLettersTable {
  id: string;
  webhook_id: string;
  endpoint_id: string;
  reason: DeadLetterReason;
  last_status_code: number | null;
  last_error: string | null;
  attempts: number;
  dead_at: Generated<Date>;
  replayed_at: NullableTimestamp;
  replayed_by: string | null;
}

export interface Database {
  api_tokens: ApiTokensTable;
  endpoints: EndpointsTable;
  signing_keys: SigningKeysTable;
  webhooks: WebhooksTable;
  attempts: AttemptsTable;
  endpoint_health: EndpointHealthTable;
  dead_letters: DeadLettersTable;
}

export type Webhook = Selectable<WebhooksTable>;
export type NewWebhook = Insertable<WebhooksTable>;
export type Endpoint = Selectable<EndpointsTable>;
export type Attempt = Selectable<AttemptsTable>;
export type SigningKeyRow = Selectable<SigningKeysTable>;
export type EndpointHealth = Selectable<EndpointHealthTable>;
export type DeadLetter = Selectable<DeadLettersTable>;

/**
 * `columns`, checked to name every column of `Row`: for statements that list a table's columns
 * instead of `*` (a prepared statement's result type must not change when a migration adds one),
 * so that a column added to the table's interface and not to the list fails the type check.
 */
export function allColumns<Row>() {
  return <const L extends ReadonlyArray<keyof Row & string>>(columns: L & ([Exclude<keyof Row, L[number]>] extends [never] ? unknown : never)): L => columns;
}
