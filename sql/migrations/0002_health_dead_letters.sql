-- hookrelay schema, version 2: endpoint health and circuit breaking, held webhooks, dead
-- letters, fresh attempt budgets for replays, and the SQL functions through which both the
-- service and operators' psql scripts re-queue webhooks.

-- A webhook of a disabled endpoint is `held`: accepted and kept, delivered when the endpoint
-- is enabled again. A replay starts a fresh attempt budget: the retry policy counts attempts
-- above attempts_base.
ALTER TABLE hookrelay.webhooks DROP CONSTRAINT webhooks_status_check;
ALTER TABLE hookrelay.webhooks ADD CONSTRAINT webhooks_status_check CHECK (status IN ('pending', 'retrying', 'delivered', 'dead', 'held'));
ALTER TABLE hookrelay.webhooks ADD COLUMN attempts_base integer NOT NULL DEFAULT 0;
ALTER TABLE hookrelay.webhooks ADD CONSTRAINT webhooks_attempts_base_check CHECK (attempts_base >= 0 AND attempts_base <= attempts);
CREATE INDEX webhooks_held_idx ON hookrelay.webhooks (endpoint_id) WHERE status = 'held';
CREATE INDEX webhooks_status_idx ON hookrelay.webhooks (status, endpoint_id);
-- For the operators' time-window questions (sql/ops): throughput, outcomes, latency.
CREATE INDEX webhooks_delivered_at_idx ON hookrelay.webhooks (delivered_at) WHERE delivered_at IS NOT NULL;
CREATE INDEX attempts_started_idx ON hookrelay.attempts (started_at);

-- Health of each endpoint, updated in the same transaction as every attempt.
--   circuit_state  closed: deliver; open: attempts wait for next_probe_at without using an
--                  attempt; half_open: one probe is in flight (since probe_started_at).
--   window_*       attempts and failures since window_started_at (a tumbling window).
--   failing_since  first failure of the current unbroken run of failures.
--   health_score   0-100, an exponentially weighted success rate (100 = every recent attempt succeeded).
CREATE TABLE hookrelay.endpoint_health (
  endpoint_id           text        NOT NULL,
  circuit_state         text        NOT NULL DEFAULT 'closed',
  consecutive_failures  integer     NOT NULL DEFAULT 0,
  window_started_at     timestamptz NOT NULL DEFAULT now(),
  window_attempts       integer     NOT NULL DEFAULT 0,
  window_failures       integer     NOT NULL DEFAULT 0,
  opened_at             timestamptz,
  open_count            integer     NOT NULL DEFAULT 0,
  next_probe_at         timestamptz,
  probe_started_at      timestamptz,
  last_success_at       timestamptz,
  last_failure_at       timestamptz,
  failing_since         timestamptz,
  health_score          integer     NOT NULL DEFAULT 100,
  updated_at            timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT endpoint_health_pkey PRIMARY KEY (endpoint_id),
  CONSTRAINT endpoint_health_endpoint_id_fkey FOREIGN KEY (endpoint_id) REFERENCES hookrelay.endpoints (id),
  CONSTRAINT endpoint_health_circuit_state_check CHECK (circuit_state IN ('closed', 'open', 'half_open')),
  CONSTRAINT endpoint_health_score_check CHECK (health_score BETWEEN 0 AND 100),
  CONSTRAINT endpoint_health_window_check CHECK (window_failures BETWEEN 0 AND window_attempts),
  CONSTRAINT endpoint_health_open_check CHECK ((circuit_state = 'closed') OR next_probe_at IS NOT NULL)
);

CREATE INDEX endpoint_health_state_idx ON hookrelay.endpoint_health (circuit_state);

-- Every endpoint has a health row from its start (so joins and filters need no COALESCE).
INSERT INTO hookrelay.endpoint_health (endpoint_id) SELECT id FROM hookrelay.endpoints ON CONFLICT DO NOTHING;

