import type { ServerResponse } from 'node:http';
import type { EdgeReply, EdgeRequest } from './edge.js';

const EXCHANGE = Symbol('switchyard.gateway.exchange');

/** What runs once when a request's answer finished or its connection closed (metrics, log line, timeout). */
export type EndStep = (x: Exchange) => void;

/**
 * One request from the edge's first hook to the end of its answer. The edge's end-of-request
 * steps read it, and the request timeout queues it (the links below), so a request costs one
 * object and one pair of listeners (`finish`, `close`: shared functions, no closures) instead
 * of a pair and a closure per step.
 */
export class Exchange {
  /** The answer finished, or the connection closed before it did: the steps ran. */
  ended = false;
  /** Links of the request-timeout queue (RequestTimeouts), while queued. */
  prev: Exchange | undefined = undefined;
  next: Exchange | undefined = undefined;
  queued = false;

  constructor(
    readonly req: EdgeRequest,
    readonly res: EdgeReply,
    /** `performance.now()` at the first hook. */
    readonly start: number,
    readonly steps: readonly EndStep[],
  ) {}
}

type Tracked = ServerResponse & { [EXCHANGE]?: Exchange };

function ended(this: Tracked): void {
  const x = this[EXCHANGE];
  if (!x || x.ended) return;
  x.ended = true;
  for (const step of x.steps) step(x);
}

/**
 * Begin an exchange for each request (call first, so durations cover the rest); `steps` run in
 * order once it ends: at the response's `finish`, or at `close` when the client went away first.
 */
export class Exchanges {
  constructor(private readonly steps: readonly EndStep[]) {}

  begin(req: EdgeRequest, res: EdgeReply): Exchange {
    const x = new Exchange(req, res, performance.now(), this.steps);
    const raw = res.raw as Tracked;
    raw[EXCHANGE] = x;
    raw.on('finish', ended);
    raw.on('close', ended);
    return x;
  }
}

/** `performance.now()` when the request of `res` (its Node response) reached the first hook, if it went through one. */
export const exchangeStartOf = (res: unknown): number | undefined =>
  res && typeof res === 'object' ? (res as Tracked)[EXCHANGE]?.start : undefined;
