import { AppError, checkHostAndOrigin, type EdgePolicy, type Logger } from '@switchyard/platform';
import { correlationIdOf } from '../http/context.js';
import type { EdgeReply, EdgeRequest } from '../http/edge.js';
import { sendProblem } from '../http/problem-filter.js';

/**
 * DNS-rebinding and cross-origin protection of the gateway: a request whose `Host` is not
 * loopback with the listening port (or in ALLOWED_HOSTS), or whose `Origin` is present and
 * not loopback with the listening port (or in ALLOWED_ORIGINS), gets 403 problem+json before
 * any other work (API keys are not even looked at). Requests without Origin (curl, SDKs) pass.
 * Returns whether the request may go on (false: the 403 was sent).
 */
export function hostOriginCheck(policy: EdgePolicy, logger: Logger): (req: EdgeRequest, res: EdgeReply) => boolean {
  return (req, res) => {
    const verdict = checkHostAndOrigin(req.headers, req.raw.socket.localPort, policy);
    if (verdict.ok) return true;
    logger.warn({ correlationId: correlationIdOf(req), ip: req.raw.socket.remoteAddress, reason: verdict.reason }, 'request refused: foreign Host or Origin');
    sendProblem(new AppError('forbidden', verdict.reason), req, res);
    return false;
  };
}
