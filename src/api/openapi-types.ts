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
         * @description Receivers use it to verify the `webhook-signature` header (Standard Webhooks).
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
        DeliverRequest: {
            /**
             * Format: uri
             * @description Where to POST the payload (http or https).
             * @example https://customer.example.com/webhook
             */
            url: string;
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
         *     Omitted fields take the server defaults (HOOKRELAY_RETRY_*: 30 attempts, 5000 ms,
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
         *     scheduled; `delivered`: a 2xx answer was received; `dead`: attempts are exhausted.
         * @enum {string}
         */
        Status: "pending" | "retrying" | "delivered" | "dead";
        DeliverAccepted: {
            /** @example msg_01JF3Y8Q6ZV7W3K2T9H4N5B6C7 */
            id: string;
            /** @example ep_01JF3Y8Q6ZV7W3K2T9H4N5B6C8 */
            endpointId: string;
            /** @enum {string} */
            status: "pending";
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
            /** @description The last attempt's error */
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
            /** @description timeout, connection_refused, connection_reset, dns, tls, http_status, redirect, invalid_response or network. */
            errorClass: string | null;
            error: string | null;
            /** @description At most the first 1 KiB of the response body. */
            responseBody: string | null;
        };
        EndpointSecret: {
            /** @description `whsec_` followed by the base64 of 32 random bytes; the HMAC key is the decoded bytes. */
            secret: string;
        };
        Health: {
            /** @enum {string} */
            status: "ok" | "unavailable";
            checks?: {
                [key: string]: string;
            };
        };
        FieldError: {
            /** @description Dotted path of the field at fault */
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
    };
    responses: {
        /** @description The request is malformed or a field is invalid; nothing was stored. */
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
        /** @description No such resource. */
        NotFound: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/problem+json": components["schemas"]["Problem"];
            };
        };
        /** @description The Idempotency-Key was used before with a different body. */
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
    };
    parameters: {
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
            409: components["responses"]["Conflict"];
            413: components["responses"]["TooLarge"];
            415: components["responses"]["UnsupportedMediaType"];
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
            404: components["responses"]["NotFound"];
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
            404: components["responses"]["NotFound"];
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
            404: components["responses"]["NotFound"];
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
