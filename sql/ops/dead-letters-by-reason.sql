-- Dead letters by reason: how many webhooks died, per reason (attempts_exhausted: the retry
-- policy ran out; gone: the receiver answered 410; endpoint_deleted), how many of those are
-- still open (not replayed; what sql/replay/dead-letters.sql would re-queue) and how many were
-- replayed, over how many endpoints, and the oldest open and the latest dead letter.
--
--   psql "$DATABASE_URL" -f sql/ops/dead-letters-by-reason.sql
--   psql "$DATABASE_URL" -v since='2025-01-01' -f sql/ops/dead-letters-by-reason.sql   (dead since)
--   psql "$DATABASE_URL" -v endpoint_id=ep_… -f sql/ops/dead-letters-by-reason.sql     (one endpoint)
\set ON_ERROR_STOP on
\if :{?since}
\set hr_since :since
\else
\set hr_since '-infinity'
\endif
\if :{?endpoint_id}
\set hr_endpoint_id :endpoint_id
\else
\set hr_endpoint_id ''
\endif

SELECT d.reason,
       count(*) FILTER (WHERE d.replayed_at IS NULL)::integer                      AS open,
       count(*) FILTER (WHERE d.replayed_at IS NOT NULL)::integer                  AS replayed,
       count(*)::integer                                                           AS total,
       count(DISTINCT d.endpoint_id) FILTER (WHERE d.replayed_at IS NULL)::integer AS open_endpoints,
       min(d.dead_at) FILTER (WHERE d.replayed_at IS NULL)                         AS oldest_open_dead_at,
       max(d.dead_at)                                                              AS latest_dead_at
  FROM hookrelay.dead_letters d
 WHERE d.dead_at >= :'hr_since'::timestamptz
   AND (:'hr_endpoint_id' = '' OR d.endpoint_id = :'hr_endpoint_id')
 GROUP BY d.reason
 ORDER BY open DESC, total DESC, d.reason;
