-- hookrelay schema, version 3: read-only views for operators (the queries in sql/ops and any
-- dashboard). Views only: no table, index or function changes. Replacing a view later takes a
-- new migration (CREATE OR REPLACE VIEW keeps existing columns; DROP and CREATE otherwise).

-- Webhooks still waiting, by endpoint and state: pending (attempt 1 or a replay queued),
-- retrying (failed, next attempt scheduled) and held (the endpoint is disabled). One row per
-- endpoint and state that has any. Served by webhooks_status_idx.
CREATE VIEW hookrelay.v_backlog AS
SELECT w.endpoint_id,
       e.url,
       e.enabled,
       w.status,
       count(*)::integer      AS webhooks,
       min(w.created_at)      AS oldest_created_at,
       min(w.next_attempt_at) AS next_attempt_at
  FROM hookrelay.webhooks w
  JOIN hookrelay.endpoints e ON e.id = w.endpoint_id
 WHERE w.status IN ('pending', 'retrying', 'held')
 GROUP BY w.endpoint_id, e.url, e.enabled, w.status;

-- Every live (not deleted) endpoint with its health, its circuit and what waits for it:
-- queued (pending or retrying), held, and open (not replayed) dead letters.
CREATE VIEW hookrelay.v_endpoint_status AS
SELECT e.id AS endpoint_id,
       e.url,
       e.enabled,
       e.disabled_reason,
       h.circuit_state,
       h.consecutive_failures,
       h.health_score,
       h.failing_since,
       h.last_success_at,
       h.last_failure_at,
       h.opened_at,
       h.open_count,
       h.next_probe_at,
       h.window_started_at,
       h.window_attempts,
       h.window_failures,
       (SELECT count(*) FROM hookrelay.webhooks w
         WHERE w.endpoint_id = e.id AND w.status IN ('pending', 'retrying'))::integer AS queued,
       (SELECT count(*) FROM hookrelay.webhooks w
         WHERE w.endpoint_id = e.id AND w.status = 'held')::integer AS held,
       (SELECT count(*) FROM hookrelay.dead_letters d
         WHERE d.endpoint_id = e.id AND d.replayed_at IS NULL)::integer AS open_dead_letters
  FROM hookrelay.endpoints e
  JOIN hookrelay.endpoint_health h ON h.endpoint_id = e.id
 WHERE e.deleted_at IS NULL;
