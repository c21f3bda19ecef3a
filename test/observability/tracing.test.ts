import test from 'ava';
import { context, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { childTraceParent, parseTraceParent, validTraceParent } from '../../src/observability/traceparent.ts';
import { query } from '../helpers/db.ts';
import { startReceiver } from '../helpers/receiver.ts';
import { eventually, startTestService } from '../helpers/service.ts';

/**
 * Spans as an operator's SDK would see them: this file registers an OpenTelemetry SDK with an
 * in-memory exporter (as a user's `--import ./otel.ts` would) and runs the real service.
 */

const exporter = new InMemorySpanExporter();
trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }));
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());

const TRACE_ID = '0af7651916cd43dd8448eb211c80319c';
const PARENT_SPAN = 'b7ad6b7169203331';

const parentOf = (s: ReadableSpan) => (s as unknown as { parentSpanContext?: { spanId: string } }).parentSpanContext?.spanId;
const spansOf = (webhookId: string, name: string) => exporter.getFinishedSpans()
  .filter((s) => s.name === name && s.attributes['hookrelay.webhook.id'] === webhookId)
  .sort((a, b) => Number(a.attributes['hookrelay.attempt'] ?? 0) - Number(b.attributes['hookrelay.attempt'] ?? 0));

test.serial('spans for the submission, each queue wait and each attempt, in the trace the submission carried', async (t) => {
  const svc = await startTestService(t);
  const rx = await startReceiver(t);
  rx.script({ status: 503, body: 'busy' });
  const res = await svc.api('/api/v1/webhooks/deliver', {
    method: 'POST',
    headers: { traceparent: `00-${TRACE_ID}-${PARENT_SPAN}-01`, 'x-request-id': 'req-span-1' },
    json: { url: `${rx.url}/traced`, payload: { n: 1 }, retryPolicy: { maxAttempts: 3, baseDelayMs: 100, maxDelayMs: 100 } },
  });
  t.is(res.status, 202);
  const { id, endpointId } = (await res.json()) as { id: string; endpointId: string };
  const got = await rx.waitFor(2);
  await eventually(async () => (spansOf(id, 'hookrelay.attempt').length === 2 ? true : undefined));

  const [submit] = spansOf(id, 'hookrelay.submit');
  t.truthy(submit);
  t.is(submit!.spanContext().traceId, TRACE_ID);
  t.is(parentOf(submit!), PARENT_SPAN, 'the submission continues the caller\'s span');
  t.is(submit!.attributes['hookrelay.endpoint.id'], endpointId);
  t.is(submit!.attributes['hookrelay.request.id'], 'req-span-1');
  // With an SDK the stored traceparent is the submission span's: attempts become its children.
  const [row] = await query(svc.dbUrl, 'SELECT traceparent FROM hookrelay.webhooks WHERE id = $1', [id]);
  t.is(row!.traceparent, `00-${TRACE_ID}-${submit!.spanContext().spanId}-01`);

  const attempts = spansOf(id, 'hookrelay.attempt');
  const waits = spansOf(id, 'hookrelay.queue_wait');
  t.is(waits.length, 2);
  for (const [i, a] of attempts.entries()) {
    t.is(a.spanContext().traceId, TRACE_ID);
    t.is(parentOf(a), submit!.spanContext().spanId);
    t.is(parentOf(waits[i]!), submit!.spanContext().spanId);
    t.is(a.attributes['hookrelay.attempt'], i + 1);
    t.is(a.attributes['hookrelay.endpoint.id'], endpointId);
    // The receiver saw this attempt's own span id, in the same trace, flags kept.
    t.is(got[i]!.headers.traceparent, `00-${TRACE_ID}-${a.spanContext().spanId}-01`);
  }
  t.is(attempts[0]!.attributes['http.response.status_code'], 503);
  t.is(attempts[0]!.attributes['hookrelay.retry.scheduled'], true);
  t.is(attempts[0]!.status.code, 2, 'a failed attempt is an error span');
  t.is(attempts[1]!.attributes['http.response.status_code'], 200);
  t.is(attempts[1]!.attributes['hookrelay.retry.scheduled'], false);
  t.not(attempts[0]!.spanContext().spanId, attempts[1]!.spanContext().spanId);
  // The second attempt waited for its retry time: its queue wait began after the first attempt.
  t.true(waits[1]!.startTime[0] * 1e3 + waits[1]!.startTime[1] / 1e6 >= attempts[0]!.startTime[0] * 1e3 + attempts[0]!.startTime[1] / 1e6);
});

test.serial('with an SDK and no traceparent on the submission, the submission starts the trace the attempts continue', async (t) => {
  const svc = await startTestService(t);
  const rx = await startReceiver(t);
  const res = await svc.api('/api/v1/webhooks/deliver', { method: 'POST', headers: { traceparent: '00-zz-bad-01' }, json: { url: `${rx.url}/fresh`, payload: 2 } });
  t.is(res.status, 202);
  const { id } = (await res.json()) as { id: string };
  const [got] = await rx.waitFor(1);
  await eventually(async () => (spansOf(id, 'hookrelay.attempt').length === 1 ? true : undefined));
  const [submit] = spansOf(id, 'hookrelay.submit');
  t.is(parentOf(submit!), undefined, 'an invalid traceparent is ignored: a root span');
  const [attempt] = spansOf(id, 'hookrelay.attempt');
  t.is(attempt!.spanContext().traceId, submit!.spanContext().traceId);
  t.regex(got!.headers.traceparent!, new RegExp(`^00-${submit!.spanContext().traceId}-${attempt!.spanContext().spanId}-0[01]$`));
});

test('traceparent parsing: valid headers kept (normalized), invalid ones ignored', (t) => {
  const good = `00-${TRACE_ID}-${PARENT_SPAN}-01`;
  t.deepEqual(parseTraceParent(good), { traceId: TRACE_ID, spanId: PARENT_SPAN, flags: '01' });
  t.is(validTraceParent(` ${good} `), good);
  // A later version may carry more fields; they are dropped.
  t.is(validTraceParent(`01-${TRACE_ID}-${PARENT_SPAN}-03-extra`), `00-${TRACE_ID}-${PARENT_SPAN}-03`);
  for (const bad of [
    undefined, '', 'garbage', `00-${TRACE_ID}-${PARENT_SPAN}`, `00-${TRACE_ID.toUpperCase()}-${PARENT_SPAN}-01`,
    `ff-${TRACE_ID}-${PARENT_SPAN}-01`, `00-${'0'.repeat(32)}-${PARENT_SPAN}-01`, `00-${TRACE_ID}-${'0'.repeat(16)}-01`,
    `00-${TRACE_ID}-${PARENT_SPAN}-01-extra`, `00-${TRACE_ID}a-${PARENT_SPAN}-01`, `00-${TRACE_ID}-${PARENT_SPAN}-1`,
  ]) {
    t.is(validTraceParent(bad), undefined, String(bad));
  }
  // A child: same trace and flags, a new non-zero span id each time.
  const a = childTraceParent(good)!;
  const b = childTraceParent(good)!;
  t.regex(a, new RegExp(`^00-${TRACE_ID}-[0-9a-f]{16}-01$`));
  t.not(a, b);
  t.not(parseTraceParent(a)!.spanId, PARENT_SPAN);
  t.is(childTraceParent(null), undefined);
});
