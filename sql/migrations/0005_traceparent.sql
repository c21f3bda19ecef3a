-- W3C trace context of the submission (README: "Observability"). `traceparent` is the
-- validated header as received (NULL when absent or invalid); each delivery attempt continues
-- that trace with a new span id. request_id (from version 1) holds the submission's X-Request-Id.
ALTER TABLE hookrelay.webhooks
  ADD COLUMN traceparent text,
  ADD CONSTRAINT webhooks_traceparent_check CHECK (
    traceparent IS NULL OR traceparent ~ '^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$'
  );
