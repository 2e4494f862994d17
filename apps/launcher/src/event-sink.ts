import type { EventStore } from '@switchyard/event-store';
import { newId, type Logger } from '@switchyard/platform';

/**
 * Appends events reported by in-process components (connectors, monitor) to the event store.
 * Components call it synchronously and must not wait on the store, so appends are queued:
 * one chain per stream keeps each stream's order; a failed append is logged, not thrown.
 */
export class EventSink {
  private readonly chains = new Map<string, Promise<void>>();

  constructor(
    private readonly store: EventStore,
    private readonly logger: Logger,
    private readonly actor: string,
  ) {}

  /** `actor`: who caused the event when the reporter knows (a call's `apikey:<id>`, `token:mcp` for a call an MCP server answered), else this sink's. */
  append(streamId: string, event: { type: string; data: unknown }, correlationId?: string, actor?: string): void {
    const previous = this.chains.get(streamId) ?? Promise.resolve();
    const next = previous
      .then(() =>
        this.store.append(streamId, [
          {
            type: event.type,
            data: event.data,
            metadata: {
              correlationId: correlationId ?? newId(),
              actor: actor ?? this.actor,
              timestamp: new Date().toISOString(),
            },
          },
        ]),
      )
      .then(
        () => undefined,
        (err: unknown) => this.logger.error({ err, streamId, type: event.type }, 'could not append a reported event'),
      );
    this.chains.set(streamId, next);
    // Drop settled chains so the map does not grow with every stream ever seen.
    void next.then(() => {
      if (this.chains.get(streamId) === next) this.chains.delete(streamId);
    });
  }

  /** Wait for everything queued so far (used at shutdown). */
  async flush(): Promise<void> {
    await Promise.all([...this.chains.values()]);
  }
}
