/**
 * Typed application errors. The `code` travels unchanged from where the error
 * arises (decider, store, NATS service) to the HTTP edge, which maps it to a
 * status. `retryable` says up front whether trying again can help.
 */
export const errorCodes = {
  validation: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  illegal_state: 409,
  /** The work was stopped on request (a workflow canceled while its step ran). */
  canceled: 409,
  conflict: 412,
  payload_too_large: 413,
  /** An answer (a tool result) larger than what can travel back (the NATS payload limit). */
  result_too_large: 413,
  /** A tool ran and reported failure (MCP `isError`): the request was understood, the tool refused it. */
  tool_error: 422,
  rate_limited: 429,
  internal: 500,
  unavailable: 503,
  timeout: 504,
} as const;

export type ErrorCode = keyof typeof errorCodes;

export class AppError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details: Record<string, unknown> = {},
    readonly retryable = code === 'unavailable' || code === 'timeout' || code === 'conflict',
  ) {
    super(message);
    this.name = 'AppError';
  }

  get status(): number {
    return errorCodes[this.code];
  }

  toJSON(): { code: ErrorCode; message: string; details: Record<string, unknown>; retryable: boolean } {
    return { code: this.code, message: this.message, details: this.details, retryable: this.retryable };
  }
}

export const isAppError = (e: unknown): e is AppError => e instanceof AppError;

/** Whether a code sent by another process (an agent's error, a stored task error) is one of ours. */
export const isErrorCode = (c: string): c is ErrorCode => Object.hasOwn(errorCodes, c);
