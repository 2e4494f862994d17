import { createHash } from 'node:crypto';
import 'reflect-metadata';
import {
  Inject,
  Injectable,
  SetMetadata,
  type CallHandler,
  type ExecutionContext,
  type NestInterceptor,
} from '@nestjs/common';
import type { EdgeReply as Response } from '../http/edge.js';
import { from, Observable, of, throwError } from 'rxjs';
import { catchError, finalize, mergeMap } from 'rxjs/operators';
import { AppError, logAtMostEvery, type Logger } from '@switchyard/platform';
import { correlationIdOf, type GatewayRequest } from '../http/context.js';
import { PROBLEM_CONTENT_TYPE, problemType, toProblem } from '../http/problem.js';
import { LOGGER } from '../tokens.js';
import {
  canonicalUrl,
  COMMAND_METHODS,
  IDEMPOTENCY_HEADER,
  parseIdempotencyKey,
  REPLAYED_HEADER,
  requestFingerprint,
} from './keys.js';
import { IdempotencyStore, NOT_KEPT_CONTENT_TYPE, type KeyedRequest, type StoredAnswer } from './store.js';

const SKIP_IDEMPOTENCY = 'switchyard:gateway:skip-idempotency';
/** Route decorator: this command route ignores Idempotency-Key (none does today). */
export const WithoutIdempotency = (): MethodDecorator => SetMetadata(SKIP_IDEMPOTENCY, true);

const REDACT_IN_REPLAY = 'switchyard:gateway:idempotency-redact';
/** What a replay shows in place of a field the first answer showed once (a secret is never stored). */
export const SHOWN_ONCE = '(shown once, in the first answer; not kept for replays)';
/**
 * Route decorator: these top-level fields of the answer are secrets shown once (a new API key):
 * the stored answer, and so a replay, carries SHOWN_ONCE in their place.
 */
export const RedactInReplay = (...fields: string[]): MethodDecorator => SetMetadata(REDACT_IN_REPLAY, fields);

const instanceOf = (req: GatewayRequest): string => (req.originalUrl ?? req.url ?? '/').split('?')[0] ?? '/';

/**
 * Idempotency-Key on every command route (POST, PUT, PATCH, DELETE), as payment APIs do it.
 * Runs after the role guard (a refused caller claims nothing) and around validation and the handler:
 * 1. a bad key (too long, outside the pattern, repeated header): 400;
 * 2. the key is claimed in PostgreSQL as the API key's own (each API key has its own keys: another
 *    API key's request with the same key is another request), for (method + path + query, body hash);
 * 3. the same request again: the first answer, same status and body, `Idempotent-Replayed: true`,
 *    and the handler does not run; still running: 409 (`Retry-After: 1`, no waiting);
 *    another route or body with that key: 422 naming the key;
 * 4. the handler's answer (2xx, or a 4xx problem other than 400) is stored before it is sent; a
 *    400 (the request was refused before anything ran: it may be fixed and sent again with the key)
 *    and a 5xx (including a 504 from a back end) free the key, so a retry runs again: the back ends
 *    that matter derive their ids from the key (task id, execution id), so that run finds the first one's work.
 * The answer stored is the handler's, even when the request timeout answered 504 first.
 */
@Injectable()
export class IdempotencyInterceptor implements NestInterceptor {
  private readonly log: Logger;
  private readonly claimFailureLog = logAtMostEvery(10_000);

