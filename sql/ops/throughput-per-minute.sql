-- Throughput per minute over the last hour: webhooks delivered in each of the last 60 minutes
-- (the current, partial minute last), with the attempts started and the failed attempts in
-- the same minute. Minutes without traffic are listed with zeros, so a stall shows as a gap.
--
--   psql "$DATABASE_URL" -f sql/ops/throughput-per-minute.sql
\set ON_ERROR_STOP on

WITH minutes AS (
  SELECT generate_series(date_trunc('minute', now()) - interval '59 minutes', date_trunc('minute', now()), interval '1 minute') AS minute
), delivered AS (
  SELECT date_trunc('minute', w.delivered_at) AS minute, count(*) AS n
    FROM hookrelay.webhooks w
   WHERE w.status = 'delivered' AND w.delivered_at >= date_trunc('minute', now()) - interval '59 minutes'
   GROUP BY 1
), attempted AS (
  SELECT date_trunc('minute', a.started_at) AS minute, count(*) AS n, count(*) FILTER (WHERE a.outcome = 'failure') AS failed
    FROM hookrelay.attempts a
   WHERE a.started_at >= date_trunc('minute', now()) - interval '59 minutes'
   GROUP BY 1
)
SELECT m.minute,
       coalesce(d.n, 0)::integer      AS delivered,
       coalesce(a.n, 0)::integer      AS attempts,
       coalesce(a.failed, 0)::integer AS failed_attempts
  FROM minutes m
  LEFT JOIN delivered d ON d.minute = m.minute
  LEFT JOIN attempted a ON a.minute = m.minute
 ORDER BY m.minute;
