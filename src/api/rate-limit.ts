/**
 * Per-token rate limiting: one token bucket per token, in this process's memory. Each API
 * instance keeps its own buckets, so with N instances behind a load balancer a token may make
 * up to N times its limit in all. The map is bounded: when it is full, the bucket used least
 * recently is dropped (a dropped bucket comes back full, which only ever errs towards allowing).
 */

export interface RateLimits {
  /** Tokens added to the bucket per second. */
  perSecond: number;
  /** Size of the bucket: requests that may be made at once. */
  burst: number;
}

export interface RateDecision {
  allowed: boolean;
  /** The bucket's size, for RateLimit-Limit. */
  limit: number;
  /** Whole requests left after this one, for RateLimit-Remaining. */
  remaining: number;
  /** When refused: whole seconds (>= 1) until one request is allowed again. */
  retryAfterSeconds: number;
}

interface Bucket {
  tokens: number;
  updatedMs: number;
}

export interface RateLimiter {
  take(key: string, limits: RateLimits): RateDecision;
  /** Buckets held now (for tests and metrics). */
  size(): number;
}

export function createRateLimiter(options: { maxBuckets?: number; now?: () => number } = {}): RateLimiter {
  const maxBuckets = options.maxBuckets ?? 10_000;
  const now = options.now ?? (() => performance.now());
  // A Map iterates in insertion order; re-inserting on use keeps the least recently used first.
  const buckets = new Map<string, Bucket>();
  return {
    take(key, { perSecond, burst }) {
      const t = now();
      let bucket = buckets.get(key);
      if (bucket) {
        buckets.delete(key);
        bucket.tokens = Math.min(burst, bucket.tokens + ((t - bucket.updatedMs) / 1000) * perSecond);
        bucket.updatedMs = t;
      } else {
        bucket = { tokens: burst, updatedMs: t };
        while (buckets.size >= maxBuckets) {
          const oldest = buckets.keys().next().value as string;
          buckets.delete(oldest);
        }
      }
      buckets.set(key, bucket);
      if (bucket.tokens >= 1) {
        bucket.tokens -= 1;
        return { allowed: true, limit: burst, remaining: Math.floor(bucket.tokens), retryAfterSeconds: 0 };
      }
      const retryAfterSeconds = Math.max(1, Math.ceil((1 - bucket.tokens) / perSecond));
      return { allowed: false, limit: burst, remaining: 0, retryAfterSeconds };
    },
    size: () => buckets.size,
  };
}
