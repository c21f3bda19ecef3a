-- Jobs that SQL re-queues (replay, retry now, release of held webhooks) carry their endpoint
-- as the pg-boss group, as the jobs the worker and the API create do, so the per-endpoint
-- concurrency limit (HOOKRELAY_ENDPOINT_CONCURRENCY) holds across all workers for them too.
-- Same signature and behaviour as 0002's version otherwise.
CREATE OR REPLACE FUNCTION hookrelay.enqueue_attempt(p_webhook_id text, p_attempt integer, p_start_after timestamptz DEFAULT now())
RETURNS uuid LANGUAGE plpgsql AS $$
DECLARE
  job_id uuid := gen_random_uuid();
  -- A plain record: the queue's schema is installed by pg-boss after these migrations run.
  q record;
  endpoint text;
BEGIN
  SELECT * INTO STRICT q FROM hookrelay_queue.queue WHERE name = 'deliveries';
  SELECT endpoint_id INTO endpoint FROM hookrelay.webhooks WHERE id = p_webhook_id;
  INSERT INTO hookrelay_queue.job (
    id, name, data, priority, start_after, created_on, expire_seconds, deletion_seconds, keep_until,
    retry_limit, retry_delay, retry_backoff, retry_delay_max, policy, dead_letter, heartbeat_seconds,
    group_id
  ) VALUES (
    job_id, q.name, jsonb_build_object('webhookId', p_webhook_id, 'attempt', p_attempt), 0,
    p_start_after, now(), q.expire_seconds, q.deletion_seconds,
    p_start_after + q.retention_seconds * interval '1 second',
    q.retry_limit, q.retry_delay, q.retry_backoff, q.retry_delay_max, q.policy, q.dead_letter, q.heartbeat_seconds,
    endpoint
  );
  IF p_start_after <= now() AND q.notify THEN
    PERFORM pg_notify('pgboss_' || left(encode(sha224('hookrelay_queue'::bytea), 'hex'), 24), q.name);
  END IF;
  RETURN job_id;
END
$$;
