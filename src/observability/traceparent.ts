import { randomBytes } from 'node:crypto';

/**
 * W3C Trace Context `traceparent` (https://www.w3.org/TR/trace-context/#traceparent-header):
 * version-traceid-parentid-flags in lowercase hex. An invalid header is ignored, not an error:
 * tracing must never refuse a webhook.
 */

export interface TraceParent {
  traceId: string;
  spanId: string;
  /** Two hex digits; bit 0 is "sampled". Kept as received. */
  flags: string;
}

const FORMAT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

/** The parsed header, or undefined when absent or invalid (version ff, all-zero ids, bad form). */
export function parseTraceParent(header: string | undefined | null): TraceParent | undefined {
  if (!header) return undefined;
  const match = FORMAT.exec(header.trim());
  if (!match) return undefined;
  const [, version, traceId, spanId, flags, rest] = match as unknown as [string, string, string, string, string, string | undefined];
  if (version === 'ff') return undefined;
  // Version 00 has exactly four fields; later versions may append more, which we drop.
  if (version === '00' && rest !== undefined) return undefined;
  if (/^0+$/.test(traceId) || /^0+$/.test(spanId)) return undefined;
  return { traceId, spanId, flags };
}

/** The normalized (version 00) header text, as stored with the webhook. */
export function formatTraceParent(tp: TraceParent): string {
  return `00-${tp.traceId}-${tp.spanId}-${tp.flags}`;
}

/** A random non-zero span id: 8 bytes, 16 hex digits. */
export function newSpanId(): string {
  for (;;) {
    const id = randomBytes(8).toString('hex');
    if (!/^0+$/.test(id)) return id;
  }
}

/** The same trace, a new span id (the attempt's), flags preserved. */
export function childTraceParent(stored: string | null | undefined, spanId = newSpanId()): string | undefined {
  const tp = parseTraceParent(stored);
  if (!tp) return undefined;
  return formatTraceParent({ ...tp, spanId });
}

/** The header normalized for storage, or undefined when absent or invalid. */
export function validTraceParent(header: string | undefined): string | undefined {
  const tp = parseTraceParent(header);
  return tp ? formatTraceParent(tp) : undefined;
}
