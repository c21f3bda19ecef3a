-- Releases everything an endpoint holds: its `held` webhooks go back to pending and their
-- delivery jobs are queued, through hookrelay.release_held, the function the API calls when
-- it enables an endpoint. Use it for webhooks left held on an enabled endpoint, or with
-- -v enable=1 to enable a disabled endpoint and release what it holds in one step (as
-- PATCH /api/v1/endpoints/{id} {"enabled": true} does: the endpoint's circuit starts closed).
--
--   psql "$DATABASE_URL" -v endpoint_id=ep_… -f sql/replay/held.sql
--   psql "$DATABASE_URL" -v endpoint_id=ep_… -v enable=1 -f sql/replay/held.sql
--
-- A disabled endpoint without enable=1 is refused: the worker would only hold its webhooks
-- again. Safe while the service runs (the endpoint row is locked, as the API locks it to
-- change it) and idempotent: released webhooks are no longer held, so a second run re-queues
-- nothing. One transaction. Prints `requeued`, the number of webhooks released.
\set ON_ERROR_STOP on
\set QUIET on
\set SHOW_CONTEXT never

\if :{?endpoint_id}
\else
  \warn 'usage: psql "$DATABASE_URL" -v endpoint_id=ID [-v enable=1] -f sql/replay/held.sql'
  DO $$ BEGIN RAISE EXCEPTION 'held.sql: missing -v endpoint_id (see usage above)'; END $$;
\endif
\if :{?enable}
\set hr_enable :enable
\else
\set hr_enable off
\endif

BEGIN;

SELECT count(*) = 0 AS hr_no_endpoint,
       coalesce(bool_or(deleted_at IS NOT NULL), false) AS hr_deleted,
       coalesce(bool_or(NOT enabled), false) AS hr_disabled
  FROM (SELECT deleted_at, enabled FROM hookrelay.endpoints WHERE id = :'endpoint_id' FOR UPDATE) e \gset
\if :hr_no_endpoint
  \warn 'held.sql: no endpoint with id' :'endpoint_id'
  DO $$ BEGIN RAISE EXCEPTION 'held.sql: unknown endpoint'; END $$;
\endif
\if :hr_deleted
  \warn 'held.sql: endpoint' :'endpoint_id' 'is deleted; it holds nothing'
  DO $$ BEGIN RAISE EXCEPTION 'held.sql: endpoint deleted'; END $$;
\endif
\if :hr_disabled
  \if :hr_enable
    UPDATE hookrelay.endpoints SET enabled = true, disabled_reason = NULL, updated_at = now() WHERE id = :'endpoint_id';
    UPDATE hookrelay.endpoint_health
       SET circuit_state = 'closed', consecutive_failures = 0, window_started_at = now(), window_attempts = 0,
           window_failures = 0, opened_at = NULL, open_count = 0, next_probe_at = NULL, probe_started_at = NULL,
           failing_since = NULL, updated_at = now()
     WHERE endpoint_id = :'endpoint_id';
  \else
    \warn 'held.sql: endpoint' :'endpoint_id' 'is disabled, so the worker would hold its webhooks again; enable it (PATCH /api/v1/endpoints/ID {"enabled": true} releases them itself) or run with -v enable=1'
    DO $$ BEGIN RAISE EXCEPTION 'held.sql: endpoint disabled'; END $$;
  \endif
\endif

SELECT hookrelay.release_held(:'endpoint_id') AS requeued;

COMMIT;
