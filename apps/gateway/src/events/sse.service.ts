import { once } from 'node:events';
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises';
import { Inject, Injectable, type BeforeApplicationShutdown } from '@nestjs/common';
import type { ServerResponse } from 'node:http';
import type { AllSubscription, EventStore, RecordedEvent } from '@switchyard/event-store';
import type { Logger } from '@switchyard/platform';
import { EVENT_STORE, GATEWAY_OPTIONS, LOGGER, type ResolvedGatewayOptions } from '../tokens.js';
import { hidesAdminToolPayloads, redactEventPayloads } from './redaction.js';
import { ConnectionQuota } from '../http/connection-quota.js';
import { ApiKeyService } from '../security/api-keys.js';
import { toEventJson } from './schemas.js';

export interface LiveStreamRequest {
  /** Exclusive position to resume after. */
  readonly from: number;
  readonly types?: readonly string[];
  readonly streamPrefixes?: readonly string[];
  readonly correlationId: string;
  /** Replace tool results and step outputs (a viewer's stream). */
  readonly redactPayloads?: boolean;
  /**
   * false: also replace them, as for a viewer, in the events of admin tools' calls and of
   * executions that call one (an operator's stream); absent: shown (an admin's, or auth is off).
   */
  readonly adminToolPayloads?: boolean;
  /** Frees the stream's slot (from `admit`) when the stream ends. */
  readonly release?: () => void;
  /** The API key the stream was opened with: the stream ends when it is revoked. */
  readonly keyId?: string | undefined;
}

/** Characters of frames a stream writes between turns of the event loop (see serve). */
const SSE_TURN_BYTES = 256 * 1024;

/** One SSE message per event: `id` is the global position, so Last-Event-ID resumes exactly. */
export function sseFrame(e: RecordedEvent, redactPayloads = false): string {
  const json = redactPayloads ? redactEventPayloads(toEventJson(e)) : toEventJson(e);
  return `id: ${e.position}\ndata: ${JSON.stringify(json)}\n\n`;
}

/**
 * Serves the live event feed as Server-Sent Events. Each connection owns one
 * catch-up subscription, closed when the client goes or the gateway shuts down.
 */
@Injectable()
export class LiveEventsService implements BeforeApplicationShutdown {
  private readonly open = new Set<() => Promise<void>>();
  private readonly quota: ConnectionQuota;

  constructor(
    @Inject(EVENT_STORE) private readonly store: EventStore,
    @Inject(GATEWAY_OPTIONS) private readonly options: ResolvedGatewayOptions,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(ApiKeyService) private readonly keys: ApiKeyService,
  ) {
    this.quota = new ConnectionQuota('event streams', {
      perCaller: options.eventStreams.perCaller,
      total: options.eventStreams.total,
      perCallerSetting: 'GATEWAY_EVENT_STREAMS_PER_CALLER',
      totalSetting: 'GATEWAY_EVENT_STREAMS_MAX',
    });
  }

  /**
   * A slot for one more stream of `caller`, before anything is written: throws rate_limited (429)
   * or unavailable (503) when there is none. Pass the release to `serve`.
   */
  admit(caller: string): () => void {
    return this.quota.take(caller);
  }

  /** Number of SSE clients connected now. */
  get connections(): number {
    return this.open.size;
  }

  /** Stream events to `res` until the client disconnects or the gateway closes. */
  async serve(res: ServerResponse, req: LiveStreamRequest): Promise<void> {
    const log = this.logger.child({ correlationId: req.correlationId, component: 'sse' });
    // 1. Headers now, so the client sees the stream is open before the first event.
    res.statusCode = 200;
    res.setHeader('content-type', 'text/event-stream; charset=utf-8');
    res.setHeader('cache-control', 'no-cache, no-transform');
    res.setHeader('connection', 'keep-alive');
    res.setHeader('x-accel-buffering', 'no'); // proxies must not buffer the stream
    res.flushHeaders();
    res.write(`retry: 3000\n: resuming after ${req.from}\n\n`);

    // 2. Subscribe from the resume point; the store delivers history then live events, no gap.
    const sub: AllSubscription = this.store.subscribeToAll({
      from: req.from,
      ...(req.types?.length ? { types: req.types } : {}),
      ...(req.streamPrefixes?.length ? { streamPrefixes: req.streamPrefixes } : {}),
    });
    let closed = false;
    const stop = async () => {
      if (closed) return;
      closed = true;
      clearInterval(heartbeat);
      this.open.delete(stop);
      req.release?.();
      unwatch?.();
      await sub.close().catch((err: unknown) => log.warn({ err }, 'closing the subscription failed'));
      if (!res.writableEnded) res.end();
    };
    this.open.add(stop);
    // The key was checked once, when the stream opened: a revocation ends the stream.
    const unwatch =
      req.keyId === undefined
        ? undefined
        : this.keys.whileActive(req.keyId, () => {
            log.info({ keyId: req.keyId }, 'sse stream ended: its API key was revoked');
            void stop();
          });
    // 3. Comments keep idle connections from being cut by proxies and let clients notice a dead link.
    const heartbeat = setInterval(() => {
      if (!closed) res.write(': heartbeat\n\n');
    }, this.options.sseHeartbeatMs);
    // 4. The client went away: end the subscription so the store stops working for nobody.
    res.on('close', () => void stop());
    if (res.destroyed) void stop(); // it left before we listened
    log.debug({ from: req.from }, 'sse client connected');

    // A replay from far back is pages of events already in memory: iterating them only takes
    // microtasks, so twenty streams replaying the log held every other request for over a second.
    // Every SSE_TURN_BYTES written, a stream lets the rest of the gateway have a turn.
    let sinceTurn = 0;
    try {
      for await (const event of sub) {
        if (closed) break;
        const frame = sseFrame(
          event,
          req.redactPayloads ||
            (req.adminToolPayloads === false && (await hidesAdminToolPayloads(this.store, toEventJson(event)))),
        );
        sinceTurn += frame.length;
        if (sinceTurn >= SSE_TURN_BYTES) {
          sinceTurn = 0;
          await nextTurn();
          if (closed) break;
        }
        if (!res.write(frame)) {
          // Slow client: wait for the socket to drain (or close) before reading on; a client that
          // stopped reading would otherwise hold its slot and its subscription for good.
          const waiting = new AbortController();
          try {
            const outcome = await Promise.race([
              once(res, 'drain', { signal: waiting.signal }),
              once(res, 'close', { signal: waiting.signal }),
              sleep(this.options.sseDrainTimeoutMs, 'stalled' as const, { signal: waiting.signal }),
            ]);
            if (outcome === 'stalled') {
              log.info(
                { drainTimeoutMs: this.options.sseDrainTimeoutMs },
                'sse client stopped reading; ending its stream',
              );
              res.destroy();
              break;
            }
          } finally {
            waiting.abort(); // drop the listeners and the timer that did not fire
          }
        }
      }
    } catch (err) {
      if (!closed) log.error({ err }, 'event subscription failed; ending the stream');
    } finally {
      await stop();
      log.debug({}, 'sse client disconnected');
    }
  }

  /** Before the HTTP server closes: end every open stream, or close() would wait for them. */
  async beforeApplicationShutdown(): Promise<void> {
    await Promise.all([...this.open].map((stop) => stop()));
  }
}
