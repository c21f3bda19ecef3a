import { sql } from 'kysely';
import type { DeadLetter, DeadLetterReason } from '../db/schema.ts';
import { AppError, parseTime } from '../errors.ts';
import type { components } from './openapi-types.ts';
import type { Handler } from './app.ts';
import { createCursorCodec } from './cursor.ts';

/**
 * Dead letters and bulk re-queueing. Every re-queue goes through the SQL functions
 * hookrelay.replay_webhook and hookrelay.retry_now, the same path the psql scripts in
 * sql/replay take, so the API and an operator at a terminal cannot disagree.
 */

type DeadLetterBody = components['schemas']['DeadLetter'];
type DeadLetterFilter = components['schemas']['DeadLetterFilter'];
type RetryFilter = components['schemas']['RetryFilter'];

function deadLetterBody(d: DeadLetter): DeadLetterBody {
  return {
    id: d.id,
    webhookId: d.webhook_id,
    endpointId: d.endpoint_id,
    reason: d.reason,
    lastStatusCode: d.last_status_code,
    lastError: d.last_error,
    attempts: d.attempts,
    deadAt: d.dead_at.toISOString(),
    replayedAt: d.replayed_at ? d.replayed_at.toISOString() : null,
    replayedBy: d.replayed_by,
  };
}

/** Who asked, as recorded in dead_letters.replayed_by. */
const requester = (ctx: Parameters<Handler>[0]) => `api:${ctx.state.tokenId ?? 'unknown'}`;

const listDeadLetters: Handler = async (ctx, deps) => {
  const q = ctx.state.query as { limit?: number; cursor?: string; endpointId?: string; reason?: DeadLetterReason; deadAfter?: string; deadBefore?: string; replayed?: boolean };
  const cursor = createCursorCodec(deps.keyring.derive('cursor'), 'dead-letters');
  const limit = q.limit ?? 50;
  let query = deps.db.selectFrom('dead_letters').selectAll();
  if (q.endpointId) query = query.where('endpoint_id', '=', q.endpointId);
  if (q.reason) query = query.where('reason', '=', q.reason);
  if (q.deadAfter) query = query.where('dead_at', '>', parseTime(q.deadAfter, 'deadAfter'));
  if (q.deadBefore) query = query.where('dead_at', '<', parseTime(q.deadBefore, 'deadBefore'));
  if (q.replayed !== undefined) query = query.where('replayed_at', q.replayed ? 'is not' : 'is', null);
  if (q.cursor) query = query.where('id', '<', cursor.decode(q.cursor).id!);
  const rows = await query.orderBy('id', 'desc').limit(limit + 1).execute();
  const page = rows.slice(0, limit);
  const last = page[page.length - 1];
  ctx.body = { data: page.map(deadLetterBody), nextCursor: rows.length > limit && last ? cursor.encode({ id: last.id }) : null };
};

const replayDeadLetter: Handler = async (ctx, deps) => {
  const id = ctx.params.id ?? '';
  const by = requester(ctx);
  const result = await deps.db.transaction().execute(async (trx) => {
    // The row lock makes a second, concurrent replay wait, then find it replayed.
    const letter = await trx.selectFrom('dead_letters').selectAll().where('id', '=', id).forUpdate().executeTakeFirst();
    if (!letter) throw new AppError(404, 'dead_letter_not_found', `no dead letter with id ${JSON.stringify(id)}`);
    if (letter.replayed_at) throw new AppError(409, 'already_replayed', `dead letter ${id} was replayed at ${letter.replayed_at.toISOString()}`);
    const endpoint = await trx.selectFrom('endpoints').select(['deleted_at']).where('id', '=', letter.endpoint_id).executeTakeFirstOrThrow();
    if (endpoint.deleted_at) throw new AppError(409, 'endpoint_deleted', 'the endpoint is deleted; its dead letters cannot be replayed');
    const { rows } = await sql<{ replayed: boolean }>`SELECT hookrelay.replay_webhook(${letter.webhook_id}, ${by}) AS replayed`.execute(trx);
    if (!rows[0]?.replayed) throw new AppError(409, 'not_dead', 'the webhook is no longer dead');
    const webhook = await trx.selectFrom('webhooks').select(['status']).where('id', '=', letter.webhook_id).executeTakeFirstOrThrow();
    return { letter, status: webhook.status };
  });
  if (result.status === 'pending') deps.onSubmitted?.();
  ctx.state.log.info('dead letter replayed', { deadLetterId: id, webhookId: result.letter.webhook_id, status: result.status });
  ctx.body = { deadLetterId: id, webhookId: result.letter.webhook_id, status: result.status === 'held' ? 'held' : 'pending' };
};