CREATE FUNCTION hookrelay.endpoint_health_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO hookrelay.endpoint_health (endpoint_id) VALUES (NEW.id) ON CONFLICT DO NOTHING;
  RETURN NEW;
END
$$;

CREATE TRIGGER endpoints_health_row AFTER INSERT ON hookrelay.endpoints
  FOR EACH ROW EXECUTE FUNCTION hookrelay.endpoint_health_row();

-- One row each time a webhook dies. A replay sets replayed_at/by on the open row; if the
-- webhook dies again, a new row records that.
CREATE TABLE hookrelay.dead_letters (
  id                text        NOT NULL,
  webhook_id        text        NOT NULL,
  endpoint_id       text        NOT NULL,
  reason            text        NOT NULL,
  last_status_code  integer,
  last_error        text,
  attempts          integer     NOT NULL,
  dead_at           timestamptz NOT NULL DEFAULT now(),
  replayed_at       timestamptz,
  replayed_by       text,
  CONSTRAINT dead_letters_pkey PRIMARY KEY (id),
  CONSTRAINT dead_letters_webhook_id_fkey FOREIGN KEY (webhook_id) REFERENCES hookrelay.webhooks (id) ON DELETE CASCADE,
  CONSTRAINT dead_letters_endpoint_id_fkey FOREIGN KEY (endpoint_id) REFERENCES hookrelay.endpoints (id),
  CONSTRAINT dead_letters_reason_check CHECK (reason IN ('attempts_exhausted', 'gone', 'endpoint_deleted')),
  CONSTRAINT dead_letters_replayed_check CHECK ((replayed_at IS NULL) = (replayed_by IS NULL))
);

-- At most one open (not yet replayed) dead letter per webhook.
CREATE UNIQUE INDEX dead_letters_open_key ON hookrelay.dead_letters (webhook_id) WHERE replayed_at IS NULL;
CREATE INDEX dead_letters_endpoint_idx ON hookrelay.dead_letters (endpoint_id, dead_at);
CREATE INDEX dead_letters_dead_at_idx ON hookrelay.dead_letters (dead_at);

-- Queues the job for attempt p_attempt of a webhook, the way pg-boss's own insert does:
-- settings from the queue's row, a NOTIFY (inside the caller's transaction) when the job is
-- due now. This is the one re-queueing path for the API and for psql scripts alike; the
-- test suite checks that pg-boss workers take jobs made here.
CREATE FUNCTION hookrelay.enqueue_attempt(p_webhook_id text, p_attempt integer, p_start_after timestamptz DEFAULT now())
RETURNS uuid LANGUAGE plpgsql AS $$
DECLARE
  job_id uuid := gen_random_uuid();
  -- A plain record: the queue's schema is installed by pg-boss after these migrations run.
  q record;
BEGIN
  SELECT * INTO STRICT q FROM hookrelay_queue.queue WHERE name = 'deliveries';
  INSERT INTO hookrelay_queue.job (
    id, name, data, priority, start_after, created_on, expire_seconds, deletion_seconds, keep_until,
    retry_limit, retry_delay, retry_backoff, retry_delay_max, policy, dead_letter, heartbeat_seconds
  ) VALUES (
    job_id, q.name, jsonb_build_object('webhookId', p_webhook_id, 'attempt', p_attempt), 0,
    p_start_after, now(), q.expire_seconds, q.deletion_seconds,
    p_start_after + q.retention_seconds * interval '1 second',
    q.retry_limit, q.retry_delay, q.retry_backoff, q.retry_delay_max, q.policy, q.dead_letter, q.heartbeat_seconds
  );
  IF p_start_after <= now() AND q.notify THEN
    PERFORM pg_notify('pgboss_' || left(encode(sha224('hookrelay_queue'::bytea), 'hex'), 24), q.name);
  END IF;
  RETURN job_id;
END
$$;

