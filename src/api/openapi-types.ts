// DO NOT EDIT: generated from openapi.yaml by `npm run gen:api`.
export interface paths {
    "/api/v1/webhooks/deliver": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Submit a webhook for delivery
         * @description Stores the webhook and its first delivery job in one transaction and answers once it
         *     has committed. The first webhook to a URL registers an endpoint for it, with its own
         *     signing secret; later webhooks to the same URL reuse that endpoint.
         */
        post: operations["deliverWebhook"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/webhooks/{id}/status": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Delivery status of a webhook */
        get: operations["getWebhookStatus"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/webhooks/{id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** A webhook with its attempts */
        get: operations["getWebhook"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/endpoints/{id}/secret": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * The endpoint's current signing secret
         * @description Receivers use it to verify the `webhook-signature` header (Standard Webhooks). 409 for
         *     ed25519 endpoints: their receivers need only the public key.
         */
        get: operations["getEndpointSecret"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/webhooks": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * List webhooks, newest first
         * @description Cursor pagination in a stable order (newest first, by id): pages never repeat or skip
         *     a webhook while new ones arrive. Pass `nextCursor` back as `cursor` for the next page.
         */
        get: operations["listWebhooks"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/endpoints": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** List endpoints, oldest first */
        get: operations["listEndpoints"];
        put?: never;
        /** Register an endpoint */
        post: operations["createEndpoint"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/endpoints/{id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** An endpoint (deleted ones too, with deletedAt set) */
        get: operations["getEndpoint"];
        put?: never;
        post?: never;
        /**
         * Delete an endpoint (soft)
         * @description The endpoint and its history stay readable (with `deletedAt` set) and its URL is free
         *     for a new endpoint. Webhooks still waiting for it end `dead` with the error
         *     `endpoint deleted`.
         */
        delete: operations["deleteEndpoint"];
        options?: never;
        head?: never;
        /**
         * Change an endpoint
         * @description Only the fields given change; `retryPolicy` and `timeoutMs` may be `null` to fall back
         *     to the server defaults. Switching between an HMAC algorithm and `ed25519` gives the
         *     endpoint a new key of the other kind; the old key keeps signing for 24 hours.
         */
        patch: operations["updateEndpoint"];
        trace?: never;
    };
    "/api/v1/endpoints/{id}/secret/rotate": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Rotate the endpoint's signing key
         * @description The new key becomes current at once. The old one keeps signing until `graceSeconds`
         *     have passed (default 86400): meanwhile each delivery carries one signature per active
         *     key, so receivers can switch secrets without missing a delivery.
         */
        post: operations["rotateEndpointSecret"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/endpoints/{id}/public-key": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * The public key of an ed25519 endpoint
         * @description Receivers verify `v1a` signatures with it and need no shared secret. 409 for HMAC endpoints.
         */
        get: operations["getEndpointPublicKey"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/signatures/verify": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Check a delivery's signature
         * @description Verifies `body` and `headers` as a receiver got them, either against an endpoint's
         *     active keys (`endpointId`) or against a given `secret`. Standard Webhooks headers are
         *     checked when present, X-Webhook-* otherwise. Comparisons are constant-time.
         */
        post: operations["verifySignature"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/webhooks/retry": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Re-queue webhooks in bulk
         * @description `dead` webhooks matching the filter are replayed (same id, a fresh attempt budget);
         *     `retrying` ones are attempted now instead of at their scheduled time. Answers how many
         *     were re-queued. Safe to repeat: a webhook already re-queued is not counted again.
         */
        post: operations["retryWebhooks"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/webhooks/{id}/retry": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Re-queue one webhook
         * @description A `dead` webhook is replayed (same id, a fresh attempt budget; its dead letter is marked
         *     replayed); a `retrying` one is attempted now instead of at its scheduled time. A webhook
         *     in any other state, one already re-queued by a concurrent call, or a dead one whose
         *     endpoint is deleted is a 409.
         */
        post: operations["retryWebhook"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/endpoints/{id}/health": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Health and circuit state of an endpoint */
        get: operations["getEndpointHealth"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/dead-letters": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** List dead letters, newest first */
        get: operations["listDeadLetters"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/dead-letters/{id}/replay": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Replay one dead letter
         * @description Re-queues the webhook with its id (receivers deduplicate on `webhook-id`) and a fresh
         *     attempt budget. A dead letter is replayed once: a second replay, also one racing the
         *     first, is a 409.
         */
        post: operations["replayDeadLetter"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/dead-letters/replay": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Replay dead letters in bulk
         * @description Replays every not yet replayed dead letter matching the filter; answers how many.
         */
        post: operations["replayDeadLetters"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/tokens": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** List API tokens, oldest first (revoked and expired ones too; never a token or its hash) */
        get: operations["listApiTokens"];
        put?: never;
        /**
         * Create an API token
         * @description The token is in the answer once and never again: only its SHA-256 is stored. Without
         *     `scopes` it gets webhooks:write, webhooks:read, endpoints:write and endpoints:read (not
         *     admin).
         */
        post: operations["createApiToken"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/tokens/{id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        post?: never;
        /**
         * Revoke an API token
         * @description Idempotent: revoking a revoked token answers its record with the first `revokedAt`.
         *     The token is refused from the next request on. An admin may revoke the very token it
         *     uses; that request still succeeds, the next one is a 401.
         */
        delete: operations["revokeApiToken"];
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/stats": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Delivery figures as JSON (backlog, last hour, worst endpoints)
         * @description The figures of `GET /metrics` for people without Prometheus, read from PostgreSQL at
         *     each request (so they cover every instance): the backlog by state, the age of the
         *     oldest pending webhook, the last hour's totals and its minutes, attempts by outcome
         *     and the endpoints in the worst health.
         */
        get: operations["getStats"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/metrics": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Prometheus metrics
         * @description Prometheus text exposition format 0.0.4: `hookrelay_*` counters and histograms of this
         *     process, backlog and endpoint gauges read from PostgreSQL (cached for 5 s), PostgreSQL
         *     pool usage and process metrics. Needs a token with the `admin` scope, unless the server
         *     runs with HOOKRELAY_METRICS_PUBLIC=true (then no token is asked for).
         */
        get: operations["getMetrics"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/healthz": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Liveness */
        get: operations["getHealthz"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/readyz": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Readiness
         * @description 200 when PostgreSQL answers and the queue is started; 503 otherwise.
         */
        get: operations["getReadyz"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
}
export type webhooks = Record<string, never>;
export interface components {
    schemas: {
        /** @description Exactly one of `url` and `endpointId`. */
        DeliverRequest: {
            /** @description Deliver through this endpoint (its headers, retry policy, timeout and keys). */
            endpointId?: string;
            /**
             * Format: uri
             * @description Where to POST the payload (http or https). The live endpoint with this URL is used, or registered on first use.
             * @example https://customer.example.com/webhook
             */
            url?: string;
            /** @description Any JSON value; sent as the request body, serialized as compact JSON. */
            payload: unknown;
            headers?: components["schemas"]["Headers"];
            retryPolicy?: components["schemas"]["RetryPolicyInput"];
        };
        /**
         * @description Extra request headers sent with every attempt. They can never replace the signature
         *     headers (`webhook-*`, `X-Webhook-*`), `Content-Type`, `Host`, `Content-Length` or
         *     hop-by-hop headers; naming one of those is a 400.
         */
        Headers: {
            [key: string]: string;
        };
        /**
         * @description Attempt n+1 follows attempt n after min(maxDelayMs, baseDelayMs * backoffFactor^(n-1)),
         *     with ±20% jitter, until maxAttempts attempts were made; then the webhook is `dead`.
         *     Omitted fields take the server defaults (HOOKRELAY_RETRY_*: 33 attempts, 30000 ms,
         *     3600000 ms, factor 2).
         */
        RetryPolicyInput: {
            maxAttempts?: number;
            baseDelayMs?: number;
            maxDelayMs?: number;
            backoffFactor?: number;
        };
        RetryPolicy: {
            maxAttempts: number;
            baseDelayMs: number;
            maxDelayMs: number;
            backoffFactor: number;
        };
        /**
         * @description `pending`: not attempted yet; `retrying`: failed at least once, another attempt is
         *     scheduled; `delivered`: a 2xx answer was received; `dead`: attempts are exhausted, the
         *     receiver answered 410 Gone, or the endpoint was deleted (see dead letters); `held`: the
         *     endpoint is disabled, and the webhook waits until it is enabled again.
         * @enum {string}
         */
        Status: "pending" | "retrying" | "delivered" | "dead" | "held";
        DeliverAccepted: {
            /** @example msg_01JF3Y8Q6ZV7W3K2T9H4N5B6C7 */
            id: string;
            /** @example ep_01JF3Y8Q6ZV7W3K2T9H4N5B6C8 */
            endpointId: string;
            /**
             * @description `held` when the endpoint is disabled: the webhook is kept and delivered once the endpoint is enabled.
             * @enum {string}
             */
            status: "pending" | "held";
        };
        WebhookStatus: {
            id: string;
            status: components["schemas"]["Status"];
            /** @description Attempts recorded so far. */
            attempts: number;
            /** Format: date-time */
            lastAttemptAt: string | null;
            /** Format: date-time */
            nextAttemptAt: string | null;
            /** Format: date-time */
            deliveredAt: string | null;
            /** @description The last attempt's error, null once delivered. */
            error: string | null;
        };
        Webhook: {
            id: string;
            url: string;
            endpointId: string;
            payload: unknown;
            headers: {
                [key: string]: string;
            };
            retryPolicy: components["schemas"]["RetryPolicy"];
            status: components["schemas"]["Status"];
            attemptCount: number;
            attempts: components["schemas"]["Attempt"][];
            /** Format: date-time */
            createdAt: string;
            /** Format: date-time */
            updatedAt: string;
            /** Format: date-time */
            lastAttemptAt: string | null;
            /** Format: date-time */
            nextAttemptAt: string | null;
            /** Format: date-time */
            deliveredAt: string | null;
            error: string | null;
            idempotencyKey: string | null;
        };
        Attempt: {
            number: number;
            /** Format: date-time */
            startedAt: string;
            durationMs: number;
            statusCode: number | null;
            /** @enum {string} */
            outcome: "success" | "failure";
            /** @description timeout, connection_refused, connection_reset, dns, tls, http_status, redirect, invalid_response, network, or blocked (the destination is not a public address: see HOOKRELAY_ALLOW_NETWORKS; the error is then "destination not allowed"). */
            errorClass: string | null;
            error: string | null;
            /** @description At most the first 1 KiB of the response body. */
            responseBody: string | null;
        };
        EndpointSecret: {
            /** @description `whsec_` followed by the base64 of 32 random bytes; the HMAC key is the decoded bytes. */
            secret: string;
        };
        SignatureSettings: {
            /**
             * @description `hmac-sha256` (default) and `hmac-sha512` sign with the endpoint's `whsec_` secret;
             *     `webhook-signature` always carries Standard Webhooks `v1` (HMAC-SHA256) entries and
             *     `X-Webhook-Signature` carries `sha256=` or `sha512=` entries. `ed25519` signs with a
             *     key pair: `v1a` entries, and `ed25519=` entries in `X-Webhook-Signature`.
             * @enum {string}
             */
            algorithm: "hmac-sha256" | "hmac-sha512" | "ed25519";
        };
        EndpointCreate: {
            /** Format: uri */
            url: string;
            description?: string;
            /** @default true */
            enabled: boolean;
            headers?: components["schemas"]["Headers"];
            retryPolicy?: components["schemas"]["RetryPolicyInput"];
            /** @description Deadline of one attempt to this endpoint; default HOOKRELAY_DELIVERY_TIMEOUT_MS. */
            timeoutMs?: number;
            signature?: components["schemas"]["SignatureSettings"];
            /** @description Free JSON for the caller's own use. */
            metadata?: {
                [key: string]: unknown;
            };
            /** @description The first key, if the caller brings one (`whsec_` + base64 of 24 to 64 bytes; `whsk_` + base64 32-byte seed for ed25519). Generated otherwise. */
            secret?: string;
        };
        EndpointUpdate: {
            /** Format: uri */
            url?: string;
            description?: string;
            enabled?: boolean;
            headers?: components["schemas"]["Headers"];
            retryPolicy?: components["schemas"]["RetryPolicyInput"] | null;
            timeoutMs?: number | null;
            signature?: components["schemas"]["SignatureSettings"];
            metadata?: {
                [key: string]: unknown;
            };
        };
        Endpoint: {
            id: string;
            url: string;
            description: string;
            enabled: boolean;
            disabledReason: string | null;
            headers: {
                [key: string]: string;
            };
            /** @description The endpoint's own policy fields (null when it uses the server defaults). */
            retryPolicy: components["schemas"]["RetryPolicyInput"] | null;
            timeoutMs: number | null;
            signature: components["schemas"]["SignatureSettings"];
            metadata: {
                [key: string]: unknown;
            };
            /** Format: date-time */
            createdAt: string;
            /** Format: date-time */
            updatedAt: string;
            /** Format: date-time */
            deletedAt: string | null;
            health?: components["schemas"]["EndpointHealth"];
        };
        EndpointList: {
            data: components["schemas"]["Endpoint"][];
            nextCursor: string | null;
        };
        WebhookSummary: {
            id: string;
            url: string;
            endpointId: string;
            status: components["schemas"]["Status"];
            attempts: number;
            /** Format: date-time */
            createdAt: string;
            /** Format: date-time */
            lastAttemptAt: string | null;
            /** Format: date-time */
            nextAttemptAt: string | null;
            /** Format: date-time */
            deliveredAt: string | null;
            error: string | null;
        };
        WebhookList: {
            data: components["schemas"]["WebhookSummary"][];
            nextCursor: string | null;
        };
        RotateRequest: {
            /** @description The new key, if the caller brings one (same rules as at creation); generated otherwise. */
            secret?: string;
            /**
             * @description How long the replaced key keeps signing. 0 retires it at once.
             * @default 86400
             */
            graceSeconds: number;
        };
        Rotation: {
            keyId: string;
            /** @description For ed25519 endpoints, the new `whpk_` public key. */
            publicKey?: string | null;
            previousKeyId: string | null;
            /** Format: date-time */
            previousKeyExpiresAt: string | null;
        };
        EndpointPublicKey: {
            publicKey: string;
            keyId: string;
        };
        /** @description Exactly one of `endpointId` and `secret`. */
        VerifyRequest: {
            /** @description The raw request body as received. */
            body: string;
            headers: {
                [key: string]: string;
            };
            endpointId?: string;
            /** @description A `whsec_` secret or a `whpk_` public key. */
            secret?: string;
            /** @default 300 */
            toleranceSeconds: number;
        };
        VerifyResult: {
            valid: boolean;
            /** @enum {string|null} */
            scheme: "standard-webhooks" | "x-webhook" | null;
            reason: string;
            keyId?: string;
            /**
             * @description The algorithm of the matching signature (when valid).
             * @enum {string}
             */
            algorithm?: "hmac-sha256" | "hmac-sha512" | "ed25519";
        };
        EndpointHealth: {
            /**
             * @description `open`: attempts wait for `nextProbeAt` without using an attempt; `half_open`: one probe is in flight.
             * @enum {string}
             */
            circuitState: "closed" | "open" | "half_open";
            /** @description An exponentially weighted success rate of recent attempts. */
            healthScore: number;
            consecutiveFailures: number;
            /** @description Attempts in the current failure-rate window. */
            windowAttempts: number;
            windowFailures: number;
            failureRate: number;
            /** Format: date-time */
            openedAt: string | null;
            /** Format: date-time */
            nextProbeAt: string | null;
            /** Format: date-time */
            lastSuccessAt: string | null;
            /** Format: date-time */
            lastFailureAt: string | null;
            /**
             * Format: date-time
             * @description Start of the current unbroken run of failures.
             */
            failingSince: string | null;
        };
        /** @enum {string} */
        DeadLetterReason: "attempts_exhausted" | "gone" | "endpoint_deleted";
        DeadLetter: {
            id: string;
            webhookId: string;
            endpointId: string;
            reason: components["schemas"]["DeadLetterReason"];
            lastStatusCode: number | null;
            lastError: string | null;
            attempts: number;
            /** Format: date-time */
            deadAt: string;
            /** Format: date-time */
            replayedAt: string | null;
            replayedBy: string | null;
        };
        DeadLetterList: {
            data: components["schemas"]["DeadLetter"][];
            nextCursor: string | null;
        };
        DeadLetterFilter: {
            endpointId?: string;
            reason?: components["schemas"]["DeadLetterReason"];
            /** Format: date-time */
            deadAfter?: string;
            /** Format: date-time */
            deadBefore?: string;
        };
        RetryFilter: {
            /** @enum {string} */
            status: "dead" | "retrying";
            endpointId?: string;
            /** Format: date-time */
            createdAfter?: string;
            /** Format: date-time */
            createdBefore?: string;
        };
        RequeueCount: {
            requeued: number;
        };
        Replayed: {
            deadLetterId: string;
            webhookId: string;
            /**
             * @description `held` when the endpoint is disabled.
             * @enum {string}
             */
            status: "pending" | "held";
        };
        RetriedWebhook: {
            webhookId: string;
            /**
             * @description The webhook's state now: `pending` for a replayed dead webhook, `held` when that
             *     webhook's endpoint is disabled, `retrying` for a retrying webhook whose next
             *     attempt is now due.
             * @enum {string}
             */
            status: "pending" | "retrying" | "held";
            /**
             * Format: date-time
             * @description When the next attempt is due (null while held).
             */
            nextAttemptAt: string | null;
        };
        Health: {
            /** @enum {string} */
            status: "ok" | "unavailable";
            checks?: {
                [key: string]: string;
            };
        };
        FieldError: {
            /** @description Dotted path of the field at fault, e.g. `retryPolicy.maxAttempts`. */
            field: string;
            /** @description JSON Pointer to the same place in the request body. */
            pointer: string;
            message: string;
        };
        /** @description RFC 9457 problem details. */
        Problem: {
            type: string;
            title: string;
            status: number;
            /** @description Stable machine-readable error code. */
            code: string;
            detail: string;
            instance?: string;
            requestId?: string;
            errors?: components["schemas"]["FieldError"][];
        };
        /** @enum {string} */
        Scope: "webhooks:write" | "webhooks:read" | "endpoints:write" | "endpoints:read" | "admin";
        TokenCreate: {
            name: string;
            /** @description Default webhooks:write, webhooks:read, endpoints:write, endpoints:read. */
            scopes?: components["schemas"]["Scope"][];
            /**
             * Format: date-time
             * @description When the token stops being accepted; in the future. Omitted, it does not expire.
             */
            expiresAt?: string;
            /** @description Requests per second this token may make (per API instance); default HOOKRELAY_RATE_LIMIT_PER_SECOND. */
            rateLimitPerSecond?: number;
            /** @description Requests the token may make at once; default HOOKRELAY_RATE_LIMIT_BURST, or twice rateLimitPerSecond when only that is given. */
            rateLimitBurst?: number;
        };
        Token: {
            id: string;
            name: string;
            scopes: components["schemas"]["Scope"][];
            /** Format: date-time */
            createdAt: string;
            /** Format: date-time */
            expiresAt: string | null;
            /** Format: date-time */
            revokedAt: string | null;
            /** Format: date-time */
            lastUsedAt: string | null;
            /** @description Null when the server default applies. */
            rateLimitPerSecond: number | null;
            /** @description Null when the server default applies. */
            rateLimitBurst: number | null;
        };
        TokenCreated: {
            id: string;
            name: string;
            scopes: components["schemas"]["Scope"][];
            /** Format: date-time */
            createdAt: string;
            /** Format: date-time */
            expiresAt: string | null;
            /** Format: date-time */
            revokedAt: string | null;
            /** Format: date-time */
            lastUsedAt: string | null;
            rateLimitPerSecond: number | null;
            rateLimitBurst: number | null;
            /** @description The bearer token; shown only in this answer. */
            token: string;
        };
        TokenList: {
            data: components["schemas"]["Token"][];
            nextCursor: string | null;
        };
        Stats: {
            /** Format: date-time */
            generatedAt: string;
            /** @description Webhooks not yet delivered or dead, by status. */
            backlog: {
                pending: number;
                retrying: number;
                held: number;
            };
            /** @description Seconds since the oldest pending or retrying webhook was accepted; null when there is none. */
            oldestPendingAgeSeconds: number | null;
            /** @description The last 60 minutes: webhooks accepted, delivered and dead, attempts made. */
            lastHour: {
                accepted: number;
                delivered: number;
                failedAttempts: number;
                /** @description Dead letters recorded. */
                dead: number;
                attempts: number;
                /** @description Successful attempts over attempts; null without attempts. */
                successRate: number | null;
            };
            /** @description The last 60 whole minutes (the current one last), oldest first, zero-filled. */
            perMinute: {
                /**
                 * Format: date-time
                 * @description Start of the minute.
                 */
                minute: string;
                accepted: number;
                delivered: number;
                /** @description Failed attempts. */
                failed: number;
                dead: number;
            }[];
            /** @description Attempts of the last hour by outcome: http_3xx is a redirect (not followed); network covers refused and reset connections, DNS, TLS and invalid responses. */
            attemptsByOutcome: {
                success: number;
                http_3xx: number;
                http_4xx: number;
                http_5xx: number;
                timeout: number;
                network: number;
                blocked: number;
            };
            /** @description Up to 10 live (not deleted) endpoints, worst first: disabled ones, then open, half-open and closed circuits, each by lowest health score, then most consecutive failures. */
            worstEndpoints: {
                endpointId: string;
                url: string;
                healthScore: number;
                /** @enum {string} */
                circuitState: "closed" | "open" | "half_open";
                consecutiveFailures: number;
                disabled: boolean;
            }[];
        };
    };
    responses: {
        /** @description The request is malformed or a field is invalid; nothing was stored. A `url` that can never be delivered to (a loopback, private, link-local, reserved or metadata IP literal in any notation, or a localhost name) is refused with code `destination_not_allowed`. */
        BadRequest: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/problem+json": components["schemas"]["Problem"];
            };
        };
        /** @description No valid bearer token. */
        Unauthorized: {
            headers: {
                "WWW-Authenticate"?: string;
                [name: string]: unknown;
            };
            content: {
                "application/problem+json": components["schemas"]["Problem"];
            };
        };
        /** @description The token lacks the scope the operation needs (code `insufficient_scope`; `WWW-Authenticate: Bearer error="insufficient_scope", scope="…"` names it). */
        Forbidden: {
            headers: {
                "WWW-Authenticate"?: string;
                [name: string]: unknown;
            };
            content: {
                "application/problem+json": components["schemas"]["Problem"];
            };
        };
        /** @description The token is over its rate limit (code `rate_limited`). Limits are per token and per API instance. */
        TooManyRequests: {
            headers: {
                /** @description Whole seconds (at least 1) until a request will be allowed again. */
                "Retry-After"?: number;
                /** @description The token's burst size. */
                "RateLimit-Limit"?: number;
                /** @description Requests left in the bucket (0 here). */
                "RateLimit-Remaining"?: number;
                [name: string]: unknown;
            };
            content: {
                "application/problem+json": components["schemas"]["Problem"];
            };
        };
        /** @description No such resource. */
        NotFound: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/problem+json": components["schemas"]["Problem"];
            };
        };
        /** @description The request conflicts with the current state (an Idempotency-Key reused with a different body, a URL taken, a deleted endpoint). */
        Conflict: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/problem+json": components["schemas"]["Problem"];
            };
        };
        /** @description The body or the payload is larger than allowed (HOOKRELAY_MAX_PAYLOAD_BYTES). */
        TooLarge: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/problem+json": components["schemas"]["Problem"];
            };
        };
        /** @description The body is not application/json. */
        UnsupportedMediaType: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/problem+json": components["schemas"]["Problem"];
            };
        };
        /** @description PostgreSQL is unreachable, restarting, or no pooled connection came free within HOOKRELAY_DB_ACQUIRE_TIMEOUT_MS (code `database_unavailable`). Passes by itself; retry after `Retry-After` seconds, with the same Idempotency-Key for a submission (a connection lost during the commit leaves its outcome unknown). */
        Unavailable: {
            headers: {
                /** @description Whole seconds to wait before retrying. */
                "Retry-After": number;
                [name: string]: unknown;
            };
            content: {
                "application/problem+json": components["schemas"]["Problem"];
            };
        };
    };
    parameters: {
        /** @description Items per page. */
        Limit: number;
        /** @description The `nextCursor` of the previous page; opaque and tamper-evident. */
        Cursor: string;
        /**
         * @description The same key with the same body returns the same answer and creates nothing new, also
         *     when both requests arrive at once. The same key with a different body is 409.
         */
        IdempotencyKey: string;
        WebhookId: string;
        EndpointId: string;
    };
    requestBodies: never;
    headers: never;
    pathItems: never;
}
export type $defs = Record<string, never>;
export interface operations {
    deliverWebhook: {
        parameters: {
            query?: never;
            header?: {
                /**
                 * @description The same key with the same body returns the same answer and creates nothing new, also
                 *     when both requests arrive at once. The same key with a different body is 409.
                 */
                "Idempotency-Key"?: components["parameters"]["IdempotencyKey"];
                /**
                 * @description W3C Trace Context. A valid value is stored with the webhook and continued on each
                 *     delivery attempt (same trace id, a new span id per attempt, the flags as given); an
                 *     invalid one is ignored, never an error.
                 */
                traceparent?: string;
                /**
                 * @description Correlation id (1-128 of `A-Za-z0-9._:-`; otherwise a new one is made), echoed in the
                 *     answer, stored with the webhook and carried by every log line about it.
                 */
                "X-Request-Id"?: string;
            };
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["DeliverRequest"];
            };
        };
        responses: {
            /** @description Accepted and committed. */
            202: {
                headers: {
                    /** @description `true` when this answer repeats the one given to an earlier request with the same Idempotency-Key. */
                    "Idempotent-Replayed"?: "true";
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["DeliverAccepted"];
                };
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            404: components["responses"]["NotFound"];
            409: components["responses"]["Conflict"];
            413: components["responses"]["TooLarge"];
            415: components["responses"]["UnsupportedMediaType"];
            429: components["responses"]["TooManyRequests"];
            503: components["responses"]["Unavailable"];
        };
    };
    getWebhookStatus: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                id: components["parameters"]["WebhookId"];
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The webhook's delivery status. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["WebhookStatus"];
                };
            };
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            404: components["responses"]["NotFound"];
            429: components["responses"]["TooManyRequests"];
            503: components["responses"]["Unavailable"];
        };
    };
    getWebhook: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                id: components["parameters"]["WebhookId"];
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The webhook, its resolved settings and every recorded attempt, oldest first. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Webhook"];
                };
            };
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            404: components["responses"]["NotFound"];
            429: components["responses"]["TooManyRequests"];
            503: components["responses"]["Unavailable"];
        };
    };
    getEndpointSecret: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                id: components["parameters"]["EndpointId"];
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The signing secret. */
            200: {
                headers: {
                    "Cache-Control"?: "no-store";
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["EndpointSecret"];
                };
            };
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            404: components["responses"]["NotFound"];
            409: components["responses"]["Conflict"];
            429: components["responses"]["TooManyRequests"];
            503: components["responses"]["Unavailable"];
        };
    };
    listWebhooks: {
        parameters: {
            query?: {
                /** @description Items per page. */
                limit?: components["parameters"]["Limit"];
                /** @description The `nextCursor` of the previous page; opaque and tamper-evident. */
                cursor?: components["parameters"]["Cursor"];
                status?: components["schemas"]["Status"];
                endpointId?: string;
                createdAfter?: string;
                createdBefore?: string;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description A page of webhooks. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["WebhookList"];
                };
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            429: components["responses"]["TooManyRequests"];
            503: components["responses"]["Unavailable"];
        };
    };
    listEndpoints: {
        parameters: {
            query?: {
                /** @description Items per page. */
                limit?: components["parameters"]["Limit"];
                /** @description The `nextCursor` of the previous page; opaque and tamper-evident. */
                cursor?: components["parameters"]["Cursor"];
                enabled?: boolean;
                /** @description Substring of the URL, case-insensitive. */
                url?: string;
                /** @description The circuit state of the endpoint's health. */
                healthState?: "closed" | "open" | "half_open";
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description A page of endpoints (deleted ones are left out). */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["EndpointList"];
                };
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            429: components["responses"]["TooManyRequests"];
            503: components["responses"]["Unavailable"];
        };
    };
    createEndpoint: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["EndpointCreate"];
            };
        };
        responses: {
            /** @description Created, with its first signing key. */
            201: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Endpoint"];
                };
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            409: components["responses"]["Conflict"];
            413: components["responses"]["TooLarge"];
            415: components["responses"]["UnsupportedMediaType"];
            429: components["responses"]["TooManyRequests"];
            503: components["responses"]["Unavailable"];
        };
    };
    getEndpoint: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                id: components["parameters"]["EndpointId"];
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The endpoint. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Endpoint"];
                };
            };
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            404: components["responses"]["NotFound"];
            429: components["responses"]["TooManyRequests"];
            503: components["responses"]["Unavailable"];
        };
    };
    deleteEndpoint: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                id: components["parameters"]["EndpointId"];
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The deleted endpoint. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Endpoint"];
                };
            };
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            404: components["responses"]["NotFound"];
            429: components["responses"]["TooManyRequests"];
            503: components["responses"]["Unavailable"];
        };
    };
    updateEndpoint: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                id: components["parameters"]["EndpointId"];
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["EndpointUpdate"];
            };
        };
        responses: {
            /** @description The changed endpoint. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Endpoint"];
                };
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            404: components["responses"]["NotFound"];
            409: components["responses"]["Conflict"];
            413: components["responses"]["TooLarge"];
            415: components["responses"]["UnsupportedMediaType"];
            429: components["responses"]["TooManyRequests"];
            503: components["responses"]["Unavailable"];
        };
    };
    rotateEndpointSecret: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                id: components["parameters"]["EndpointId"];
            };
            cookie?: never;
        };
        requestBody?: {
            content: {
                "application/json": components["schemas"]["RotateRequest"];
            };
        };
        responses: {
            /** @description Rotated. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Rotation"];
                };
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            404: components["responses"]["NotFound"];
            409: components["responses"]["Conflict"];
            413: components["responses"]["TooLarge"];
            415: components["responses"]["UnsupportedMediaType"];
            429: components["responses"]["TooManyRequests"];
            503: components["responses"]["Unavailable"];
        };
    };
    getEndpointPublicKey: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                id: components["parameters"]["EndpointId"];
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The current public key. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["EndpointPublicKey"];
                };
            };
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            404: components["responses"]["NotFound"];
            409: components["responses"]["Conflict"];
            429: components["responses"]["TooManyRequests"];
            503: components["responses"]["Unavailable"];
        };
    };
    verifySignature: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["VerifyRequest"];
            };
        };
        responses: {
            /** @description The verdict (also when the signature is not valid). */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["VerifyResult"];
                };
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            404: components["responses"]["NotFound"];
            413: components["responses"]["TooLarge"];
            415: components["responses"]["UnsupportedMediaType"];
            429: components["responses"]["TooManyRequests"];
            503: components["responses"]["Unavailable"];
        };
    };
    retryWebhooks: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["RetryFilter"];
            };
        };
        responses: {
            /** @description How many webhooks were re-queued. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["RequeueCount"];
                };
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            413: components["responses"]["TooLarge"];
            415: components["responses"]["UnsupportedMediaType"];
            429: components["responses"]["TooManyRequests"];
            503: components["responses"]["Unavailable"];
        };
    };
    retryWebhook: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                id: components["parameters"]["WebhookId"];
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Re-queued. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["RetriedWebhook"];
                };
            };
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            404: components["responses"]["NotFound"];
            409: components["responses"]["Conflict"];
            429: components["responses"]["TooManyRequests"];
            503: components["responses"]["Unavailable"];
        };
    };
    getEndpointHealth: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                id: components["parameters"]["EndpointId"];
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The endpoint's health. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["EndpointHealth"];
                };
            };
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            404: components["responses"]["NotFound"];
            429: components["responses"]["TooManyRequests"];
            503: components["responses"]["Unavailable"];
        };
    };
    listDeadLetters: {
        parameters: {
            query?: {
                /** @description Items per page. */
                limit?: components["parameters"]["Limit"];
                /** @description The `nextCursor` of the previous page; opaque and tamper-evident. */
                cursor?: components["parameters"]["Cursor"];
                endpointId?: string;
                reason?: components["schemas"]["DeadLetterReason"];
                deadAfter?: string;
                deadBefore?: string;
                /** @description Only replayed (true) or only not yet replayed (false) dead letters. */
                replayed?: boolean;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description A page of dead letters. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["DeadLetterList"];
                };
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            429: components["responses"]["TooManyRequests"];
            503: components["responses"]["Unavailable"];
        };
    };
    replayDeadLetter: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Replayed. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Replayed"];
                };
            };
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            404: components["responses"]["NotFound"];
            409: components["responses"]["Conflict"];
            429: components["responses"]["TooManyRequests"];
            503: components["responses"]["Unavailable"];
        };
    };
    replayDeadLetters: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["DeadLetterFilter"];
            };
        };
        responses: {
            /** @description How many were replayed. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["RequeueCount"];
                };
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            413: components["responses"]["TooLarge"];
            415: components["responses"]["UnsupportedMediaType"];
            429: components["responses"]["TooManyRequests"];
            503: components["responses"]["Unavailable"];
        };
    };
    listApiTokens: {
        parameters: {
            query?: {
                /** @description Items per page. */
                limit?: components["parameters"]["Limit"];
                /** @description The `nextCursor` of the previous page; opaque and tamper-evident. */
                cursor?: components["parameters"]["Cursor"];
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description A page of tokens. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["TokenList"];
                };
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            429: components["responses"]["TooManyRequests"];
            503: components["responses"]["Unavailable"];
        };
    };
    createApiToken: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["TokenCreate"];
            };
        };
        responses: {
            /** @description Created; `token` is shown only this once. */
            201: {
                headers: {
                    "Cache-Control"?: "no-store";
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["TokenCreated"];
                };
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            413: components["responses"]["TooLarge"];
            415: components["responses"]["UnsupportedMediaType"];
            429: components["responses"]["TooManyRequests"];
            503: components["responses"]["Unavailable"];
        };
    };
    revokeApiToken: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The revoked token's record. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Token"];
                };
            };
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            404: components["responses"]["NotFound"];
            429: components["responses"]["TooManyRequests"];
            503: components["responses"]["Unavailable"];
        };
    };
    getStats: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The figures, as of `generatedAt`. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Stats"];
                };
            };
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            429: components["responses"]["TooManyRequests"];
            503: components["responses"]["Unavailable"];
        };
    };
    getMetrics: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The metrics. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "text/plain; version=0.0.4": string;
                };
            };
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            429: components["responses"]["TooManyRequests"];
            503: components["responses"]["Unavailable"];
        };
    };
    getHealthz: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The process is alive. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Health"];
                };
            };
        };
    };
    getReadyz: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Ready. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Health"];
                };
            };
            /** @description Not ready; `checks` says which part failed. */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Health"];
                };
            };
        };
    };
}
