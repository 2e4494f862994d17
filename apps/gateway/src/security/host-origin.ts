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
  // The verdict is a function of (local port, Host, Origin) alone: the few combinations that
  // passed are remembered, so a client's every request does not parse them again. Refusals are
  // not kept (attacker input), and the memory is bounded. '\n' cannot occur in a header value.
  const passed = new Set<string>();
  return (req, res) => {
    const headers = req.headers;
    const localPort = req.raw.socket.localPort;
    const key =
      headers.host === undefined
        ? undefined
        : headers.origin === undefined
          ? `${localPort}\n${headers.host}`
          : `${localPort}\n${headers.host}\n${headers.origin}`;
    if (key !== undefined && passed.has(key)) return true;
    const verdict = checkHostAndOrigin(headers, localPort, policy);
    if (verdict.ok) {
      if (key !== undefined && passed.size < 256) passed.add(key);
      return true;
    }
    logger.warn(
      { correlationId: correlationIdOf(req), ip: req.raw.socket.remoteAddress, reason: verdict.reason },
      'request refused: foreign Host or Origin',
    );
    sendProblem(new AppError('forbidden', verdict.reason), req, res);
    return false;
  };
}
