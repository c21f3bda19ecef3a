-- hookrelay schema, version 1: tokens, endpoints, webhooks and their attempts.
-- Forward-only: a landed migration is never edited; later changes come as new files.
-- Every constraint is named; src/db/constraints.ts maps the names to API problems.

CREATE SCHEMA IF NOT EXISTS hookrelay;

-- API tokens, stored only as SHA-256 hashes of the token text.
CREATE TABLE hookrelay.api_tokens (
  id            text        NOT NULL,
  name          text        NOT NULL,
  token_hash    bytea       NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  last_used_at  timestamptz,
  revoked_at    timestamptz,
  CONSTRAINT api_tokens_pkey PRIMARY KEY (id),
  CONSTRAINT api_tokens_token_hash_key UNIQUE (token_hash),
  CONSTRAINT api_tokens_name_check CHECK (length(name) BETWEEN 1 AND 200),
  CONSTRAINT api_tokens_token_hash_check CHECK (length(token_hash) = 32)
);

-- A receiving URL and how to deliver to it. The first webhook to a URL registers one; the
-- endpoints API configures them. Deleting is soft: deleted_at is set and history stays.
CREATE TABLE hookrelay.endpoints (
  id                   text        NOT NULL,
  url                  text        NOT NULL,
  description          text        NOT NULL DEFAULT '',
  enabled              boolean     NOT NULL DEFAULT true,
  disabled_reason      text,
  headers              jsonb       NOT NULL DEFAULT '{}',
  retry_policy         jsonb,
  timeout_ms           integer,
  signature_algorithm  text        NOT NULL DEFAULT 'hmac-sha256',
  metadata             jsonb       NOT NULL DEFAULT '{}',
  created_at           timestamptz NOT NULL DEFAULT now(),
  updated_at           timestamptz NOT NULL DEFAULT now(),
  deleted_at           timestamptz,
  CONSTRAINT endpoints_pkey PRIMARY KEY (id),
  CONSTRAINT endpoints_url_check CHECK (url ~ '^https?://'),
  CONSTRAINT endpoints_description_check CHECK (length(description) <= 1000),
  CONSTRAINT endpoints_timeout_ms_check CHECK (timeout_ms IS NULL OR timeout_ms BETWEEN 100 AND 300000),
  CONSTRAINT endpoints_signature_algorithm_check CHECK (signature_algorithm IN ('hmac-sha256', 'hmac-sha512', 'ed25519')),
  CONSTRAINT endpoints_headers_check CHECK (jsonb_typeof(headers) = 'object'),
  CONSTRAINT endpoints_metadata_check CHECK (jsonb_typeof(metadata) = 'object')
);

-- One live endpoint per URL: webhooks submitted by URL find it here.
CREATE UNIQUE INDEX endpoints_url_live_key ON hookrelay.endpoints (url) WHERE deleted_at IS NULL;
CREATE INDEX endpoints_created_idx ON hookrelay.endpoints (id) WHERE deleted_at IS NULL;

-- Signing keys, sealed with the master key (AES-256-GCM, the endpoint and key ids as
-- associated data). Each endpoint has one current key (expires_at IS NULL) and any number
-- of previous keys that keep signing until their expires_at.
CREATE TABLE hookrelay.signing_keys (
  id             text        NOT NULL,
  endpoint_id    text        NOT NULL,
  kind           text        NOT NULL,
  sealed_secret  bytea       NOT NULL,
  public_key     text,
  created_at     timestamptz NOT NULL DEFAULT now(),
  expires_at     timestamptz,
  CONSTRAINT signing_keys_pkey PRIMARY KEY (id),
  CONSTRAINT signing_keys_endpoint_id_fkey FOREIGN KEY (endpoint_id) REFERENCES hookrelay.endpoints (id),
  CONSTRAINT signing_keys_kind_check CHECK (kind IN ('hmac', 'ed25519')),
  CONSTRAINT signing_keys_public_key_check CHECK ((kind = 'ed25519') = (public_key IS NOT NULL))
);

CREATE UNIQUE INDEX signing_keys_current_key ON hookrelay.signing_keys (endpoint_id) WHERE expires_at IS NULL;
CREATE INDEX signing_keys_endpoint_idx ON hookrelay.signing_keys (endpoint_id, expires_at);

-- One submitted webhook and its delivery state. `body` is the payload serialized once, at
-- submission: exactly the bytes every attempt signs and sends (`body::jsonb` to query it). `attempts` counts recorded attempts; the
-- queue job for attempt `attempts + 1` exists exactly while status is pending or retrying.
CREATE TABLE hookrelay.webhooks (
  id                 text        NOT NULL,
  endpoint_id        text        NOT NULL,
  url                text        NOT NULL,
  body               text        NOT NULL,
  headers            jsonb       NOT NULL DEFAULT '{}',
  retry_policy       jsonb       NOT NULL,
  status             text        NOT NULL DEFAULT 'pending',
  attempts           integer     NOT NULL DEFAULT 0,
  next_attempt_at    timestamptz,
  last_attempt_at    timestamptz,
  delivered_at       timestamptz,
  last_status_code   integer,
  last_error         text,
  idempotency_key    text,
  request_hash       bytea,
  request_id         text,
  created_at         timestamptz NOT NULL DEFAULT now(),
  updated_at         timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT webhooks_pkey PRIMARY KEY (id),
  CONSTRAINT webhooks_endpoint_id_fkey FOREIGN KEY (endpoint_id) REFERENCES hookrelay.endpoints (id),
  CONSTRAINT webhooks_idempotency_key_key UNIQUE (idempotency_key),
  CONSTRAINT webhooks_status_check CHECK (status IN ('pending', 'retrying', 'delivered', 'dead')),
  CONSTRAINT webhooks_attempts_check CHECK (attempts >= 0),
  CONSTRAINT webhooks_delivered_check CHECK ((status = 'delivered') = (delivered_at IS NOT NULL)),
  CONSTRAINT webhooks_idempotency_check CHECK ((idempotency_key IS NULL) = (request_hash IS NULL))
);

CREATE INDEX webhooks_endpoint_created_idx ON hookrelay.webhooks (endpoint_id, created_at);
CREATE INDEX webhooks_open_idx ON hookrelay.webhooks (next_attempt_at) WHERE status IN ('pending', 'retrying');
CREATE INDEX webhooks_created_idx ON hookrelay.webhooks (created_at);

-- Every recorded delivery attempt, written in the same transaction as the webhook's new state.
CREATE TABLE hookrelay.attempts (
  webhook_id      text        NOT NULL,
  attempt         integer     NOT NULL,
  endpoint_id     text        NOT NULL,
  started_at      timestamptz NOT NULL,
  duration_ms     integer     NOT NULL,
  status_code     integer,
  outcome         text        NOT NULL,
  error_class     text,
  error           text,
  response_body   text,
  CONSTRAINT attempts_pkey PRIMARY KEY (webhook_id, attempt),
  CONSTRAINT attempts_webhook_id_fkey FOREIGN KEY (webhook_id) REFERENCES hookrelay.webhooks (id) ON DELETE CASCADE,
  CONSTRAINT attempts_endpoint_id_fkey FOREIGN KEY (endpoint_id) REFERENCES hookrelay.endpoints (id),
  CONSTRAINT attempts_attempt_check CHECK (attempt >= 1),
  CONSTRAINT attempts_outcome_check CHECK (outcome IN ('success', 'failure')),
  CONSTRAINT attempts_response_body_check CHECK (octet_length(response_body) <= 1024)
);

CREATE INDEX attempts_endpoint_started_idx ON hookrelay.attempts (endpoint_id, started_at);
