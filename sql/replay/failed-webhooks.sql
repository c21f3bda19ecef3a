-- Replays the failed (dead) webhooks created in a time range, of one endpoint or of all:
-- each goes back to pending with a fresh attempt budget and its delivery job is queued,
-- through hookrelay.replay_webhook, the path the API's retry takes; its open dead letter is
-- closed as replayed. A webhook of a disabled endpoint is replayed into `held` instead and goes
-- out when the endpoint is enabled; one of a deleted endpoint is skipped (it stays dead).
--
--   psql "$DATABASE_URL" -v from='2025-01-01' -v to='2025-01-02' -f sql/replay/failed-webhooks.sql
--   optional: -v endpoint_id=ep_…   (only this endpoint's webhooks)
--
-- The range is created_at >= from and < to. Safe while the service runs (replay_webhook locks
-- each webhook and acts only on a dead one) and idempotent: a replayed webhook is no longer
-- dead, so a second run re-queues nothing. One transaction: all of it or none. Prints
-- `requeued` (webhooks replayed, as the API counts them), `held` (of those, how many wait for
-- their disabled endpoint) and `skipped` (dead in the range but not replayable: endpoint
-- deleted). replayed_by is 'psql:' || current_user. Times without an offset are in the
-- session's TimeZone.
\set ON_ERROR_STOP on
\set QUIET on
\set SHOW_CONTEXT never

\if :{?from}
\else
  \warn 'usage: psql "$DATABASE_URL" -v from=TIME -v to=TIME [-v endpoint_id=ID] -f sql/replay/failed-webhooks.sql'
  DO $$ BEGIN RAISE EXCEPTION 'failed-webhooks.sql: missing -v from (see usage above)'; END $$;
\endif
\if :{?to}
\else
  \warn 'usage: psql "$DATABASE_URL" -v from=TIME -v to=TIME [-v endpoint_id=ID] -f sql/replay/failed-webhooks.sql'
  DO $$ BEGIN RAISE EXCEPTION 'failed-webhooks.sql: missing -v to (see usage above)'; END $$;
\endif
\if :{?endpoint_id}
\set hr_endpoint_id :endpoint_id
\else
\set hr_endpoint_id ''
\endif

BEGIN;

SELECT :'from'::timestamptz >= :'to'::timestamptz AS hr_bad_range,
       :'hr_endpoint_id' <> '' AND NOT EXISTS (SELECT 1 FROM hookrelay.endpoints WHERE id = :'hr_endpoint_id') AS hr_no_endpoint \gset
\if :hr_bad_range
  \warn 'failed-webhooks.sql: from must be before to'
  DO $$ BEGIN RAISE EXCEPTION 'failed-webhooks.sql: empty time range'; END $$;
\endif
\if :hr_no_endpoint
  \warn 'failed-webhooks.sql: no endpoint with id' :'hr_endpoint_id'
  DO $$ BEGIN RAISE EXCEPTION 'failed-webhooks.sql: unknown endpoint'; END $$;
\endif

CREATE TEMPORARY TABLE hr_candidates ON COMMIT DROP AS
SELECT id, endpoint_id
  FROM hookrelay.webhooks
 WHERE status = 'dead'
   AND created_at >= :'from'::timestamptz
   AND created_at < :'to'::timestamptz
   AND (:'hr_endpoint_id' = '' OR endpoint_id = :'hr_endpoint_id');

-- Share-lock the endpoints concerned to the end, so a concurrent enable (which releases what
-- an endpoint holds) waits for this replay instead of missing what it holds.
SELECT count(*) AS hr_locked
  FROM (SELECT id FROM hookrelay.endpoints WHERE id IN (SELECT endpoint_id FROM hr_candidates) ORDER BY id FOR SHARE) e \gset

-- In webhook id order, as the API's retry, so the two take row locks in one order.
CREATE TEMPORARY TABLE hr_replayed ON COMMIT DROP AS
SELECT c.id AS webhook_id
  FROM (SELECT id FROM hr_candidates ORDER BY id) c
 WHERE hookrelay.replay_webhook(c.id, 'psql:' || current_user);

SELECT count(r.webhook_id)::integer AS requeued,
       count(r.webhook_id) FILTER (WHERE w.status = 'held')::integer AS held,
       (SELECT count(*) FROM hr_candidates)::integer - count(r.webhook_id)::integer AS skipped
  FROM hr_replayed r
  JOIN hookrelay.webhooks w ON w.id = r.webhook_id;

COMMIT;
