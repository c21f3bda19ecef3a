-- Failing endpoints and their circuit state: every live endpoint whose circuit is open or
-- half-open, or whose last attempt failed (consecutive_failures > 0), with how long it has
-- been failing, its health score, when the next probe goes out, whether it was disabled (and
-- why), and what waits for it (queued, held, open dead letters). Open circuits first, then the
-- longest-failing.
--
--   psql "$DATABASE_URL" -f sql/ops/failing-endpoints.sql
\set ON_ERROR_STOP on

SELECT s.endpoint_id,
       s.url,
       s.circuit_state,
       s.consecutive_failures,
       s.health_score,
       s.failing_since,
       date_trunc('second', now() - s.failing_since) AS failing_for,
       s.last_success_at,
       s.last_failure_at,
       s.next_probe_at,
       s.open_count,
       s.enabled,
       s.disabled_reason,
       s.queued,
       s.held,
       s.open_dead_letters
  FROM hookrelay.v_endpoint_status s
 WHERE s.circuit_state <> 'closed' OR s.consecutive_failures > 0
 ORDER BY array_position(ARRAY['open', 'half_open', 'closed'], s.circuit_state),
          s.failing_since NULLS LAST, s.consecutive_failures DESC, s.endpoint_id;
