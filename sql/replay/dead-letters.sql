-- Replays the open (not yet replayed) dead letters of one endpoint that died since a time:
-- each webhook goes back to pending with a fresh attempt budget and its delivery job is
-- queued, through hookrelay.replay_webhook, the path the API's replay takes. A webhook of a
-- disabled endpoint is replayed into `held` instead and goes out when the endpoint is enabled.
--
--   psql "$DATABASE_URL" -v endpoint_id=ep_… -v since='2025-01-01' -f sql/replay/dead-letters.sql
--   optional: -v until='2025-01-02T12:00:00Z'  (dead before this time)
--             -v reason=attempts_exhausted     (or gone, endpoint_deleted)
--
-- Safe while the service runs (replay_webhook locks each webhook and acts only on a dead one)
-- and idempotent: a replayed dead letter is closed, so a second run re-queues nothing. One
-- transaction: all of it or none. Prints `requeued` (webhooks replayed, as the API counts
-- them) and `held` (of those, how many wait for their disabled endpoint). replayed_by is
-- 'psql:' || current_user. Times without an offset are in the session's TimeZone.
\set ON_ERROR_STOP on
\set QUIET on
\set SHOW_CONTEXT never

\if :{?endpoint_id}
\else
  \warn 'usage: psql "$DATABASE_URL" -v endpoint_id=ID -v since=TIME [-v until=TIME] [-v reason=REASON] -f sql/replay/dead-letters.sql'
  DO $$ BEGIN RAISE EXCEPTION 'dead-letters.sql: missing -v endpoint_id (see usage above)'; END $$;
\endif
\if :{?since}
\else
  \warn 'usage: psql "$DATABASE_URL" -v endpoint_id=ID -v since=TIME [-v until=TIME] [-v reason=REASON] -f sql/replay/dead-letters.sql'
  DO $$ BEGIN RAISE EXCEPTION 'dead-letters.sql: missing -v since (see usage above)'; END $$;
\endif
\if :{?until}
\set hr_until :until
\else
\set hr_until 'infinity'
\endif
\if :{?reason}
\set hr_reason :reason
\else
\set hr_reason ''
\endif

BEGIN;

-- Checks. The endpoint row stays share-locked to the end, so a concurrent enable (which
-- releases what the endpoint holds) waits for this replay instead of missing what it holds.
SELECT count(*) = 0 AS hr_no_endpoint, coalesce(bool_or(deleted_at IS NOT NULL), false) AS hr_deleted,
       :'since'::timestamptz >= :'hr_until'::timestamptz AS hr_bad_range,
       :'hr_reason' NOT IN ('', 'attempts_exhausted', 'gone', 'endpoint_deleted') AS hr_bad_reason
  FROM (SELECT deleted_at FROM hookrelay.endpoints WHERE id = :'endpoint_id' FOR SHARE) e \gset
\if :hr_no_endpoint
  \warn 'dead-letters.sql: no endpoint with id' :'endpoint_id'
  DO $$ BEGIN RAISE EXCEPTION 'dead-letters.sql: unknown endpoint'; END $$;
\endif
\if :hr_deleted
  \warn 'dead-letters.sql: endpoint' :'endpoint_id' 'is deleted; its dead letters cannot be replayed'
  DO $$ BEGIN RAISE EXCEPTION 'dead-letters.sql: endpoint deleted'; END $$;
\endif
\if :hr_bad_range
  \warn 'dead-letters.sql: since must be before until'
  DO $$ BEGIN RAISE EXCEPTION 'dead-letters.sql: empty time range'; END $$;
\endif
\if :hr_bad_reason
  \warn 'dead-letters.sql: reason must be attempts_exhausted, gone or endpoint_deleted, not' :'hr_reason'
  DO $$ BEGIN RAISE EXCEPTION 'dead-letters.sql: unknown reason'; END $$;
\endif

-- In dead-letter id order, as the API's bulk replay, so the two take row locks in one order.
CREATE TEMPORARY TABLE hr_replayed ON COMMIT DROP AS
SELECT d.webhook_id
  FROM (SELECT webhook_id
          FROM hookrelay.dead_letters
         WHERE replayed_at IS NULL
           AND endpoint_id = :'endpoint_id'
           AND dead_at >= :'since'::timestamptz
           AND dead_at < :'hr_until'::timestamptz
           AND (:'hr_reason' = '' OR reason = :'hr_reason')
         ORDER BY id) d
 WHERE hookrelay.replay_webhook(d.webhook_id, 'psql:' || current_user);

SELECT count(*)::integer AS requeued,
       count(*) FILTER (WHERE w.status = 'held')::integer AS held
  FROM hr_replayed r
  JOIN hookrelay.webhooks w ON w.id = r.webhook_id;

COMMIT;
