import { z } from 'zod';
import { AppError, errorCodes, type ErrorCode } from '@switchyard/platform';

const codeNames = Object.keys(errorCodes) as [ErrorCode, ...ErrorCode[]];

/** The body of an error reply on NATS: AppError.toJSON() on the wire. */
export const errorEnvelopeSchema = z.object({
  code: z.enum(codeNames),
  message: z.string(),
  details: z.record(z.string(), z.unknown()).default({}),
  retryable: z.boolean(),
});

export type ErrorEnvelope = z.infer<typeof errorEnvelopeSchema>;

/** Numeric status for an error code (the value in `Nats-Service-Error-Code`). */
export const statusOfCode = (code: ErrorCode): number => errorCodes[code];

/**
 * Error code for a numeric status from a service error header. Unknown 4xx
 * become `validation`, unknown 5xx (and anything else) `internal`, so a
 * foreign service that uses a status we do not know still maps somewhere sane.
 */
export function codeOfStatus(status: number): ErrorCode {
  for (const [code, s] of Object.entries(errorCodes)) if (s === status) return code as ErrorCode;
  if (status >= 400 && status < 500) return 'validation';
  return 'internal';
}

/** The envelope of any thrown value; non-AppErrors become `internal` without leaking their message. */
export function toErrorEnvelope(err: unknown): ErrorEnvelope {
  if (err instanceof AppError) return err.toJSON();
  return { code: 'internal', message: 'internal error', details: {}, retryable: false };
}

/** Rebuild the AppError from an envelope, keeping the sender's retryable verdict. */
export const fromErrorEnvelope = (e: ErrorEnvelope): AppError =>
  new AppError(e.code, e.message, e.details, e.retryable);
