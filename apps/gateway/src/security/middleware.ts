import { AppError, logAtMostEvery, type Logger } from '@switchyard/platform';
import { bindRequestKey, correlationIdOf, type GatewayRequest } from '../http/context.js';
import type { EdgeReply, EdgeRequest } from '../http/edge.js';
import type { Exchange } from '../http/exchange.js';
import { sendProblem } from '../http/problem-filter.js';
import type { ApiKeyService } from './api-keys.js';
import { parseKey, presentedKey } from './keys.js';
import type { ResolvedSecurityOptions } from './options.js';
import { RateLimits, type LimitOutcome } from './rate-limits.js';

export { RateLimits } from './rate-limits.js';

/** Set on a request whose presented key was wrong, unknown or revoked (the guard answers 401). */
export const AUTH_FAILED = Symbol.for('switchyard.gateway.authFailed');
export type AuthRequest = GatewayRequest & { [AUTH_FAILED]?: boolean };

const clientIp = (req: EdgeRequest): string => req.ip ?? req.raw.socket.remoteAddress ?? 'unknown';

/** A step of the edge: answers the request itself, or calls `next`. */
export type EdgeStep = (req: EdgeRequest, res: EdgeReply, next: () => void) => void;

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

/**
 * RateLimit-Limit / -Remaining / -Reset (the IETF RateLimit header fields, draft 6 names) of the
 * tightest limit this request was counted against; on a refusal, of the refusing one.
 */
function rateLimitHeaders(res: EdgeReply, outcomes: readonly LimitOutcome[]): void {
  const tightest = outcomes.reduce<LimitOutcome | undefined>(
    (a, o) => (!a || o.remaining < a.remaining ? o : a),
    undefined,
  );
  if (!tightest || res.headersSent) return;
  res.setHeader('RateLimit-Limit', String(tightest.limit));
  res.setHeader('RateLimit-Remaining', String(Math.max(0, tightest.remaining)));
  res.setHeader('RateLimit-Reset', String(Math.max(0, Math.ceil(tightest.msBeforeNext / 1000))));
}

/** Per request with a key under a rate limit: charge its key more (see chargeKeyMore). */
const extraCosts = new WeakMap<object, (points: number) => Promise<LimitOutcome>>();

/**
 * Count `points` more against the key of `req`, for a request that carries more than one call (a
 * JSON-RPC batch of 100 tool calls cost one point of the key's budget, so a key could make 100
 * times its limit). Undefined when no limit applies (none configured, or no key).
 */
export function chargeKeyMore(req: object, points: number): Promise<LimitOutcome> | undefined {
  return points > 0 ? extraCosts.get(req)?.(points) : undefined;
}

function tooMany(req: EdgeRequest, res: EdgeReply, what: string, refused: LimitOutcome): void {
  const retryAfter = Math.max(1, Math.ceil(refused.msBeforeNext / 1000));
  rateLimitHeaders(res, [refused]);
  res.setHeader('Retry-After', String(retryAfter));
  sendProblem(
    new AppError(
      'rate_limited',
      `too many requests ${what}; retry in ${retryAfter} s`,
      { retryAfterSeconds: retryAfter },
      true,
    ),
    req,
    res,
  );
}

/**
 * Per-request timeout: when no answer started within `ms`, answer 504 problem+json
 * (code `timeout`, retryable). A stream that already sent its headers (SSE) is not cut.
 * The handler is not cancelled (Node cannot stop it); its late answer is dropped.
 * Every request of a gateway has the same timeout, so the waiting requests form a queue in
 * deadline order: one timer for the whole queue (armed for its head), O(1) to join and to leave
 * when the answer ends, instead of a timer made and cleared per request.
 */
export class RequestTimeouts {
  private head: Exchange | undefined;
  private tail: Exchange | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly ms: number) {}

  /** Start the request's clock (its exchange began at the first hook). */
  start(x: Exchange): void {
    if (this.ms <= 0) return;
    x.prev = this.tail;
    x.next = undefined;
    if (this.tail) this.tail.next = x;
    else this.head = x;
    this.tail = x;
    x.queued = true;
    if (!this.timer) this.arm(x.start + this.ms - performance.now());
  }

  /** The answer ended: the request leaves the queue (an Exchanges step). */
  readonly cancel = (x: Exchange): void => {
    if (x.queued) this.unlink(x);
  };

  private unlink(x: Exchange): void {
    if (x.prev) x.prev.next = x.next;
    else this.head = x.next;
    if (x.next) x.next.prev = x.prev;
    else this.tail = x.prev;
    x.prev = x.next = undefined;
    x.queued = false;
  }

  private arm(inMs: number): void {
    this.timer = setTimeout(this.expire, Math.max(1, Math.ceil(inMs)));
    this.timer.unref();
  }

  private readonly expire = (): void => {
    this.timer = undefined;
    const now = performance.now();
    try {
      while (this.head && this.head.start + this.ms <= now) {
        const x = this.head;
        this.unlink(x);
        const { req, res } = x;
        if (res.headersSent || res.sent) continue;
        sendProblem(new AppError('timeout', `no answer within ${this.ms} ms`, { timeoutMs: this.ms }), req, res);
      }
    } finally {
      // Also after a throw (it surfaces as before, uncaught): the rest of the queue keeps its clock.
      if (this.head && !this.timer) this.arm(this.head.start + this.ms - performance.now());
    }
  };
}

