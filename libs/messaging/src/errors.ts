import {
  ClosedConnectionError,
  ConnectionError,
  DrainingConnectionError,
  NoRespondersError,
  RequestError,
  TimeoutError,
  type Msg,
} from '@nats-io/nats-core';
import {
  codeOfStatus,
  errorEnvelopeSchema,
  fromErrorEnvelope,
  headerNames,
  type ErrorEnvelope,
} from '@switchyard/contracts';
import { AppError, errorCodes, isPassingDatabaseFailure, type ErrorCode } from '@switchyard/platform';

const decoder = new TextDecoder();

/**
 * The error codec for NATS replies. On the wire an error reply carries
 * `Nats-Service-Error-Code: <status>` and `Nats-Service-Error: <message>` (the
 * NATS services convention, so generic NATS tooling understands it) and the
 * error envelope as JSON body (so our callers get code, details and retryable back).
 */

/** Any thrown value as an AppError: AppErrors as they are, errors with a known `code` (e.g. WrongExpectedVersionError) keep it, the rest become `internal`. */
export function asAppError(err: unknown): AppError {
  if (err instanceof AppError) return err;
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'string' && code in errorCodes) {
      return new AppError(code as ErrorCode, err.message, { name: err.name });
    }
  }
  // A connection that failed (PostgreSQL restarting, a session terminated) or a database out of
  // disk or memory: another attempt may work, so the caller may retry; not an internal error that
  // fails a workflow step for good.
  if (isPassingDatabaseFailure(err)) {
    return new AppError(
      'unavailable',
      `a dependency is unavailable: ${(err as Error).message ?? String(err)}`,
      { cause: (err as { code?: unknown }).code ?? null },
      true,
    );
  }
  return new AppError('internal', 'internal error');
}

/** Header values cannot contain line breaks (they would end the header block). */
export const headerSafe = (s: string): string => s.replace(/[\r\n]+/g, ' ').slice(0, 512);

/** True when a reply is an error reply under the services convention. */
export const isServiceErrorReply = (msg: Msg): boolean => !!msg.headers?.get(headerNames.serviceErrorCode);

/**
 * Decode an error reply into an AppError. Prefers the JSON envelope in the body;
 * a reply from a foreign service that only set the headers maps by status.
 */
export function decodeServiceError(msg: Msg, subject: string): AppError {
  const status = Number(msg.headers?.get(headerNames.serviceErrorCode));
  const description = msg.headers?.get(headerNames.serviceError) ?? '';
  let envelope: ErrorEnvelope | undefined;
  if (msg.data.length > 0) {
    try {
      const parsed = errorEnvelopeSchema.safeParse(JSON.parse(decoder.decode(msg.data)));
      if (parsed.success) envelope = parsed.data;
    } catch {
      // not JSON: fall back to the headers
    }
  }
  if (envelope) return fromErrorEnvelope({ ...envelope, details: { ...envelope.details, subject } });
  return new AppError(codeOfStatus(Number.isFinite(status) ? status : 500), description || 'service error', {
    subject,
    status,
  });
}

/** Map a failure of nc.request() (not an error reply) to an AppError. */
export function requestFailure(err: unknown, subject: string, timeoutMs: number): AppError {
  const chain: unknown[] = [];
  for (let e: unknown = err, i = 0; e && i < 5; e = (e as { cause?: unknown }).cause, i++) chain.push(e);
  if (chain.some((e) => e instanceof NoRespondersError || (e instanceof RequestError && e.isNoResponders()))) {
    return new AppError('unavailable', `no service is listening on ${subject}`, { subject });
  }
  if (chain.some((e) => e instanceof TimeoutError)) {
    return new AppError('timeout', `no reply on ${subject} within ${timeoutMs} ms`, { subject, timeoutMs });
  }
  if (
    chain.some(
      (e) => e instanceof ClosedConnectionError || e instanceof DrainingConnectionError || e instanceof ConnectionError,
    )
  ) {
    return new AppError('unavailable', `NATS connection unusable for ${subject}`, { subject, cause: String(err) });
  }
  if (err instanceof RequestError) {
    // e.g. "connection disconnected": the broker is away, a retry may help.
    return new AppError('unavailable', `request on ${subject} failed: ${err.message}`, { subject });
  }
  return new AppError('internal', `request on ${subject} failed`, { subject, cause: String(err) });
}
