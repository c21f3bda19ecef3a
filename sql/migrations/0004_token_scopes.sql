-- Token scopes, expiry and per-token rate limits (README: "Tokens and scopes").
--
-- Tokens that exist already get the default scopes (webhooks and endpoints, read and write;
-- not admin). The HOOKRELAY_ADMIN_TOKEN row is given `admin` at each start of the service.
-- expires_at NULL: the token does not expire. rate_limit_* NULL: the server defaults
-- (HOOKRELAY_RATE_LIMIT_PER_SECOND, HOOKRELAY_RATE_LIMIT_BURST).
ALTER TABLE hookrelay.api_tokens
  ADD COLUMN scopes text[] NOT NULL
    DEFAULT ARRAY['webhooks:write', 'webhooks:read', 'endpoints:write', 'endpoints:read']::text[],
  ADD COLUMN expires_at timestamptz,
  ADD COLUMN rate_limit_per_second integer,
  ADD COLUMN rate_limit_burst integer,
  ADD CONSTRAINT api_tokens_scopes_check CHECK (
    cardinality(scopes) >= 1
    AND array_position(scopes, NULL) IS NULL
    AND scopes <@ ARRAY['webhooks:write', 'webhooks:read', 'endpoints:write', 'endpoints:read', 'admin']::text[]
  ),
  ADD CONSTRAINT api_tokens_rate_limit_per_second_check CHECK (rate_limit_per_second IS NULL OR rate_limit_per_second BETWEEN 1 AND 1000000),
  ADD CONSTRAINT api_tokens_rate_limit_burst_check CHECK (rate_limit_burst IS NULL OR rate_limit_burst BETWEEN 1 AND 1000000);