const replayDeadLetters: Handler = async (ctx, deps) => {
  const f = ctx.request.body as DeadLetterFilter;
  const by = requester(ctx);
  const { rows } = await sql<{ requeued: number }>`
    SELECT count(*) FILTER (WHERE hookrelay.replay_webhook(d.webhook_id, ${by}))::int AS requeued
      FROM (SELECT webhook_id FROM hookrelay.dead_letters
             WHERE replayed_at IS NULL
               AND (${f.endpointId ?? null}::text IS NULL OR endpoint_id = ${f.endpointId ?? null})
               AND (${f.reason ?? null}::text IS NULL OR reason = ${f.reason ?? null})
               AND (${f.deadAfter ?? null}::timestamptz IS NULL OR dead_at > ${f.deadAfter ?? null}::timestamptz)
               AND (${f.deadBefore ?? null}::timestamptz IS NULL OR dead_at < ${f.deadBefore ?? null}::timestamptz)
             ORDER BY id) d`.execute(deps.db);
  const requeued = rows[0]?.requeued ?? 0;
  if (requeued > 0) deps.onSubmitted?.();
  ctx.state.log.info('dead letters replayed', { requeued, filter: f });
  ctx.body = { requeued };
};

const retryWebhooks: Handler = async (ctx, deps) => {
  const f = ctx.request.body as RetryFilter;
  const fn = f.status === 'dead' ? sql`hookrelay.replay_webhook(w.id, ${requester(ctx)})` : sql`hookrelay.retry_now(w.id)`;
  // Raw SQL: the builder cannot express a side-effecting function in a FILTER clause, and one
  // statement keeps the whole re-queue in one transaction.
  const { rows } = await sql<{ requeued: number }>`
    SELECT count(*) FILTER (WHERE ${fn})::int AS requeued
      FROM (SELECT id FROM hookrelay.webhooks
             WHERE status = ${f.status}
               AND (${f.endpointId ?? null}::text IS NULL OR endpoint_id = ${f.endpointId ?? null})
               AND (${f.createdAfter ?? null}::timestamptz IS NULL OR created_at > ${f.createdAfter ?? null}::timestamptz)
               AND (${f.createdBefore ?? null}::timestamptz IS NULL OR created_at < ${f.createdBefore ?? null}::timestamptz)
             ORDER BY id) w`.execute(deps.db);
  const requeued = rows[0]?.requeued ?? 0;
  if (requeued > 0) deps.onSubmitted?.();
  ctx.state.log.info('webhooks re-queued', { requeued, filter: f });
  ctx.body = { requeued };
};

/**
 * One webhook, by id: a dead one is replayed through its dead letter, a retrying one is
 * attempted now. Both functions lock the webhook row, so concurrent calls re-queue it once.
 */
const retryWebhook: Handler = async (ctx, deps) => {
  const id = ctx.params.id!;
  const by = requester(ctx);
  const result = await deps.db.transaction().execute(async (trx) => {
    const webhook = await trx.selectFrom('webhooks').select(['status', 'endpoint_id']).where('id', '=', id).executeTakeFirst();
    if (!webhook) throw new AppError(404, 'webhook_not_found', `no webhook with id ${JSON.stringify(id)}`);
    if (webhook.status !== 'dead' && webhook.status !== 'retrying') {
      throw new AppError(409, 'not_retryable', `webhook ${id} is ${webhook.status}; only dead and retrying webhooks can be re-queued`);
    }
    const fn = webhook.status === 'dead' ? sql`hookrelay.replay_webhook(${id}, ${by})` : sql`hookrelay.retry_now(${id})`;
    const { rows } = await sql<{ requeued: boolean }>`SELECT ${fn} AS requeued`.execute(trx);
    if (!rows[0]?.requeued) {
      throw new AppError(409, 'not_retryable', webhook.status === 'dead'
        ? `webhook ${id} cannot be replayed (its endpoint is deleted, or it was replayed just now)`
        : `webhook ${id} is due now or being attempted; there is nothing to bring forward`);
    }
    return trx.selectFrom('webhooks').select(['status', 'next_attempt_at']).where('id', '=', id).executeTakeFirstOrThrow();
  });
  if (result.status !== 'held') deps.onSubmitted?.();
  ctx.state.log.info('webhook re-queued', { webhookId: id, status: result.status });
  ctx.body = {
    webhookId: id,
    status: result.status as 'pending' | 'retrying' | 'held',
    nextAttemptAt: result.next_attempt_at ? result.next_attempt_at.toISOString() : null,
  };
};

export const deadLetterHandlers: Record<string, Handler> = { listDeadLetters, replayDeadLetter, replayDeadLetters, retryWebhooks, retryWebhook };