-- Re-queues a dead webhook with a fresh attempt budget, keeping its id (receivers
-- deduplicate on webhook-id). Idempotent and safe under concurrency: the row lock and the
-- status test let exactly one of two concurrent replays through. Returns whether it acted.
CREATE FUNCTION hookrelay.replay_webhook(p_webhook_id text, p_by text)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
  w hookrelay.webhooks%ROWTYPE;
  endpoint_enabled boolean;
BEGIN
  SELECT * INTO w FROM hookrelay.webhooks WHERE id = p_webhook_id AND status = 'dead' FOR UPDATE;
  IF NOT FOUND THEN RETURN false; END IF;
  -- A deleted endpoint takes nothing any more: its dead letters stay as they are.
  IF EXISTS (SELECT 1 FROM hookrelay.endpoints WHERE id = w.endpoint_id AND deleted_at IS NOT NULL) THEN RETURN false; END IF;
  -- FOR SHARE: an enabling of the endpoint that is under way (and releases what it held)
  -- commits first, so a webhook is never left held on an enabled endpoint.
  SELECT enabled INTO endpoint_enabled FROM hookrelay.endpoints WHERE id = w.endpoint_id FOR SHARE;
  UPDATE hookrelay.dead_letters SET replayed_at = now(), replayed_by = p_by WHERE webhook_id = p_webhook_id AND replayed_at IS NULL;
  IF endpoint_enabled THEN
    UPDATE hookrelay.webhooks
       SET status = 'pending', attempts_base = attempts, next_attempt_at = now(), last_error = NULL, updated_at = now()
     WHERE id = p_webhook_id;
    PERFORM hookrelay.enqueue_attempt(p_webhook_id, w.attempts + 1);
  ELSE
    -- A disabled endpoint holds it; enabling the endpoint releases it.
    UPDATE hookrelay.webhooks
       SET status = 'held', attempts_base = attempts, next_attempt_at = NULL, updated_at = now()
     WHERE id = p_webhook_id;
  END IF;
  RETURN true;
END
$$;

-- Attempts a retrying webhook now instead of at its scheduled time. The job already queued
-- for that attempt finds the attempt recorded when its time comes and completes as stale.
-- A webhook whose next attempt is already due (asked for again before it was made) is left
-- alone, so repeating the request sends nothing twice.
CREATE FUNCTION hookrelay.retry_now(p_webhook_id text)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
  w hookrelay.webhooks%ROWTYPE;
BEGIN
  SELECT * INTO w FROM hookrelay.webhooks
   WHERE id = p_webhook_id AND status = 'retrying' AND next_attempt_at > now()
   FOR UPDATE;
  IF NOT FOUND THEN RETURN false; END IF;
  UPDATE hookrelay.webhooks SET next_attempt_at = now(), updated_at = now() WHERE id = p_webhook_id;
  PERFORM hookrelay.enqueue_attempt(p_webhook_id, w.attempts + 1);
  RETURN true;
END
$$;

-- Releases every webhook an endpoint holds (when it is enabled again). Returns how many;
-- 0 while the endpoint is still disabled, since the worker would only hold them again.
CREATE FUNCTION hookrelay.release_held(p_endpoint_id text)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
  w record;
  n integer := 0;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM hookrelay.endpoints WHERE id = p_endpoint_id AND enabled AND deleted_at IS NULL FOR SHARE) THEN
    RETURN 0;
  END IF;
  FOR w IN SELECT id, attempts FROM hookrelay.webhooks WHERE endpoint_id = p_endpoint_id AND status = 'held' ORDER BY id FOR UPDATE LOOP
    UPDATE hookrelay.webhooks SET status = 'pending', next_attempt_at = now(), updated_at = now() WHERE id = w.id;
    PERFORM hookrelay.enqueue_attempt(w.id, w.attempts + 1);
    n := n + 1;
  END LOOP;
  RETURN n;
END
$$;
