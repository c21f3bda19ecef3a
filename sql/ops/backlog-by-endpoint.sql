-- Backlog by endpoint and state: how many webhooks wait for each endpoint, per state
-- (pending: attempt 1 or a replay is queued; retrying: failed, next attempt scheduled;
-- held: the endpoint is disabled), the oldest of them and when the next attempt is due.
-- Largest backlogs first. Delivered and dead webhooks are not backlog (see
-- dead-letters-by-reason.sql for the dead).
--
--   psql "$DATABASE_URL" -f sql/ops/backlog-by-endpoint.sql
--   psql "$DATABASE_URL" -v endpoint_id=ep_… -f sql/ops/backlog-by-endpoint.sql   (one endpoint)
\set ON_ERROR_STOP on
\if :{?endpoint_id}
\set hr_endpoint_id :endpoint_id
\else
\set hr_endpoint_id ''
\endif

SELECT b.endpoint_id,
       b.url,
       b.enabled,
       b.status,
       b.webhooks,
       b.oldest_created_at,
       date_trunc('second', now() - b.oldest_created_at) AS oldest_age,
       b.next_attempt_at
  FROM hookrelay.v_backlog b
 WHERE (:'hr_endpoint_id' = '' OR b.endpoint_id = :'hr_endpoint_id')
 ORDER BY sum(b.webhooks) OVER (PARTITION BY b.endpoint_id) DESC, b.endpoint_id,
          array_position(ARRAY['pending', 'retrying', 'held'], b.status);
