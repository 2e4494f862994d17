import { Controller, Get, Headers, Inject, Req, Res } from '@nestjs/common';
import { hijack, type EdgeReply, type EdgeRequest } from '../http/edge.js';
import { QueryBus } from '@nestjs/cqrs';
import { z } from 'zod';
import type { EventStore } from '@switchyard/event-store';
import { connectionHolderOf, CorrelationId, type GatewayRequest } from '../http/context.js';
import { parseOrThrow, ZodQuery } from '../http/validation.js';
import { ApiRoute } from '../openapi/registry.js';
import { EVENT_STORE } from '../tokens.js';
import { callerSeesAdminToolPayloads, callerSeesRedactedPayloads } from './redaction.js';
import { ReadEventsPage } from './queries/index.js';
import {
  eventsPageSchema,
  eventsQuerySchema,
  eventsStreamQuerySchema,
  positionParam,
  type EventsPage,
  type EventsQuery,
  type EventsStreamQuery,
} from './schemas.js';
import { LiveEventsService } from './sse.service.js';

export const EVENTS_PATH = '/api/v1/events';

// As documented: an empty value counts as none (EventSource sends none before its first event).
const lastEventIdHeaderDoc = z.object({
  'last-event-id': z
    .union([positionParam, z.literal('')])
    .optional()
    .describe('Position of the last event the client saw; sent by EventSource on reconnect; empty: none'),
});
// An object, so a bad header is named `last-event-id` in the problem's errors.
const lastEventIdHeader = z.object({
  'last-event-id': positionParam
    .optional()
    .describe('Position of the last event the client saw; sent by EventSource on reconnect'),
});

/** Audit and replay of the event log: pages of past events and a live SSE feed. */
@Controller(EVENTS_PATH)
export class EventsController {
  constructor(
    @Inject(EVENT_STORE) private readonly store: EventStore,
    @Inject(QueryBus) private readonly queries: QueryBus,
    private readonly live: LiveEventsService,
  ) {}

  @Get()
  @ApiRoute({
    summary: 'Read recorded events, one stream or the global log, a page at a time',
    description:
      'Without `stream` the global log ($all) is read and paged by `after` (position); with `stream` one stream is read ' +
      'and paged by `from_revision`. Follow `next.href` for the next page; `next` is null at the end. With time filters a ' +
      'page may hold fewer than `limit` events while `next` is still set (at most 10 000 events are examined per request).',
    tags: ['events'],
    role: 'viewer',
    response: {
      schema: eventsPageSchema,
      example: {
        events: [
          {
            id: '6f1c2b9e-0b6a-4f1e-9d59-2f3f0f4c2a10',
            streamId: 'workflow-42',
            type: 'WorkflowStarted',
            revision: 0,
            position: 17,
            recordedAt: '2026-01-31T12:00:00.000Z',
            data: { name: 'nightly-report' },
            metadata: { correlationId: 'c-1', timestamp: '2026-01-31T12:00:00.000Z' },
          },
        ],
        next: { after: 17, href: `${EVENTS_PATH}?after=17&limit=1&direction=forwards` },
      },
    },
  })
  list(@ZodQuery(eventsQuerySchema) query: EventsQuery): Promise<EventsPage> {
    return this.queries.execute(new ReadEventsPage(query, EVENTS_PATH));
  }

  @Get('stream')
  @ApiRoute({
    summary: 'Live feed of new events as Server-Sent Events',
    description:
      'Each event is one SSE message whose `id` is its global position and whose `data` is the event JSON. Reconnecting ' +
      'clients send Last-Event-ID (or `?after=`) and miss nothing. A `: heartbeat` comment comes every 15 s. ' +
      'A caller may hold GATEWAY_EVENT_STREAMS_PER_CALLER streams open at once (429 above it), the gateway ' +
      'GATEWAY_EVENT_STREAMS_MAX (503 above it).',
    tags: ['events'],
    role: 'viewer',
    headers: lastEventIdHeaderDoc,
    response: { contentType: 'text/event-stream', description: 'An endless text/event-stream' },
    // 429: the caller holds its share of open streams; 503: every slot is taken.
    errors: [429, 503],
  })
  async stream(
    @ZodQuery(eventsStreamQuerySchema) query: EventsStreamQuery,
    @Headers('last-event-id') lastEventId: string | undefined,
    @CorrelationId() correlationId: string,
    @Req() req: EdgeRequest,
    @Res() res: EdgeReply,
  ): Promise<void> {
    const resumeHeader =
      lastEventId !== undefined && lastEventId !== ''
        ? parseOrThrow(lastEventIdHeader, { 'last-event-id': lastEventId }, 'headers')['last-event-id']
        : undefined;
    // One slot per open stream, per caller (its key; without auth, its address): 429 / 503 before anything is written.
    const release = this.live.admit(connectionHolderOf(req, req.ip));
    let from: number;
    try {
      // Last-Event-ID wins: a browser reconnects with the original URL, whose `after` is stale by then.
      from = resumeHeader ?? query.after ?? (await this.store.headPosition());
    } catch (err) {
      release();
      throw err;
    }
    // The stream writes the Node response itself, for as long as the client stays.
    await this.live.serve(hijack(req, res).res, {
      from,
      correlationId,
      release,
      keyId: (req as Partial<GatewayRequest>).apiKey?.id,
      // Decided now, inside the request: the subscription's deliveries run outside its context.
      redactPayloads: callerSeesRedactedPayloads(),
      adminToolPayloads: callerSeesAdminToolPayloads(),
      ...(query.type ? { types: query.type } : {}),
      ...(query.stream_prefix ? { streamPrefixes: query.stream_prefix } : {}),
    });
  }
}
