import { headers as natsHeaders, type NatsConnection } from '@nats-io/nats-core';
import type { z } from 'zod';
import { headerNames } from '@switchyard/contracts';
import { AppError, newId } from '@switchyard/platform';
import { decodeServiceError, isServiceErrorReply, requestFailure } from './errors.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export interface RequestOptions<T> {
  /** Validates the reply body; the caller gets the parsed value. */
  readonly schema: z.ZodType<T>;
  /** Default 5000 ms. */
  readonly timeoutMs?: number;
  /** Extra headers. */
  readonly headers?: Readonly<Record<string, string>>;
  /** Carried in `Switchyard-Correlation-Id`; a new id when absent (a request is always traceable). */
  readonly correlationId?: string;
  readonly causationId?: string;
}

/**
 * Send a JSON request and wait for one reply.
 * Resolves with the reply parsed by `schema`. Rejects with an AppError:
 * - the service's own error (its code travels in `Nats-Service-Error-Code`; 404 -> not_found ...),
 * - `unavailable` when nobody listens on the subject or the connection is down,
 * - `timeout` when no reply came within `timeoutMs`,
 * - `internal` when the reply is not JSON or does not match `schema` (a contract bug, not retryable).
 */
export async function request<T>(
  nc: NatsConnection,
  subject: string,
  payload: unknown,
  opts: RequestOptions<T>,
): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? 5_000;
  const h = natsHeaders();
  for (const [k, v] of Object.entries(opts.headers ?? {})) h.set(k, v);
  h.set(headerNames.correlationId, opts.correlationId ?? newId());
  if (opts.causationId) h.set(headerNames.causationId, opts.causationId);

  const body = payload === undefined ? new Uint8Array(0) : encoder.encode(JSON.stringify(payload));
  let reply;
  try {
    reply = await nc.request(subject, body, { timeout: timeoutMs, headers: h });
  } catch (err) {
    throw requestFailure(err, subject, timeoutMs);
  }
  if (isServiceErrorReply(reply)) throw decodeServiceError(reply, subject);

  let json: unknown;
  try {
    json = reply.data.length === 0 ? undefined : JSON.parse(decoder.decode(reply.data));
  } catch {
    throw new AppError('internal', `reply on ${subject} is not JSON`, { subject }, false);
  }
  const parsed = opts.schema.safeParse(json);
  if (!parsed.success) {
    throw new AppError(
      'internal',
      `reply on ${subject} does not match its schema`,
      { subject, issues: parsed.error.issues },
      false,
    );
  }
  return parsed.data;
}
