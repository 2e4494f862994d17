import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { AppError, checkHostAndOrigin, type EdgePolicy, type Logger } from '@switchyard/platform';
import { correlationIdOf } from '../http/context.js';
import { sendProblem } from '../http/problem-filter.js';

/**
 * DNS-rebinding and cross-origin protection of the gateway: a request whose `Host` is not
 * loopback with the listening port (or in ALLOWED_HOSTS), or whose `Origin` is present and
 * not loopback with the listening port (or in ALLOWED_ORIGINS), gets 403 problem+json before
 * any other work (API keys are not even looked at). Requests without Origin (curl, SDKs) pass.
 */
export function hostOriginMiddleware(policy: EdgePolicy, logger: Logger): RequestHandler {
  return (req: Request, res: Response, next: NextFunction) => {
    const verdict = checkHostAndOrigin(req.headers, req.socket.localPort, policy);
    if (verdict.ok) return next();
    logger.warn({ correlationId: correlationIdOf(req), ip: req.socket.remoteAddress, reason: verdict.reason }, 'request refused: foreign Host or Origin');
    sendProblem(new AppError('forbidden', verdict.reason), req, res);
  };
}
