import { context, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, TraceFlags, type Context, type Span } from '@opentelemetry/api';
import type { Metrics } from './metrics.ts';
import { childTraceParent, formatTraceParent, parseTraceParent, validTraceParent } from './traceparent.ts';

/**
 * Spans through @opentelemetry/api only: without an SDK registered by the user (README,
 * "Observability") every call here is a no-op. Span names and attributes:
 *   hookrelay.submit      the submission (webhook id, endpoint id)
 *   hookrelay.queue_wait  from the attempt being due to a worker taking it
 *   hookrelay.attempt     one delivery attempt (webhook id, endpoint id, attempt, HTTP status
 *                         code, outcome, retry scheduled)
 * Submission and attempts of a webhook share one trace when the submission carried a W3C
 * traceparent (or, with an SDK, started one): each attempt sends the receiver a traceparent
 * with that trace id and the attempt's own span id, the flags as received.
 */

export const TRACER_NAME = 'hookrelay';
export const ATTR = Object.freeze({
  webhookId: 'hookrelay.webhook.id',
  endpointId: 'hookrelay.endpoint.id',
  attempt: 'hookrelay.attempt',
  requestId: 'hookrelay.request.id',
  outcome: 'hookrelay.attempt.outcome',
  retryScheduled: 'hookrelay.retry.scheduled',
  statusCode: 'http.response.status_code',
  errorClass: 'error.type',
});

const tracer = () => trace.getTracer(TRACER_NAME);

/** A context whose parent is the remote span a stored traceparent names (ROOT_CONTEXT without one). */
function remoteParent(traceparent: string | null | undefined): Context {
  const tp = parseTraceParent(traceparent);
  if (!tp) return ROOT_CONTEXT;
  return trace.setSpanContext(ROOT_CONTEXT, { traceId: tp.traceId, spanId: tp.spanId, traceFlags: parseInt(tp.flags, 16) & 0xff, isRemote: true });
}

/** The span's own context as a traceparent, when a recording SDK made it a span of its own. */
function ownTraceParent(span: Span, parent: string | undefined): string | undefined {
  const sc = span.spanContext();
  if (!span.isRecording() || !trace.isSpanContextValid(sc)) return undefined;
  const given = parseTraceParent(parent);
  if (given && given.spanId === sc.spanId) return undefined;
  return formatTraceParent({ traceId: sc.traceId, spanId: sc.spanId, flags: given?.flags ?? (sc.traceFlags & TraceFlags.SAMPLED ? '01' : '00') });
}

export interface SubmissionTrace {
  /** What to store with the webhook: this span's context with an SDK, else the valid header given. */
  traceparent: string | undefined;
  accepted(webhookId: string, endpointId: string): void;
}

/**
 * Runs a submission inside its span, the incoming traceparent (if valid) as its parent. An
 * invalid header is ignored. Without an SDK, the header as received (normalized) is stored;
 * with one, the submission span's own context, so attempts become its children.
 */
export async function traceSubmission<T>(header: string | undefined, requestId: string | undefined, fn: (t: SubmissionTrace) => Promise<T>): Promise<T> {
  const given = validTraceParent(header);
  const span = tracer().startSpan('hookrelay.submit', { kind: SpanKind.SERVER, attributes: requestId ? { [ATTR.requestId]: requestId } : {} }, remoteParent(given));
  const own = ownTraceParent(span, given);
  try {
    return await context.with(trace.setSpan(context.active(), span), () => fn({
      traceparent: own ?? given,
      accepted(webhookId, endpointId) {
        span.setAttributes({ [ATTR.webhookId]: webhookId, [ATTR.endpointId]: endpointId });
      },
    }));
  } catch (err) {
    span.recordException(err as Error);
    span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
    throw err;
  } finally {
    span.end();
  }
}

export interface AttemptStart {
  webhookId: string;
  endpointId: string;
  attempt: number;
  requestId?: string | null | undefined;
  /** The stored traceparent of the submission, if any. */
  traceparent: string | null | undefined;
  /** When the attempt became due (the webhook's next_attempt_at); the queue wait ends now. */
  dueAt: Date | null | undefined;
  now?: number;
}

export interface AttemptEnd {
  result: { ok: boolean; statusCode: number | null; errorClass: string | null; error?: string | null; durationMs: number };
  outcome: { kind: 'delivered' } | { kind: 'retry'; at: Date } | { kind: 'dead'; reason: string };
  recorded: { status: string; transition: string | null; disabled: string | null };
  now?: number;
}

export interface ObservedAttempt {
  /** Headers to add to the request: `traceparent` when the webhook has a trace. */
  headers: Record<string, string>;
  /** The attempt was recorded (or found recorded by another worker: then it is not counted). */
  end(e: AttemptEnd): void;
  /** The attempt was abandoned or failed on our side; nothing is counted. */
  abandon(reason: unknown): void;
}

/**
 * Metrics and spans of one delivery attempt: queue latency and the queue-wait span now, the
 * attempt span from here to end(); counters once the attempt is recorded.
 */
export function startAttempt(metrics: Metrics | undefined, a: AttemptStart): ObservedAttempt {
  const now = a.now ?? Date.now();
  const parent = remoteParent(a.traceparent);
  const ids = { [ATTR.webhookId]: a.webhookId, [ATTR.endpointId]: a.endpointId, [ATTR.attempt]: a.attempt, ...(a.requestId ? { [ATTR.requestId]: a.requestId } : {}) };
  if (a.dueAt) {
    metrics?.queueLatency((now - a.dueAt.getTime()) / 1000);
    const wait = tracer().startSpan('hookrelay.queue_wait', { kind: SpanKind.INTERNAL, startTime: Math.min(a.dueAt.getTime(), now), attributes: ids }, parent);
    wait.end(now);
  }
  const span = tracer().startSpan('hookrelay.attempt', { kind: SpanKind.CLIENT, startTime: now, attributes: ids }, parent);
  const headers: Record<string, string> = {};
  // A new span id per attempt: the SDK's span when one records, otherwise a random one.
  const own = ownTraceParent(span, a.traceparent ?? undefined);
  const header = a.traceparent ? (own ? childTraceParent(a.traceparent, parseTraceParent(own)!.spanId) : childTraceParent(a.traceparent)) : undefined;
  if (header) headers.traceparent = header;
  let ended = false;
  return {
    headers,
    end({ result, outcome, recorded, now: at }) {
      if (ended) return;
      ended = true;
      span.setAttributes({ [ATTR.retryScheduled]: outcome.kind === 'retry', [ATTR.outcome]: result.ok ? 'success' : 'failure' });
      if (result.statusCode !== null) span.setAttribute(ATTR.statusCode, result.statusCode);
      if (result.errorClass) span.setAttribute(ATTR.errorClass, result.errorClass);
      if (!result.ok) span.setStatus({ code: SpanStatusCode.ERROR, message: result.error ?? result.errorClass ?? 'failed' });
      span.end(at);
      if (!metrics || recorded.status === 'stale') return;
      metrics.attemptMade(result);
      if (outcome.kind === 'delivered') metrics.delivered();
      else if (outcome.kind === 'retry') metrics.retryScheduled(outcome.at.getTime() - (at ?? Date.now()));
      else metrics.deadLettered(outcome.reason);
      if (recorded.transition) metrics.circuitTransition(recorded.transition);
      if (recorded.disabled) metrics.endpointDisabled();
    },
    abandon(reason) {
      if (ended) return;
      ended = true;
      span.setStatus({ code: SpanStatusCode.ERROR, message: reason instanceof Error ? reason.message : String(reason) });
      span.end();
    },
  };
}
