-- Attempt outcomes in the last hour: delivery attempts started in the window, by outcome
-- (success, failure), error class (http_status, timeout, connection_refused, …; empty for a
-- success) and HTTP status (empty when no answer came), with how many webhooks and endpoints
-- they concern and their share of all attempts in the window. Most frequent first.
--
--   psql "$DATABASE_URL" -f sql/ops/attempt-outcomes.sql
--   psql "$DATABASE_URL" -v window='24 hours' -f sql/ops/attempt-outcomes.sql
\set ON_ERROR_STOP on
\if :{?window}
\set hr_window :window
\else
\set hr_window '1 hour'
\endif

SELECT a.outcome,
       a.error_class,
       a.status_code,
       count(*)::integer                                        AS attempts,
       count(DISTINCT a.webhook_id)::integer                    AS webhooks,
       count(DISTINCT a.endpoint_id)::integer                   AS endpoints,
       round(100.0 * count(*) / sum(count(*)) OVER (), 1)       AS share_pct
  FROM hookrelay.attempts a
 WHERE a.started_at >= now() - :'hr_window'::interval
 GROUP BY a.outcome, a.error_class, a.status_code
 ORDER BY attempts DESC, a.outcome DESC, a.error_class NULLS FIRST, a.status_code NULLS LAST;
