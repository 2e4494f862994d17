import { z } from 'zod';

/**
 * Queued direct deliveries (`queue_webhook`): a POST to a URL given per call rather than to a
 * registered webhook, recorded durably before the call answers and then sent and retried by the
 * automation server (automation.scheduled_deliveries, channel = the format), in order within an
 * ordering key. The one format today is `a2a`: an A2A push notification, whose body and headers
 * are the A2A protocol's, not the signed `{ id, event, payload, timestamp }` envelope.
 */

/** Largest body a queued delivery may carry (its JSON text). */
export const QUEUED_BODY_MAX_BYTES = 512 * 1024;

/** An HTTP auth scheme is a token (RFC 9110); credentials must not be able to inject headers. */
const scheme = z
  .string()
  .regex(/^[A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]{0,49}$/, 'an HTTP auth scheme such as Bearer or Basic');
const headerValue = z
  .string()
  .max(4000)
  .regex(/^[^\r\n\0]*$/, 'no line breaks');

export const queueWebhookShape = {
  format: z
    .literal('a2a')
    .describe('a2a: an A2A push notification (the body as given, X-A2A-Notification-Token, Authorization)'),
  url: z
    .string()
    .url()
    .max(2000)
    .describe('http(s) URL of the receiver; checked by the egress guard now and at every send'),
  event: z
    .string()
    .min(1)
    .max(100)
    .regex(/^[A-Za-z0-9_.:-]+$/)
    .describe('what this is, for the records and logs (e.g. a2a.status-update)'),
  body: z.record(z.string(), z.unknown()).describe('the JSON body, POSTed as it is'),
  content_type: z.enum(['application/json', 'application/a2a+json']).default('application/json'),
  token: headerValue.min(1).optional().describe('sent as X-A2A-Notification-Token'),
  authentication: z
    .object({ scheme, credentials: headerValue })
    .optional()
    .describe('sent as Authorization: <scheme> <credentials>'),
  idempotency_key: z
    .string()
    .min(1)
    .max(200)
    .describe('the delivery id: a repeat with the key records and sends nothing more'),
  ordering_key: z
    .string()
    .min(1)
    .max(200)
    .optional()
    .describe('deliveries with the same key go out one at a time, in the order they were queued'),
};
export const queueWebhookSchema = z.object(queueWebhookShape);
export type QueueWebhookInput = z.infer<typeof queueWebhookSchema>;

/** What is stored as the row's payload (the body and what the headers are made of). */
export interface QueuedPayload {
  readonly body: Record<string, unknown>;
  readonly content_type: string;
  readonly token?: string;
  readonly authentication?: { readonly scheme: string; readonly credentials: string };
}

/** The A2A header that carries a push config's token (the receiver checks it). */
const A2A_NOTIFICATION_TOKEN_HEADER = 'x-a2a-notification-token';

/** Headers of one send of a queued delivery; every send of a key carries the same Idempotency-Key. */
export function queuedHeaders(deliveryId: string, p: QueuedPayload): Record<string, string> {
  return {
    'content-type': p.content_type,
    'idempotency-key': deliveryId,
    ...(p.token ? { [A2A_NOTIFICATION_TOKEN_HEADER]: p.token } : {}),
    ...(p.authentication ? { authorization: `${p.authentication.scheme} ${p.authentication.credentials}` } : {}),
  };
}

/** A queued delivery as `queue_webhook` and `list_queued_deliveries` show it (never the token or credentials). */
export interface QueuedDelivery {
  readonly delivery_id: string;
  readonly format: string;
  readonly url: string;
  readonly event: string;
  readonly ordering_key: string | null;
  /** `pending` until answered 2xx (`delivered`) or refused / out of attempts (`gave_up`). */
  readonly status: 'pending' | 'delivered' | 'gave_up';
  /** Rounds of sending so far (each round retries 5xx and network errors a few times itself). */
  readonly attempts: number;
  readonly response_status: number | null;
  readonly last_error: string | null;
  readonly next_attempt_at: string | null;
  readonly created_at: string;
  readonly finished_at: string | null;
  /** True when this call recorded nothing: the key was queued before. */
  readonly deduplicated?: boolean;
}

export const listQueuedShape = {
  ordering_key: z.string().min(1).max(200).optional(),
  status: z.enum(['pending', 'delivered', 'gave_up']).optional(),
  limit: z.number().int().min(1).max(500).default(100),
};