  constructor(
    @Inject(IdempotencyStore) private readonly store: IdempotencyStore,
    @Inject(LOGGER) logger: Logger,
  ) {
    this.log = logger.child({ component: 'idempotency' });
  }

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    if (context.getType() !== 'http') return next.handle();
    const req = context.switchToHttp().getRequest<GatewayRequest>();
    const res = context.switchToHttp().getResponse<Response>();
    if (!COMMAND_METHODS.has(req.method) || Reflect.getMetadata(SKIP_IDEMPOTENCY, context.getHandler()) === true)
      return next.handle();
    const parsed = parseIdempotencyKey(req.headers);
    if (parsed.kind === 'none') return next.handle();
    if (parsed.kind === 'bad') {
      return throwError(
        () =>
          new AppError(
            'validation',
            parsed.reason,
            { errors: [{ path: IDEMPOTENCY_HEADER, message: parsed.reason, code: 'invalid_header', in: 'headers' }] },
            false,
          ),
      );
    }
    const key = parsed.key;
    const keyed = {
      key,
      owner: req.apiKey?.id ?? 'anonymous',
      method: req.method,
      path: keptPath(canonicalUrl(req.originalUrl ?? req.url)),
      fingerprint: requestFingerprint(req.method, req.originalUrl ?? req.url, req.body),
    };
    const correlationId = correlationIdOf(req);
    // The route's own status (its @HttpCode or the method's default), read before the claim: a
    // claim that waits on the database past the request timeout finds the 504 in its place.
    const routeStatus = res.statusCode;
    const claimed = this.store.claim(keyed).catch((err: unknown) => {
      // The key table unreachable: 503 (retryable), and the command does not run unprotected.
      // Once per 10 s: with the table unreachable every keyed command fails alike.
      this.claimFailureLog((held) =>
        this.log.error({ correlationId, err, heldBack: held }, 'claiming an idempotency key failed'),
      );
      throw new AppError('unavailable', 'idempotency keys are unavailable; retry with the same key', {
        idempotency_key: key,
      });
    });
    return from(claimed).pipe(
      mergeMap((claim): Observable<unknown> => {
        switch (claim.kind) {
          case 'replay':
            this.log.info({ correlationId, idempotencyKey: key, status: claim.answer.status }, 'idempotent replay');
            return of(this.replay(res, claim.answer));
          case 'in_flight':
            res.setHeader('Retry-After', '1');
            return throwError(
              () =>
                new AppError(
                  'illegal_state',
                  `a request with Idempotency-Key ${key} is still being handled; retry later`,
                  { idempotency_key: key, in_flight: true },
                  true,
                ),
            );
          case 'mismatch': {
            const why =
              claim.what === 'route'
                ? `was used for ${claim.first.method} ${claim.first.path}`
                : 'was used with another request body';
            const problem = {
              type: problemType('idempotency_key_reused'),
              title: 'Idempotency-Key reused',
              status: 422,
              detail: `Idempotency-Key ${key} ${why}; use a new key for a new request`,
              instance: instanceOf(req),
              code: 'idempotency_key_reused',
              correlationId,
              retryable: false,
              idempotency_key: key,
              mismatch: claim.what,
            };
            res.status(422).type(PROBLEM_CONTENT_TYPE);
            return of(JSON.stringify(problem));
          }
          case 'claimed':
            if (res.headersSent) {
              // The claim outlasted the request: the caller was told 504 (retryable) already.
              // Nobody waits for this run, and a key kept for it would replay a 504 with a
              // success body for a day: free the key, so a retry runs the request.
              this.log.warn(
                { correlationId, idempotencyKey: key },
                'idempotency key claimed after the request was answered; not run, key freed',
              );
              return from(
                this.store
                  .release({ key, owner: keyed.owner, token: claim.token })
                  .catch((err: unknown) =>
                    this.log.warn({ correlationId, idempotencyKey: key, err }, 'freeing an idempotency key failed'),
                  ),
              ).pipe(mergeMap(() => of(undefined)));
            }
            return this.run(
              next,
              req,
              res,
              keyed,
              claim.token,
              correlationId,
              (Reflect.getMetadata(REDACT_IN_REPLAY, context.getHandler()) as string[] | undefined) ?? [],
              routeStatus,
            );
        }
      }),
    );
  }

  private replay(res: Response, answer: StoredAnswer): string | undefined {
    res.setHeader(REPLAYED_HEADER, 'true');
    if (answer.contentType === NOT_KEPT_CONTENT_TYPE) {
      // Handled, but its answer was too large to keep: say so, not the first answer, and not again.
      res.status(409).type(PROBLEM_CONTENT_TYPE);
      return JSON.stringify({
        type: problemType('idempotent_answer_not_kept'),
        title: 'Answer not kept',
        status: 409,
        detail: `the request with this Idempotency-Key was handled (status ${answer.status}); its answer (${answer.body ?? '?'} bytes) was over what is kept for a replay (IDEMPOTENCY_MAX_ANSWER_BYTES, IDEMPOTENCY_KEY_BYTES_PER_HOUR): look up what it did (the event log, its execution or task) instead of sending it again`,
        code: 'idempotent_answer_not_kept',
        retryable: false,
        first_status: answer.status,
      });
    }
    res.status(answer.status);
    if (answer.contentType) res.type(answer.contentType);
    return answer.body ?? undefined;
  }

  /** Bytes of answers kept per API key in the current hour (this gateway's count). */
  private readonly keptBytes = new Map<string, { hour: number; bytes: number }>();

  /** The answer as it is kept: whole, or its status and size only past the bounds. */
  private toKeep({ key, path, owner }: KeyedRequest, answer: StoredAnswer): StoredAnswer {
    // The row's own text counts too: a padded query string made rows of 3.8 KB the body never showed.
    const rowBytes = Buffer.byteLength(key) + Buffer.byteLength(path) + 64;
    const bytes = answer.body === null ? 0 : Buffer.byteLength(answer.body);
    const hour = Math.floor(Date.now() / 3_600_000);
    let used = this.keptBytes.get(owner);
    if (!used || used.hour !== hour) {
      if (this.keptBytes.size >= 10_000) this.keptBytes.clear();
      used = { hour, bytes: 0 };
      this.keptBytes.set(owner, used);
    }
    const options = this.store.options;
    used.bytes += rowBytes;
    if (bytes <= options.maxAnswerBytes && used.bytes + bytes <= options.keyBytesPerHour) {
      used.bytes += bytes;
      return answer;
    }
    return { status: answer.status, contentType: NOT_KEPT_CONTENT_TYPE, body: String(bytes) };
  }

  /** Run the handler under the claim: renew the lease meanwhile, store (or free) the key before answering. */
  private run(
    next: CallHandler,
    req: GatewayRequest,
    res: Response,
    keyed: KeyedRequest,
    token: string,
    correlationId: string,
    redact: readonly string[],
    // The route's own status, read before the claim. When the request timeout has answered 504
    // while the handler ran, res.statusCode says 504, which is not what the handler answered.
    routeStatus: number,
  ): Observable<unknown> {
    const { key } = keyed;
    const held = { key, owner: keyed.owner, token };
    const renew = setInterval(
      () =>
        void this.store
          .renew(held)
          .catch((err) => this.log.warn({ correlationId, err }, 'renewing an idempotency lease failed')),
      Math.max(1_000, Math.floor(this.store.options.leaseMs / 3)),
    );
    renew.unref();
    const settle = async (answer: StoredAnswer | undefined) => {
      try {
        if (answer) await this.store.complete(held, this.toKeep(keyed, answer));
        else await this.store.release(held);
      } catch (err) {
        // The answer still goes out; the key stays in flight until its lease runs out.
        this.log.warn({ correlationId, idempotencyKey: key, err }, 'recording an idempotent answer failed');
      }
    };
    return next.handle().pipe(
      mergeMap(async (value: unknown) => {
        const kept =
          redact.length > 0 && value !== null && typeof value === 'object' && !Array.isArray(value)
            ? {
                ...(value as Record<string, unknown>),
                ...Object.fromEntries(redact.filter((f) => f in value).map((f) => [f, SHOWN_ONCE])),
              }
            : value;
        const body =
          kept === undefined || kept === null ? null : typeof kept === 'string' ? kept : JSON.stringify(kept);
        const contentType =
          typeof value === 'string' ? String(res.getHeader('content-type') ?? 'text/plain') : 'application/json';
        const status = res.headersSent && res.statusCode >= 500 ? routeStatus : res.statusCode;
        await settle({ status, contentType: body === null ? null : contentType, body });
        return value;
      }),
      catchError((err: unknown) =>
        from(
          (async () => {
            const { problem } = toProblem(err, { instance: instanceOf(req), correlationId });
            // Not kept: a 400 (nothing ran; the client may fix the request and send it with the
            // same key), a 5xx, and a refusal to try again later (429, 408, any retryable problem:
            // kept, every retry under the key was told 429 for the key's whole life).
            const keep =
              problem.status !== 400 &&
              problem.status !== 408 &&
              problem.status !== 429 &&
              problem.status < 500 &&
              problem.retryable !== true;
            await settle(
              keep
                ? { status: problem.status, contentType: PROBLEM_CONTENT_TYPE, body: JSON.stringify(problem) }
                : undefined,
            );
          })(),
        ).pipe(mergeMap(() => throwError(() => err))),
      ),
      finalize(() => clearInterval(renew)),
    );
  }
}

/**
 * The request's path and query as the key's row keeps them (and compares them): whole up to 512
 * characters, else its start and a hash of it. A query string can be padded (a number coerced
 * from 14 KB of whitespace) into rows the answer's bounds never see.
 */
function keptPath(path: string): string {
  return path.length <= 512 ? path : `${path.slice(0, 200)}…#sha256:${createHash('sha256').update(path).digest('hex')}`;
}
