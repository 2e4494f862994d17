import type { Duplex } from 'node:stream';
import { newId, type Logger } from '@switchyard/platform';
import { PROBLEM_CONTENT_TYPE, problemType } from '../http/problem.js';

const answers: Record<string, { status: number; reason: string; code: string; detail: string }> = {
  HPE_HEADER_OVERFLOW: {
    status: 431,
    reason: 'Request Header Fields Too Large',
    code: 'headers_too_large',
    detail: 'the request line or headers are too large',
  },
  ERR_HTTP_REQUEST_TIMEOUT: {
    status: 408,
    reason: 'Request Timeout',
    code: 'timeout',
    detail: 'the request did not arrive in time',
  },
};
const malformed = { status: 400, reason: 'Bad Request', code: 'validation', detail: 'the request is not valid HTTP' };

/**
 * Requests Node's HTTP parser rejects (headers over 16 KiB, a broken request line)
 * never reach the router; answer them with problem+json rather than a bare status, so a
 * client sees one error format whatever it sent. The server's `clientError` handler
 * (Fastify's `clientErrorHandler` option).
 */
export function clientErrorsAsProblems(logger: Logger): (err: NodeJS.ErrnoException, socket: Duplex) => void {
  return (err: NodeJS.ErrnoException, socket: Duplex) => {
    // An answer already on its way (a 504 for a body still trickling in when the receive timeout
    // came): a second status line on the same connection is no answer; the connection just ends.
    const answering = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } | null })._httpMessage;
    if (err.code === 'ECONNRESET' || !socket.writable || answering?.headersSent === true) {
      socket.destroy();
      return;
    }
    const a = (err.code && answers[err.code]) || malformed;
    const correlationId = newId();
    logger.warn({ correlationId, code: err.code, status: a.status }, 'unparseable request');
    const body = JSON.stringify({
      type: problemType(a.code),
      title: a.reason,
      status: a.status,
      detail: a.detail,
      instance: '/',
      code: a.code,
      correlationId,
    });
    socket.end(
      `HTTP/1.1 ${a.status} ${a.reason}\r\nContent-Type: ${PROBLEM_CONTENT_TYPE}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
        `x-correlation-id: ${correlationId}\r\nConnection: close\r\n\r\n${body}`,
    );
  };
}
