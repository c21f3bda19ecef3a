-- Oldest pending webhook: the webhook that has waited longest for delivery (status pending
-- or retrying, i.e. with a delivery job queued), how long it has waited, how far it got and
-- why it is not delivered yet. Held webhooks (disabled endpoints) are left out: they wait on
-- purpose (backlog-by-endpoint.sql counts them).
--
--   psql "$DATABASE_URL" -f sql/ops/oldest-pending.sql
--   psql "$DATABASE_URL" -v limit=10 -f sql/ops/oldest-pending.sql      (the 10 oldest)
\set ON_ERROR_STOP on
\if :{?limit}
\set hr_limit :limit
\else
\set hr_limit 1
\endif

-- The status test matches webhooks_open_idx's predicate, so only open webhooks are read.
SELECT w.id AS webhook_id,
       w.endpoint_id,
       w.url,
       w.status,
       w.created_at,
       date_trunc('second', now() - w.created_at) AS age,
       w.attempts,
       w.next_attempt_at,
       w.last_status_code,
       w.last_error,
       h.circuit_state,
       e.enabled
  FROM hookrelay.webhooks w
  JOIN hookrelay.endpoints e ON e.id = w.endpoint_id
  JOIN hookrelay.endpoint_health h ON h.endpoint_id = w.endpoint_id
 WHERE w.status IN ('pending', 'retrying')
 ORDER BY w.created_at, w.id
 LIMIT :'hr_limit'::integer;
