import { WrongExpectedVersionError, type EventMetadata, type EventStore, type Fence, type RecordedEvent } from './port.js';

/** The decider shape of libs/domain, restated here so the store does not depend on the domain. */
export interface DeciderLike<C, E, S> {
  // Function properties, not methods: deciders never use `this`, so `events.reduce(d.evolve, s)` is safe.
  readonly decide: (command: C, state: S) => E[];
  readonly evolve: (state: S, event: E) => S;
  readonly initialState: S;
}

/** Domain events as deciders emit them: plain `{ type, data, metadata }` values. */
export interface DomainEventLike {
  readonly type: string;
  readonly data: unknown;
  readonly metadata: EventMetadata;
}

export interface CommandResult<E, S> {
  /** Events this command appended (empty when the decider decided nothing). */
  readonly events: readonly E[];
  readonly state: S;
  /** Stream revision after the command (-1: the stream still does not exist). */
  readonly revision: number;
  /** Global position of the last appended event, when anything was appended. */
  readonly position?: number;
}

/** Rebuild a stream's state by folding its events through `evolve`. */
export async function aggregateStream<E extends DomainEventLike, S>(
  store: EventStore,
  streamId: string,
  decider: Pick<DeciderLike<unknown, E, S>, 'evolve' | 'initialState'>,
): Promise<{ state: S; revision: number }> {
  const recorded = await store.readStream(streamId);
  let state = decider.initialState;
  for (const e of recorded) state = decider.evolve(state, toDomainEvent<E>(e));
  return { state, revision: recorded.length ? recorded[recorded.length - 1]!.revision : -1 };
}

export const toDomainEvent = <E extends DomainEventLike>(e: RecordedEvent): E =>
  ({ type: e.type, data: e.data, metadata: e.metadata }) as unknown as E;

/**
 * Read the stream, decide, append with the expected revision. A revision
 * conflict means someone else wrote first: read again and decide again (the decision may
 * differ now). Only conflicts are retried; a domain error goes straight to the caller.
 */
export async function handleCommand<C, E extends DomainEventLike, S>(
  store: EventStore,
  streamId: string,
  decider: DeciderLike<C, E, S>,
  command: C,
  options: { maxAttempts?: number; fence?: Fence } = {},
): Promise<CommandResult<E, S>> {
  const maxAttempts = options.maxAttempts ?? 10;
  for (let attempt = 1; ; attempt++) {
    const { state, revision } = await aggregateStream(store, streamId, decider);
    const events = decider.decide(command, state);
    if (events.length === 0) return { events, state, revision };
    try {
      const result = await store.append(
        streamId,
        events.map((e) => ({ type: e.type, data: e.data, metadata: e.metadata })),
        { expectedRevision: revision === -1 ? 'no_stream' : revision, ...(options.fence ? { fence: options.fence } : {}) },
      );
      const next = events.reduce(decider.evolve, state);
      return { events, state: next, revision: result.nextExpectedRevision, position: result.position };
    } catch (err) {
      if (!(err instanceof WrongExpectedVersionError) || attempt >= maxAttempts) throw err;
      // Back off a little with jitter so hot streams do not livelock.
      await new Promise((r) => setTimeout(r, Math.random() * 5 * attempt));
    }
  }
}
