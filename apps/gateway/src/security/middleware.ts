import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import { AppError, type Logger } from '@switchyard/platform';
import { bindRequestKey, correlationIdOf, type GatewayRequest } from '../http/context.js';
import { sendProblem } from '../http/problem-filter.js';
import type { ApiKeyService } from './api-keys.js';
import { parseKey, presentedKey } from './keys.js';
import type { Limit, ResolvedSecurityOptions } from './options.js';

/** Set on a request whose presented key was wrong, unknown or revoked (the guard answers 401). */
export const AUTH_FAILED = Symbol.for('switchyard.gateway.authFailed');
export type AuthRequest = GatewayRequest & { [AUTH_FAILED]?: boolean };

const clientIp = (req: Request): string => req.ip ?? req.socket.remoteAddress ?? 'unknown';

/**
 * Probes of load balancers and orchestrators: never limited nor authenticated, so a client
 * misbehaving from a shared address (a NAT, the balancer itself) cannot take the instance
 * out of rotation.
 */
const UNLIMITED_PATHS = new Set(['/livez', '/readyz']);

/**
 * Which bucket a bad key's failure counts in: the key id of a well-formed key, one shared
 * bucket for anything else. Only the guesser of that key (from that address) is slowed.
 */
export function failureBucket(ip: string, presented: string): string {
  return `${ip}|${parseKey(presented)?.id ?? 'malformed'}`;
}

function tooMany(req: Request, res: Response, what: string, msBeforeNext: number): void {
  const retryAfter = Math.max(1, Math.ceil(msBeforeNext / 1000));
  res.setHeader('Retry-After', String(retryAfter));
  sendProblem(new AppError('rate_limited', `too many requests ${what}; retry in ${retryAfter} s`, { retryAfterSeconds: retryAfter }, true), req, res);
}

/**
 * Rate limits kept in this process's memory (rate-limiter-flexible). Memory is enough
 * here: the limits protect one gateway from a runaway or guessing client, they are not
 * quotas to bill. With N gateway instances a client gets up to N times the limit, which
 * the defaults allow for; and no store round trip is added to every request. For exact
 * cluster-wide limits swap in RateLimiterPostgres (same interface).
 */
export class RateLimits {
  private readonly perIp: RateLimiterMemory;
  private readonly perKey: RateLimiterMemory;
  private readonly authFailures: RateLimiterMemory;

  constructor(o: ResolvedSecurityOptions['rateLimit']) {
    const make = (l: Limit, keyPrefix: string) => new RateLimiterMemory({ points: l.points, duration: l.durationSec, keyPrefix });
    this.perIp = make(o.perIp, 'ip');
    this.perKey = make(o.perKey, 'key');
    this.authFailures = make(o.authFailuresPerIp, 'authfail');
  }

  /** undefined when allowed, else ms until the next request is. */
  private static async take(limiter: RateLimiterMemory, key: string): Promise<number | undefined> {
    try {
      await limiter.consume(key);
      return undefined;
    } catch (e) {
      if (e instanceof RateLimiterRes) return e.msBeforeNext;
      throw e;
    }
  }

  ip(ip: string) {
    return RateLimits.take(this.perIp, ip);
  }
  key(id: string) {
    return RateLimits.take(this.perKey, id);
  }
  /**
   * Count a bad key against its bucket (address and key id, see failureBucket). Only
   * further bad keys of that bucket are refused: valid keys from the same address and the
   * health probes are never blocked by someone else's guessing.
   */
  failedAuth(bucket: string) {
    return RateLimits.take(this.authFailures, bucket);
  }
}

/**
 * Per-request timeout: when no answer started within `ms`, answer 504 problem+json
 * (code `timeout`, retryable). A stream that already sent its headers (SSE) is not cut.
 * The handler is not cancelled (Node cannot stop it); its late answer is dropped.
 */
export function timeoutMiddleware(ms: number): RequestHandler {
  return (req, res, next) => {
    if (ms <= 0) return next();
    const timer = setTimeout(() => {
      if (res.headersSent) return;
      sendProblem(new AppError('timeout', `no answer within ${ms} ms`, { timeoutMs: ms }), req, res);
    }, ms);
    timer.unref();
    const clear = () => clearTimeout(timer);
    res.once('finish', clear);
    res.once('close', clear);
    next();
  };
}

/**
 * Resolve the caller, before the body is parsed:
 * 0. `/livez` and `/readyz` pass untouched (no limit, no key);
 * 1. per-IP limit (every request);
 * 2. the presented key (Authorization: Bearer, or x-api-key) is checked; a bad one is
 *    marked for the guard (401 on any non-public route) and counted against its address
 *    and key id; past the limit, that bucket's bad keys answer 429;
 * 3. per-key limit for a good key; the key goes into the request context (currentActor()).
 * Only active when auth is enabled; rate limits only when enabled.
 */
export function authenticationMiddleware(options: ResolvedSecurityOptions, keys: ApiKeyService, logger: Logger): RequestHandler {
  const limits = options.rateLimit.enabled ? new RateLimits(options.rateLimit) : undefined;
  if (!limits && !options.auth.enabled) return (_req, _res, next) => next(); // nothing to do: no cost per request
  return (req: Request, res: Response, next: NextFunction) => {
    if (UNLIMITED_PATHS.has(req.path)) return next();
    void (async () => {
      const ip = clientIp(req);
      if (limits) {
        const wait = await limits.ip(ip);
        if (wait !== undefined) return tooMany(req, res, 'from this address', wait);
      }
      if (!options.auth.enabled) return next();
      const presented = presentedKey(req.headers);
      if (presented === undefined) return bindRequestKey(req, undefined, next);
      const key = await keys.authenticate(presented);
      if (!key) {
        (req as AuthRequest)[AUTH_FAILED] = true;
        logger.warn({ correlationId: correlationIdOf(req), ip }, 'request with an invalid API key');
        if (limits) {
          const wait = await limits.failedAuth(failureBucket(ip, presented));
          if (wait !== undefined) return tooMany(req, res, 'with this invalid API key from this address', wait);
        }
        return bindRequestKey(req, undefined, next);
      }
      if (limits) {
        const wait = await limits.key(key.id);
        if (wait !== undefined) return tooMany(req, res, 'for this API key', wait);
      }
      bindRequestKey(req, key, next);
    })().catch((err: unknown) => {
      // The key table unreachable: 503, not a silent pass.
      logger.error({ correlationId: correlationIdOf(req), err }, 'authentication failed to run');
      sendProblem(new AppError('unavailable', 'authentication is unavailable'), req, res);
    });
  };
}
