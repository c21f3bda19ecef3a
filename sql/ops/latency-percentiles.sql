-- Latency percentiles by endpoint: p50, p95 and p99 of attempts.duration_ms (time from
-- sending the request to the end of the answer, or to the error) per endpoint, over the
-- attempts started in the last hour, with the attempt count, the mean and the maximum.
-- Slowest (by p95) first. Failed attempts count too: a timeout is latency the worker paid.
--
--   psql "$DATABASE_URL" -f sql/ops/latency-percentiles.sql
--   psql "$DATABASE_URL" -v window='24 hours' -f sql/ops/latency-percentiles.sql
\set ON_ERROR_STOP on
\if :{?window}
\set hr_window :window
\else
\set hr_window '1 hour'
\endif

SELECT a.endpoint_id,
       e.url,
       count(*)::integer                                                                  AS attempts,
       round(percentile_cont(0.50) WITHIN GROUP (ORDER BY a.duration_ms)::numeric, 1)     AS p50_ms,
       round(percentile_cont(0.95) WITHIN GROUP (ORDER BY a.duration_ms)::numeric, 1)     AS p95_ms,
       round(percentile_cont(0.99) WITHIN GROUP (ORDER BY a.duration_ms)::numeric, 1)     AS p99_ms,
       round(avg(a.duration_ms), 1)                                                       AS mean_ms,
       max(a.duration_ms)                                                                 AS max_ms
  FROM hookrelay.attempts a
  JOIN hookrelay.endpoints e ON e.id = a.endpoint_id
 WHERE a.started_at >= now() - :'hr_window'::interval
 GROUP BY a.endpoint_id, e.url
 ORDER BY p95_ms DESC, a.endpoint_id;