/** How often at most the gateway warns of requests with an invalid API key (`invalidKeys`: how many since the last line). */
const INVALID_KEY_LOG_INTERVAL_MS = 10_000;

/**
 * Resolve the caller, before the body is parsed:
 * 0. `/livez` and `/readyz` pass untouched (no limit, no key);
 * 1. per-IP limit (every request), asked together with the limit of a key verified a moment
 *    ago: one round trip;
 * 2. the presented key (Authorization: Bearer, or x-api-key) is checked; a bad one is
 *    marked for the guard (401 on any non-public route) and counted against its address
 *    and key id, and against its address across key ids (ten times that limit); past
 *    either, the bad keys answer 429;
 * 3. per-key limit for a good key; the key goes into the request context (currentActor()).
 * Only active when auth is enabled; rate limits only when enabled (`limits`: the gateway's
 * RateLimits, shared through PostgreSQL or in memory; made here, in memory, when not given).
 * Every limited answer carries RateLimit-Limit / -Remaining / -Reset; a 429 also Retry-After.
 */
export function authentication(
  options: ResolvedSecurityOptions,
  keys: ApiKeyService,
  logger: Logger,
  given?: RateLimits,
): EdgeStep {
  const limits = options.rateLimit.enabled
    ? (given ?? RateLimits.create({ ...options.rateLimit, store: 'memory' }, undefined, logger))
    : undefined;
  if (!limits && !options.auth.enabled) return (_req, _res, next) => next(); // nothing to do: no cost per request
  const invalidKeyLog = logAtMostEvery(INVALID_KEY_LOG_INTERVAL_MS);
  const authFailureLog = logAtMostEvery(10_000);
  return (req: EdgeRequest, res: EdgeReply, next: () => void) => {
    if (UNLIMITED_PATHS.has(req.path)) return next();
    if (!limits) {
      // The common case without limits: a key already verified answers without a promise.
      const presented = presentedKey(req.headers);
      const known = presented === undefined ? undefined : keys.authenticateCached(presented);
      if (presented === undefined) return bindRequestKey(req, undefined, next);
      if (known) return bindRequestKey(req, known, next);
    }
    void (async () => {
      const ip = clientIp(req);
      const counted: LimitOutcome[] = [];
      const presented = options.auth.enabled ? presentedKey(req.headers) : undefined;
      // For a key verified a moment ago, the address's limit and the key's are asked at once: one
      // round trip to the store before the request goes on, not two (a request the address's
      // limit refuses has then been counted against its key too). Any other key is looked up
      // only once the address's limit let the request through: an address past its limit
      // cannot make the gateway query the key table.
      const known = presented === undefined ? undefined : keys.authenticateCached(presented);
      const [byAddress, byKnownKey] = await Promise.all([
        limits?.ip(ip),
        known && limits ? limits.key(known.id) : undefined,
      ]);
      if (byAddress) {
        if (!byAddress.allowed) return tooMany(req, res, 'from this address', byAddress);
        counted.push(byAddress);
      }
      const key = known ?? (presented === undefined ? undefined : await keys.authenticate(presented));
      if (!options.auth.enabled) {
        rateLimitHeaders(res, counted);
        return next();
      }
      if (presented === undefined) {
        rateLimitHeaders(res, counted);
        return bindRequestKey(req, undefined, next);
      }
      if (!key) {
        (req as AuthRequest)[AUTH_FAILED] = true;
        if (limits) {
          const [o, fromAddress] = await Promise.all([
            limits.failedAuth(failureBucket(ip, presented)),
            limits.failedAuthFromAddress(ip),
          ]);
          if (!o.allowed) return tooMany(req, res, 'with this invalid API key from this address', o);
          if (!fromAddress.allowed) return tooMany(req, res, 'with invalid API keys from this address', fromAddress);
          counted.push(o, fromAddress);
        }
        // Past the limits (a 429 is its own answer, logged once as a request): one warning per
        // interval with how many, so a client guessing keys does not write a line per guess.
        invalidKeyLog((held) =>
          logger.warn(
            { correlationId: correlationIdOf(req), ip, invalidKeys: held + 1 },
            'request with an invalid API key',
          ),
        );
        rateLimitHeaders(res, counted);
        return bindRequestKey(req, undefined, next);
      }
      const byKey = byKnownKey ?? (limits ? await limits.key(key.id) : undefined);
      if (byKey) {
        if (!byKey.allowed) return tooMany(req, res, 'for this API key', byKey);
        counted.push(byKey);
      }
      rateLimitHeaders(res, counted);
      if (limits) {
        const charge = (points: number) => limits.keyCost(key.id, points);
        extraCosts.set(req, charge);
        extraCosts.set(req.raw, charge);
      }
      bindRequestKey(req, key, next);
    })().catch((err: unknown) => {
      // The key table unreachable: 503, not a silent pass. Logged once per 10 s: every request fails alike.
      authFailureLog((held) =>
        logger.error({ correlationId: correlationIdOf(req), err, heldBack: held }, 'authentication failed to run'),
      );
      sendProblem(new AppError('unavailable', 'authentication is unavailable'), req, res);
    });
  };
}
