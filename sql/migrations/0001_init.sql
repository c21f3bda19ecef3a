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

-- A receiving URL. The first webhook to a URL registers one, with its own signing secret.
CREATE TABLE hookrelay.endpoints (
  id          text        NOT NULL,
  url         text        NOT NULL,
  secret      text        NOT NULL,
  enabled     boolean     NOT NULL DEFAULT true,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT endpoints_pkey PRIMARY KEY (id),
  CONSTRAINT endpoints_url_key UNIQUE (url),
  CONSTRAINT endpoints_url_check CHECK (url ~ '^https?://'),
  CONSTRAINT endpoints_secret_check CHECK (secret ~ '^whsec_')
);

-- One submitted webhook and its delivery state. `attempts` counts recorded attempts; the
-- queue job for attempt `attempts + 1` exists exactly while status is pending or retrying.
CREATE TABLE hookrelay.webhooks (
  id                 text        NOT NULL,
  endpoint_id        text        NOT NULL,
  url                text        NOT NULL,
  payload            jsonb       NOT NULL,
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
